"""Image results uploaded by builds.sr.ht jobs: the receiver's upload route.

builds.sr.ht keeps at most 8 artifacts of at most 1 GiB per job, which an image
set exceeds, so an image job's last task sends its files here
(`jobs.sourcehut.uploader`), and the daemon publishes them only when they match
the sha256 sums the job printed in its log (`execute.images`).

The protocol, on `/api/job-upload/<job id>/<file name>`: the job id must be an
image job's (`JobKey`), the name one a checksum block may list
(`formats.imagelog.is_listed_name`) and not a dot file. Every request carries
the `job-callback` token in `X-Reconciler-Token`; a missing or wrong one is 401
and nothing is read or written.

    HEAD, GET  200 with `X-Upload-Offset: <bytes held>` and `X-Upload-Complete:
               yes|no` (0 and no for a file never sent); GET says it in its body
               too (`<offset> complete|partial`).
    PUT        one chunk: `Content-Range: bytes <first>-<last>/<total>` with a
               Content-Length of `last - first + 1`, at most `UPLOAD_CHUNK_BYTES`;
               an empty file is `Content-Range: bytes */0` with an empty body.
               200 with the new offset (and `X-Upload-Complete: yes` for the
               chunk that completes the file).

A chunk is taken only where the file ends: `first` must be the bytes held (409
with the offset otherwise, so a client that lost an answer asks and goes on
from there). It is appended to `partial/<total>-<name>` and synced before the
answer; the chunk that completes the file renames it into `files/<name>` (the
directory synced too). A chunk that did not arrive whole never reaches the
application (the server reads whole requests), so the offset is always a sum
of whole chunks, and resuming an interrupted upload is asking HEAD and sending
from there. `first` 0 with another total starts the file again; a finished file
is never replaced (409; a chunk announcing its size again answers 200, complete).

Caps, when a file starts: a total over the per-file cap, or over what the job
may still hold (the sizes of its finished files plus the totals of its partial
ones, against the per-job cap), or over what all jobs may still hold (the
overall cap), is 413 with nothing written; so is the `MAX_FILES_PER_JOB`+1st
file of a job, and a chunk over `UPLOAD_CHUNK_BYTES` (before it is read). A
write that fails is cut back to the offset before it, so nothing of a refused
chunk is kept; a full disk answers 507.

All of it happens under one lock (`<root>/.lock`, an flock): the offset check,
the caps, the write and the rename are one step for every client of every job.
The job service removes a job's directory once its image is published or the
job is gone (`jobs.sourcehut.cache.prune_uploads`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reconciler.config.sourcehut import UPLOAD_CHUNK_BYTES, UPLOAD_FILES_DIR, UPLOAD_PARTIAL_DIR
from reconciler.formats.imagelog import is_listed_name
from reconciler.fs.atomicfile import fsync_dir
from reconciler.model.jobs import JobKey, JobKind

log = logging.getLogger(__name__)

UPLOAD_PREFIX = "/api/job-upload/"
OFFSET_HEADER = "X-Upload-Offset"
COMPLETE_HEADER = "X-Upload-Complete"
LOCK_FILE = ".lock"
MAX_FILES_PER_JOB = 64
MAX_NAME_CHARS = 200  # with the partial file's `<total>-` prefix, within NAME_MAX
MAX_JOB_ID_CHARS = 200
DIR_MODE = 0o750
FILE_MODE = 0o640
_RANGE = re.compile(r"bytes ([0-9]{1,18})-([0-9]{1,18})/([0-9]{1,18})")
_EMPTY_RANGE = re.compile(r"bytes \*/([0-9]{1,18})")
_PARTIAL = re.compile(r"([0-9]{1,18})-(.+)")
_COPY_BYTES = 1 << 20
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True, slots=True)
class UploadSettings:
    """Where uploads go and how much the receiver keeps."""

    root: Path  # <paths.data>/uploads
    max_file_bytes: int
    max_job_bytes: int
    max_total_bytes: int
    max_chunk_bytes: int = UPLOAD_CHUNK_BYTES


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer of the upload route: status, text, and the offset headers."""

    status: int
    text: str
    offset: int | None = None  # bytes held: X-Upload-Offset
    complete: bool = False  # X-Upload-Complete

    def headers(self) -> tuple[tuple[str, str], ...]:
        if self.offset is None:
            return ()
        done = "yes" if self.complete else "no"
        return ((OFFSET_HEADER, str(self.offset)), (COMPLETE_HEADER, done))


@dataclass(frozen=True, slots=True)
class Target:
    """The file a request is about: an image job's id and a plain file name."""

    job_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Chunk:
    """What a PUT's Content-Range says: the chunk's first byte, its length, the file's size."""

    first: int
    length: int
    total: int


@dataclass(frozen=True, slots=True)
class _State:
    """What the store holds of one file."""

    held: int
    complete: bool
    partial: Path | None = None
    total: int | None = None  # the partial file's announced size


def parse_target(path: str) -> Target | Reply:
    """The job id and file name of `<UPLOAD_PREFIX><job id>/<name>`, or the refusal."""
    parts = path.removeprefix(UPLOAD_PREFIX).split("/")
    if not path.startswith(UPLOAD_PREFIX) or len(parts) != 2 or not all(parts):
        return Reply(404, "not found")
    job_id, name = parts
    try:
        key = JobKey.from_job_id(job_id)
    except ValueError:
        key = None
    if key is None or key.intent.kind is not JobKind.IMAGE or len(job_id) > MAX_JOB_ID_CHARS:
        return Reply(400, "not an image job's id")
    if not is_listed_name(name) or name.startswith(".") or len(name) > MAX_NAME_CHARS:
        return Reply(400, "not a file name an image job may list")
    return Target(job_id, name)


def parse_chunk(content_range: str | None, length: int) -> Chunk | Reply:
    """The chunk a PUT's `Content-Range` announces for a body of `length` bytes."""
    if content_range is None:
        return Reply(400, "Content-Range required (bytes <first>-<last>/<total>)")
    text = content_range.strip()
    empty = _EMPTY_RANGE.fullmatch(text)
    if empty is not None:
        if length != 0:
            return Reply(400, "Content-Range bytes */<total> is for an empty body")
        total = int(empty.group(1))
        return Chunk(total, 0, total)
    match = _RANGE.fullmatch(text)
    if match is None:
        return Reply(400, "bad Content-Range (bytes <first>-<last>/<total>)")
    first, last, total = (int(group) for group in match.groups())
    if not first <= last < total:
        return Reply(400, "Content-Range outside the file")
    if last - first + 1 != length:
        return Reply(400, "Content-Range does not match Content-Length")
    return Chunk(first, length, total)


class UploadStore:
    """The uploads directory; every method takes the one lock."""

    def __init__(self, settings: UploadSettings) -> None:
        self.settings = settings
        self.root = settings.root

    def status(self, target: Target) -> Reply:
        """How many bytes of the file are held, and whether it is complete."""
        with self._locked():
            state = self._state(target)
        word = "complete" if state.complete else "partial"
        return Reply(200, f"{state.held} {word}", state.held, state.complete)

    def put(self, target: Target, chunk: Chunk, read: Callable[[int], bytes]) -> Reply:
        """Append one chunk (read with `read(n)`, at most n bytes a call) at the file's end."""
        if chunk.length > self.settings.max_chunk_bytes:
            return Reply(413, f"a chunk is at most {self.settings.max_chunk_bytes} bytes")
        if chunk.total > self.settings.max_file_bytes:
            return Reply(413, f"a file is at most {self.settings.max_file_bytes} bytes")
        with self._locked():
            return self._put(target, chunk, read)

    # --- under the lock ------------------------------------------------------------

    def _put(self, target: Target, chunk: Chunk, read: Callable[[int], bytes]) -> Reply:
        state = self._state(target)
        if state.complete:
            if chunk.total == state.held:
                return Reply(200, f"complete: {target.name}", state.held, True)
            held = state.held
            return Reply(409, f"{target.name} is complete with {held} bytes", held, True)
        if state.partial is not None and state.total != chunk.total:
            if chunk.first != 0:
                return Reply(409, f"{target.name} is being sent with {state.total} bytes", 0)
            state.partial.unlink()
            state = _State(0, False)
        if chunk.first != state.held:
            return Reply(409, f"expected offset {state.held}, got {chunk.first}", state.held)
        path = state.partial
        if path is None:
            refused = self._refused_by_caps(target, chunk.total)
            if refused is not None:
                return refused
            partial_dir = self.root / target.job_id / UPLOAD_PARTIAL_DIR
            _make_dirs(partial_dir)
            path = partial_dir / f"{chunk.total}-{target.name}"
        stored = _append(path, state.held, chunk.length, read)
        if isinstance(stored, Reply):
            return stored
        end = state.held + chunk.length
        if end < chunk.total:
            return Reply(200, f"stored {end} of {chunk.total} bytes", end)
        files = self.root / target.job_id / UPLOAD_FILES_DIR
        _make_dirs(files)
        os.rename(path, files / target.name)
        fsync_dir(files)
        fsync_dir(path.parent)
        log.info("upload of %s for %s complete: %d bytes", target.name, target.job_id, end)
        return Reply(200, f"complete: {target.name}, {end} bytes", end, True)

    def _state(self, target: Target) -> _State:
        job = self.root / target.job_id
        try:
            info = os.lstat(job / UPLOAD_FILES_DIR / target.name)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(info.st_mode):
                raise OSError(f"{job / UPLOAD_FILES_DIR / target.name}: not a regular file")
            return _State(info.st_size, True)
        for name, total in _partials(job / UPLOAD_PARTIAL_DIR):
            if name == target.name:
                path = job / UPLOAD_PARTIAL_DIR / f"{total}-{name}"
                return _State(os.lstat(path).st_size, False, path, total)
        return _State(0, False)

    def _refused_by_caps(self, target: Target, total: int) -> Reply | None:
        """413 when a new file of `total` bytes would take the job or all jobs over a cap."""
        job = _reserved(self.root / target.job_id)
        job.pop(target.name, None)
        if len(job) >= MAX_FILES_PER_JOB:
            return Reply(413, f"a job uploads at most {MAX_FILES_PER_JOB} files")
        if sum(job.values()) + total > self.settings.max_job_bytes:
            return Reply(413, f"a job's files are at most {self.settings.max_job_bytes} bytes")
        others = 0
        for entry in _job_dirs(self.root):
            if entry.name != target.job_id:
                others += sum(_reserved(entry).values())
        if others + sum(job.values()) + total > self.settings.max_total_bytes:
            return Reply(413, f"uploads are at most {self.settings.max_total_bytes} bytes in all")
        return None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        _make_dirs(self.root)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _append(path: Path, offset: int, length: int, read: Callable[[int], bytes]) -> Reply | None:
    """Write `length` bytes from `read` at `offset` and sync; on any failure cut the
    file back to `offset` (a new file goes) and answer, or re-raise."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
    kept = False
    try:
        written = _copy(fd, offset, length, read)
        if written == length:
            os.fsync(fd)
            kept = True
            return None
        return Reply(400, "body shorter than Content-Length", offset)
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            log.error("upload into %s: %s", path, exc)
            return Reply(507, "no space left for uploads", offset)
        raise
    finally:
        if not kept:
            _cut_back(fd, path, offset)
        os.close(fd)


def _copy(fd: int, offset: int, length: int, read: Callable[[int], bytes]) -> int:
    """Copy up to `length` bytes from `read` to `fd` at `offset`; the bytes copied."""
    done = 0
    while done < length:
        data = read(min(_COPY_BYTES, length - done))
        if not data:
            break
        view = memoryview(data)
        while view:
            count = os.pwrite(fd, view, offset + done)
            view = view[count:]
            done += count
    return done


def _cut_back(fd: int, path: Path, offset: int) -> None:
    """Nothing of a refused chunk stays: truncate to `offset`, or remove a new file."""
    try:
        if offset == 0:
            path.unlink(missing_ok=True)
        else:
            os.ftruncate(fd, offset)
    except OSError as exc:
        log.error("upload: cannot cut %s back to %d bytes: %s", path, offset, exc)


def _partials(directory: Path) -> Iterator[tuple[str, int]]:
    """(name, announced total) of each partial file in `directory`."""
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return
    for entry in entries:
        match = _PARTIAL.fullmatch(entry)
        if match is not None:
            yield match.group(2), int(match.group(1))


def _reserved(job: Path) -> dict[str, int]:
    """name -> bytes a job's file takes or will take: finished sizes, partial totals."""
    found = dict(_partials(job / UPLOAD_PARTIAL_DIR))
    try:
        entries = list(os.scandir(job / UPLOAD_FILES_DIR))
    except FileNotFoundError:
        entries = []
    for entry in entries:
        found[entry.name] = entry.stat(follow_symlinks=False).st_size
    return found


def _job_dirs(root: Path) -> list[Path]:
    """The job directories of the uploads root (not the lock, nothing hidden)."""
    with os.scandir(root) as entries:
        return [
            root / entry.name
            for entry in entries
            if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)
        ]


def _make_dirs(directory: Path) -> None:
    """Create `directory` (and its parents) with DIR_MODE."""
    directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
