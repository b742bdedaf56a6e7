"""The one place that writes files other processes read, and joins untrusted names.

A write goes to a temporary file beside the target, is fsynced, then renamed over
the target, and the directory is fsynced: a crash at any instant leaves either the
old or the new content, never a mix. `safe_join` refuses names that would leave
their root before any path is built from them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from reconciler.model.errors import InputError

DIR_MODE = 0o755  # of the directories write_batch and write_new_tree create
TREE_PREFIX = ".new-tree-"  # write_new_tree's staging directories
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC  # a new file, ours alone


class UnsafePathError(InputError):
    """A name that would escape its directory (or is otherwise not a plain name)."""


NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_no_space(exc: BaseException) -> bool:
    """An error that says a file system (or a quota) is full."""
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


def safe_join(root: Path, *parts: str) -> Path:
    """Join relative parts under root, refusing '..', absolute parts, NUL and empties."""
    path = root
    for part in parts:
        check_relative(part, root)
        path = path / part
    return path


def join_under(root: str, relpath: str) -> str:
    """safe_join for plain strings, where thousands of paths a pass make pathlib costly."""
    check_relative(relpath, root)
    return f"{root}/{relpath}"


def check_relative(part: str, root: object) -> None:
    """Refuse a relative path that is empty, absolute, has NUL, a newline, '.', '..'
    or an empty component: it names something other than a file below `root`."""
    if not part or "\x00" in part or "\n" in part:
        raise UnsafePathError(f"unsafe path component {part!r} under {root}")
    if part.startswith("/"):
        raise UnsafePathError(f"absolute path component {part!r} under {root}")
    for piece in part.split("/"):
        if piece in ("", ".", ".."):
            raise UnsafePathError(f"unsafe path component {part!r} under {root}")


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: Path, data: bytes, *, mode: int = 0o644, mtime: float | None = None) -> None:
    """Atomically replace `path` with `data` (write aside, fsync, rename, fsync dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        if mtime is not None:
            os.utime(tmp_name, (mtime, mtime))
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_dir(path.parent)


def write_fresh(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically for readers (written aside, renamed)
    without waiting for the disk: for a file written again by every pass (the
    heartbeat), where two fsyncs would be most of a quiet pass and a power cut
    costs nothing that the next pass does not write again."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_batch(items: Sequence[tuple[str | Path, bytes]], *, mode: int = 0o644) -> None:
    """Atomically replace many files at the cost of one sync instead of one per file.

    Every file is written aside, then all data reaches the disk together (one
    syncfs of their file system), then each is renamed into place: a crash leaves
    every file old or new, never torn.
    """
    staged: list[tuple[str, str | Path]] = []
    made: set[str] = set()
    pid = os.getpid()
    try:
        for number, (path, data) in enumerate(items):
            directory = os.path.dirname(path)
            if directory not in made:
                _make_dirs(directory, made)
            name = os.path.basename(path)
            tmp_name = os.path.join(directory, f".{name}.{pid}.{number}.tmp")
            try:
                fd = os.open(tmp_name, CREATE_FLAGS, mode)
            except FileExistsError:  # a leftover of a crashed writer with our pid
                fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
            staged.append((tmp_name, path))
            _fill(fd, data, mode)
        if staged:
            sync_filesystem(staged[0][0])
        for tmp_name, path in staged:
            os.replace(tmp_name, path)
    except BaseException:
        for tmp_name, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        raise
    for directory in made:
        fsync_dir(Path(directory))


def write_new_tree(root: str, items: Sequence[tuple[str, bytes]], *, mode: int = 0o644) -> None:
    """Create many files below `root` that do not exist yet, at the cost of one rename
    per top-level entry instead of one per file.

    The files are written with their final names into a hidden directory in `root`,
    synced together, then each top-level entry is renamed into place (an entry
    that exists already gets its files moved in one by one). A reader sees an
    entry absent or whole; a crash leaves at most the hidden directory, which the
    next call removes.
    """
    os.makedirs(root, exist_ok=True)
    discard_unfinished_trees(root)
    stage = tempfile.mkdtemp(prefix=TREE_PREFIX, dir=root)
    try:
        os.chmod(stage, DIR_MODE)  # mkdtemp makes it 0700; its entries move out as they are
        made = {stage}
        for relpath, data in items:
            path = join_under(stage, relpath)
            directory = os.path.dirname(path)
            if directory not in made:
                _make_dirs(directory, made)
            _fill(os.open(path, CREATE_FLAGS, mode), data, mode)
        sync_filesystem(stage)
        for entry in sorted(os.listdir(stage)):
            _move_in(os.path.join(stage, entry), os.path.join(root, entry))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    fsync_dir(Path(root))


def make_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents, each DIR_MODE whatever the umask
    (the web server reads what the files' mode already lets it read)."""
    _make_dirs(str(directory), set())


def _make_dirs(directory: str, made: set[str]) -> None:
    """os.makedirs, but every directory it creates is DIR_MODE whatever the umask:
    the web server reads what the files' mode already lets it read."""
    parent = os.path.dirname(directory)
    if parent not in made and parent != directory and not os.path.isdir(parent):
        _make_dirs(parent, made)
    try:
        os.mkdir(directory)
        os.chmod(directory, DIR_MODE)
    except FileExistsError:
        pass
    made.add(directory)


def discard_unfinished_trees(root: str) -> None:
    """Remove what a write_new_tree cut short by a crash left in `root`."""
    with contextlib.suppress(FileNotFoundError):
        for leftover in os.listdir(root):
            if leftover.startswith(TREE_PREFIX):
                shutil.rmtree(os.path.join(root, leftover), ignore_errors=True)


def _move_in(source: str, target: str) -> None:
    """Rename `source` to `target`; where `target` is a directory already, move the
    files below `source` into it one by one."""
    if not os.path.lexists(target):
        os.rename(source, target)
        return
    if not os.path.isdir(source) or not os.path.isdir(target):
        os.replace(source, target)
        return
    for entry in sorted(os.listdir(source)):
        _move_in(os.path.join(source, entry), os.path.join(target, entry))
    fsync_dir(Path(target))


def sync_filesystem(path: str) -> None:
    """Flush the file system `path` is on, and only that one: os.sync would also
    wait for every other disk's dirty data (say, a build writing gigabytes)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        if syncfs is None:  # not Linux
            os.sync()
        elif syncfs(fd) != 0:
            number = ctypes.get_errno()
            raise OSError(number, f"syncfs: {os.strerror(number)}", path)
    finally:
        os.close(fd)


def _fill(fd: int, data: bytes, mode: int) -> None:
    """Write all of `data` to a new file, set its mode (whatever the umask), close it."""
    try:
        _write_all(fd, data)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a regular file may take fewer at once)."""
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    write_bytes(path, text.encode("utf-8"), mode=mode)


def remove(path: Path) -> bool:
    """Remove a file if it exists; return whether it did."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
