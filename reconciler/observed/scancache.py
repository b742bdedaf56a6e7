"""What the repository scanner learnt, kept in the state directory across restarts.

Without it a restarted daemon opens every apk and parses every index again (about
0.2 ms an apk: over a minute at Alpine scale, ~400,000 apks). For each directory
the scanner listed, `<state>/scanner/<hash of its path>.apks` keeps each apk's
name, the (inode, size, mtime_ns) it had when it was read and its ApkInfo; for
each index, `<hash>.index` keeps the index's identity and its IndexView. The
scanner trusts an entry only while a stat shows exactly the identity recorded: a
stale file costs reads again, never wrong information. A file is written at the
end of a pass that changed what it holds, so a quiet pass writes none.

Why its own format rather than the directory's APKINDEX (which has the same
fields): parsing index text costs about what reading the apk costs (~40 µs an
entry, against a few here), a WIP directory holds apks its index does not list
yet, and an index rewrites `noarch` to the repository's arch.

A file is one magic line, one JSON header line (format, byte order, a digest of
the code that turns apks and indexes into values, the path it describes, the row
count and the payload's sha256) and the payload: inodes (uint64), sizes and
mtimes (int64), then text lines: the file names, then one info line per apk
(its fields joined by NUL; a value holding a NUL or a newline makes its apk
not stored: it is read again). Equal info lines, in one file or many, make one
ApkInfo. Loading splits bytes and checks counts, making nothing larger than the
file, and each value gets its type from where it sits: any bytes at all are safe
to hand it. A file that is missing, truncated, damaged, written by other code or
for another path is ignored with one log line naming it and what was wrong, and
its directory is read as on a first start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import sys
from array import array
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from reconciler.collector import collector_paused
from reconciler.formats import apk, apkindex, keys, tarblock
from reconciler.fs import apkfiles
from reconciler.fs.atomicfile import is_no_space, write_batch
from reconciler.fs.regularfile import Refused, read_regular
from reconciler.model import observations, packages
from reconciler.model.errors import InputError
from reconciler.model.names import is_safe_name
from reconciler.model.observations import IndexView
from reconciler.model.packages import ApkInfo

log = logging.getLogger(__name__)

SCAN_CACHE_DIR = "scanner"  # below the state directory
MAGIC = b"reconciler scanner cache\n"
FORMAT = 2
MAX_CACHE_BYTES = 256 * 1024 * 1024  # ~800,000 apks in one directory
BATCH_BYTES = 32 * 1024 * 1024  # written (and synced) together at most

Ident = tuple[int, int, int]  # (inode, size, mtime_ns)
FileEntry = tuple[Ident, ApkInfo]  # what the scanner knows of one apk file
IndexEntry = tuple[Ident, IndexView]
# A directory's apk files as the scanner keeps them: every entry that was read,
# and those split into apks and misnamed files (file name -> why).
Listing = tuple[dict[str, FileEntry], dict[str, ApkInfo], dict[str, str]]

# An info line: an ApkInfo's fields in order joined by NUL, integers in decimal,
# lists joined by spaces, then which optional fields are None (origin 1,
# maintainer 2, commit 4, datahash 8).
_SEPARATOR = "\0"
_FIELDS = 19
MAX_SHARED_INFOS = 100_000  # info lines remembered across files while loading


class CacheFileError(InputError):
    """A cache file that cannot be used, and why (in words for the log)."""


def code_digest() -> str:
    """Changes whenever the code that turns apk and index files into values, or
    the shape those values or this format take, changes."""
    digest = hashlib.sha256()
    for module in (apk, apkindex, keys, tarblock, apkfiles, packages, observations):
        digest.update(Path(module.__file__ or "").read_bytes())
    here = Path(__file__)
    digest.update(here.read_bytes())
    digest.update(here.with_name("scanner.py").read_bytes())
    return digest.hexdigest()


def misnamed(name: str, info: ApkInfo) -> str:
    """Why an apk that was read is not taken under its file name ("" when it is)."""
    if info.filename != name or not is_safe_name(info.pkgname):
        return f"{name}: .PKGINFO says {info.filename}"
    return ""


class _Tokens(dict[str, tuple[str, ...]]):
    """A dependency field's text -> its tokens, each distinct tuple made once."""

    def __missing__(self, text: str) -> tuple[str, ...]:
        tokens = tuple(map(sys.intern, text.split(" "))) if text else ()
        self[text] = tokens
        return tokens


class SharedInfos(dict[str, tuple[ApkInfo, str]]):
    """Info line -> its ApkInfo and the one file name it is taken under ("" when
    none: a name that is not safe), made once for every file that line appears in.

    The same package is often in many directories (a noarch package in every
    arch's, an unchanged one in several branches'): those files then share one
    ApkInfo, made and checked once. Strings are interned as when apks are read
    (the same names and texts recur in every arch and branch)."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = _Tokens()

    def __missing__(self, line: str) -> tuple[ApkInfo, str]:
        fields = line.split(_SEPARATOR)
        if len(fields) != _FIELDS:
            raise CacheFileError(f"an info line of {len(fields)} fields, expected {_FIELDS}")
        try:
            numbers = [int(fields[i]) for i in (3, 4, 11, 13, 18)]
        except ValueError as exc:
            raise CacheFileError(f"an info line with a bad number: {exc}") from exc
        size, installed_size, builddate, provider_priority, absent = numbers
        intern, tokens = sys.intern, self.tokens
        info = ApkInfo(
            intern(fields[0]),
            intern(fields[1]),
            intern(fields[2]),
            size,
            installed_size,
            intern(fields[5]),
            intern(fields[6]),
            intern(fields[7]),
            intern(fields[8]),
            None if absent & 1 else intern(fields[9]),
            None if absent & 2 else intern(fields[10]),
            builddate,
            None if absent & 4 else intern(fields[12]),
            provider_priority,
            tokens[fields[14]],
            tokens[fields[15]],
            tokens[fields[16]],
            None if absent & 8 else fields[17],
        )
        if len(self) >= MAX_SHARED_INFOS:  # a bound on what loading keeps alive
            self.clear()
        self[line] = found = (info, info.filename if is_safe_name(info.pkgname) else "")
        return found


# --- apk listings ---------------------------------------------------------------
def _joined(tokens: tuple[str, ...]) -> str | None:
    """A list field as it is stored; None when splitting it again would not give
    `tokens` back (a token that is empty or holds a space)."""
    text = " ".join(tokens)
    if tokens and ("" in tokens or text.count(" ") != len(tokens) - 1):
        return None
    return text


def _storable(text: str) -> bool:
    """No newline (the line separator) and valid UTF-8 (not a non-UTF-8 file name)."""
    if "\n" in text:
        return False
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return False
    return True


def info_line(info: ApkInfo) -> str | None:
    """An ApkInfo as one line; None when the format cannot hold it exactly."""
    depends, provides, install_if = (
        _joined(info.depends),
        _joined(info.provides),
        _joined(info.install_if),
    )
    if depends is None or provides is None or install_if is None:
        return None
    origin, maintainer, commit, datahash = info.origin, info.maintainer, info.commit, info.datahash
    absent = (
        (origin is None)
        | (maintainer is None) << 1
        | (commit is None) << 2
        | (datahash is None) << 3
    )
    line = _SEPARATOR.join(
        (
            info.pkgname,
            info.version,
            info.arch,
            str(info.size),
            str(info.installed_size),
            info.checksum,
            info.description,
            info.url,
            info.license,
            origin or "",
            maintainer or "",
            str(info.builddate),
            commit or "",
            str(info.provider_priority),
            depends,
            provides,
            install_if,
            datahash or "",
            str(absent),
        )
    )
    if line.count(_SEPARATOR) != _FIELDS - 1 or not _storable(line):
        return None
    return line


def dump_listing(
    path: str, files: Mapping[str, FileEntry], code: str, made: dict[int, str] | None = None
) -> bytes:
    """The cache file of the directory at `path`: inodes (uint64), sizes and
    mtimes (int64), then the file names and the info lines, one a line. `made`
    (id of an ApkInfo -> its line, "" when it cannot be stored) lets the files of
    one save share the lines of the ApkInfos they share."""
    lines_of = {} if made is None else made
    names: list[str] = []
    lines: list[str] = []
    idents: list[Ident] = []
    for name, (ident, info) in files.items():
        line = lines_of.get(id(info))
        if line is None:
            line = lines_of[id(info)] = info_line(info) or ""
        if line and _storable(name):
            names.append(name)
            lines.append(line)
            idents.append(ident)
    try:
        numbers = _numbers(idents)
    except OverflowError:  # a number no int64 holds: that file is read again instead
        keep = [i for i, ident in enumerate(idents) if _fits(ident)]
        names, lines = [names[i] for i in keep], [lines[i] for i in keep]
        numbers = _numbers([idents[i] for i in keep])
    text = "\n".join((*names, *lines)).encode()
    return _envelope("apks", path, code, len(names), b"".join((*numbers, text)), {})


def _numbers(idents: list[Ident]) -> tuple[bytes, bytes]:
    """The inodes (uint64) and the sizes and mtimes (int64) of `idents`."""
    inodes = array("Q", [ident[0] for ident in idents])
    stats = array("q", [n for ident in idents for n in ident[1:]])
    return inodes.tobytes(), stats.tobytes()


def _fits(ident: Ident) -> bool:
    inode, size, mtime_ns = ident
    return 0 <= inode < 2**64 and -(2**63) <= size < 2**63 and -(2**63) <= mtime_ns < 2**63


def load_listing(data: bytes, path: str, code: str, shared: SharedInfos | None = None) -> Listing:
    """What a listing's cache file holds; CacheFileError when it is not one of
    `path` written by this code. `shared` carries ApkInfos over from the files
    loaded before."""
    header, payload = _open(data, "apks", path, code)
    rows = header["rows"]
    inode_end = 8 * rows
    stats_end = inode_end + 16 * rows
    if len(payload) < stats_end:
        raise CacheFileError(f"{len(payload)} bytes of payload, too few for {rows} rows")
    inodes = array("Q")
    inodes.frombytes(payload[:inode_end])
    stats = array("q")
    stats.frombytes(payload[inode_end:stats_end])
    lines = _lines(payload[stats_end:], 2 * rows)
    infos = SharedInfos() if shared is None else shared
    files: dict[str, FileEntry] = {}
    apks: dict[str, ApkInfo] = {}
    bad: dict[str, str] = {}
    with collector_paused():
        for name, line, inode, size, mtime_ns in zip(
            map(sys.intern, lines[:rows]),
            lines[rows:],
            inodes,
            stats[0::2],
            stats[1::2],
            strict=True,
        ):
            info, taken_as = infos[line]
            files[name] = ((inode, size, mtime_ns), info)
            if name == taken_as:
                apks[name] = info
            else:
                bad[name] = misnamed(name, info)
    if len(files) != rows:
        raise CacheFileError("a file name is listed twice")
    return files, apks, bad


# --- indexes ------------------------------------------------------------------
def dump_index(path: str, entry: IndexEntry, code: str) -> bytes | None:
    """The cache file of the index at `path`; None when the format cannot hold it."""
    ident, view = entry
    text = "\n".join(field for item in view.files.items() for field in item)
    if text.count("\n") != max(2 * len(view.files) - 1, 0):
        return None
    extra = {
        "ident": list(ident),
        "index_sha256": view.sha256,
        "description": view.description,
        "mtime": view.mtime,
        "signer": view.signer,
    }
    try:
        payload = text.encode()
    except UnicodeEncodeError:
        return None
    return _envelope("index", path, code, len(view.files), payload, extra)


def load_index(data: bytes, path: str, code: str) -> IndexEntry:
    """The identity and view a cache file of the index at `path` holds."""
    header, payload = _open(data, "index", path, code)
    ident = header.get("ident")
    if not (
        isinstance(ident, list) and len(ident) == 3 and all(type(v) is int for v in ident)
    ) or not all(isinstance(header.get(k), str) for k in ("index_sha256", "description", "signer")):
        raise CacheFileError("the header lacks the index's identity or fields")
    mtime: Any = header.get("mtime")
    if type(mtime) not in (int, float) or not math.isfinite(mtime):
        raise CacheFileError(f"an index mtime of {mtime!r}")
    strings = _lines(payload, 2 * header["rows"])
    intern = sys.intern
    files = dict(zip(map(intern, strings[0::2]), map(intern, strings[1::2]), strict=True))
    if len(files) != header["rows"]:
        raise CacheFileError("a file name is listed twice")
    view = IndexView(
        files, header["index_sha256"], header["description"], float(mtime), header["signer"]
    )
    return (ident[0], ident[1], ident[2]), view


# --- the envelope ---------------------------------------------------------------
def _envelope(
    kind: str, path: str, code: str, rows: int, payload: bytes, extra: dict[str, Any]
) -> bytes:
    header = {
        **extra,
        "format": FORMAT,
        "kind": kind,
        "byteorder": sys.byteorder,
        "code": code,
        "path": path,
        "rows": rows,
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    line = json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode()
    return b"".join((MAGIC, line, b"\n", payload))


def _open(data: bytes, kind: str, path: str, code: str) -> tuple[dict[str, Any], bytes]:
    """The header and payload of a cache file, every check that needs no payload
    parsing done; CacheFileError says which failed."""
    if not data.startswith(MAGIC):
        raise CacheFileError("not a scanner cache file (no magic line)")
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        raise CacheFileError("truncated in its header")
    try:
        header = json.loads(data[len(MAGIC) : end], parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise CacheFileError(f"a header that is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise CacheFileError("a header that is not a JSON object")
    if header.get("format") != FORMAT or header.get("kind") != kind:
        raise CacheFileError(f"format {header.get('format')!r}, expected {FORMAT} ({kind})")
    if header.get("byteorder") != sys.byteorder or header.get("code") != code:
        raise CacheFileError("written by another version of the scanner")
    if header.get("path") != path:
        raise CacheFileError(f"describes {header.get('path')!r}, not {path}")
    rows = header.get("rows")
    if type(rows) is not int or rows < 0:
        raise CacheFileError(f"a row count of {rows!r}")
    payload = data[end + 1 :]
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise CacheFileError("truncated or damaged (its payload does not match its sha256)")
    return header, payload


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def _lines(payload: bytes, count: int) -> list[str]:
    """`count` text fields, one a line."""
    try:
        strings = payload.decode().split("\n") if count else []
    except UnicodeDecodeError as exc:
        raise CacheFileError(f"text that is not UTF-8: {exc}") from exc
    if len(strings) != count or (not count and payload):
        raise CacheFileError(f"{len(strings)} text fields, expected {count}")
    return strings


# --- the files ------------------------------------------------------------------
class ScanCache:
    """The scanner's cache files in `directory`: one read when the scanner first
    meets its directory or index, written at the end of a pass that changed it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.code = code_digest()
        # cache file name -> the object it holds now (the scanner's own dict or
        # tuple: an object the scanner replaced is what changed)
        self._saved: dict[str, object] = {}
        self._names: dict[tuple[str, str], str] = {}  # (kind, path) -> file name
        self._infos = SharedInfos()  # while loading: what files loaded before share

    def file_name(self, kind: str, path: str) -> str:
        """The cache file of the directory or index at `path` (a hash of its path)."""
        name = self._names.get((kind, path))
        if name is None:
            digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()
            name = self._names[kind, path] = f"{digest[:32]}.{kind}"
        return name

    def listing(self, path: str) -> Listing | None:
        """What the directory at `path` held when last written; None when unknown."""
        name = self.file_name("apks", path)
        data = self._read(name, path)
        if data is None:
            return None
        try:
            listing = load_listing(data, path, self.code, self._infos)
        except CacheFileError as exc:
            self._ignore(name, path, exc)
            return None
        self._saved[name] = listing[0]
        return listing

    def index(self, path: str) -> IndexEntry | None:
        """What the index at `path` was when last written; None when unknown."""
        name = self.file_name("index", path)
        data = self._read(name, path)
        if data is None:
            return None
        try:
            entry = load_index(data, path, self.code)
        except CacheFileError as exc:
            self._ignore(name, path, exc)
            return None
        self._saved[name] = entry
        return entry

    def _read(self, name: str, path: str) -> bytes | None:
        try:
            return read_regular(str(self.directory / name), MAX_CACHE_BYTES)[1]
        except FileNotFoundError:
            log.debug("no scanner cache for %s: reading it", path)
        except (OSError, Refused) as exc:
            self._ignore(name, path, exc)
        return None

    def _ignore(self, name: str, path: str, exc: Exception) -> None:
        log.warning(
            "ignoring scanner cache %s (of %s): %s; reading it again",
            self.directory / name,
            path,
            exc,
        )

    def save(
        self,
        listings: Mapping[str, Mapping[str, FileEntry]],
        indexes: Mapping[str, tuple[Ident, IndexView | None]],
    ) -> str:
        """Write what changed since it was read or written, and remove the files of
        what is gone; a quiet pass writes nothing. A cache is not worth a pass:
        a failure is logged, the next save tries again; "" or, when the disk is
        full, a line saying so."""
        self._infos = SharedInfos()  # loading is over (but for directories new later)
        wanted: dict[str, tuple[str, object]] = {
            self.file_name("apks", path): (path, files) for path, files in listings.items()
        }
        wanted.update(
            (self.file_name("index", path), (path, entry))
            for path, entry in indexes.items()
            if entry[1] is not None  # unreadable: read (and reported) again
        )
        changed = [n for n, (_, held) in wanted.items() if self._saved.get(n) is not held]
        if not changed and wanted.keys() == self._saved.keys():
            return ""
        try:
            self._write(changed, wanted)
            self._prune(wanted)
        except OSError as exc:
            if is_no_space(exc):
                return f"scanner cache {self.directory}: {exc}"
            log.warning("cannot write scanner cache in %s: %s", self.directory, exc)
        return ""

    def _write(self, changed: list[str], wanted: Mapping[str, tuple[str, object]]) -> None:
        """Write the changed files in batches of a bounded size (one sync each)."""
        batch: list[tuple[str | Path, bytes]] = []
        made: dict[int, str] = {}  # info lines of the batch, for the ApkInfos shared
        for name in changed:
            path, held = wanted[name]
            data = self._dump(name, path, held, made)
            if data is None or len(data) > MAX_CACHE_BYTES:
                self._saved[name] = held  # not kept: read again after a restart
                continue
            batch.append((self.directory / name, data))
            if sum(len(d) for _, d in batch) >= BATCH_BYTES:
                self._flush(batch, wanted)
                batch, made = [], {}
        if batch:
            self._flush(batch, wanted)

    def _dump(self, name: str, path: str, held: object, made: dict[int, str]) -> bytes | None:
        if name.endswith(".apks"):
            return dump_listing(path, cast(Mapping[str, FileEntry], held), self.code, made)
        return dump_index(path, cast(IndexEntry, held), self.code)

    def _flush(
        self, batch: list[tuple[str | Path, bytes]], wanted: Mapping[str, tuple[str, object]]
    ) -> None:
        write_batch(batch)
        for target, _ in batch:
            name = Path(target).name
            self._saved[name] = wanted[name][1]

    def _prune(self, wanted: Mapping[str, object]) -> None:
        """Remove the files of directories and indexes the scanner no longer sees."""
        for name in list(self._saved):
            if name not in wanted:
                del self._saved[name]
        try:
            with os.scandir(self.directory) as entries:
                stale = [
                    e.path
                    for e in entries
                    if e.name.endswith((".apks", ".index")) and e.name not in wanted
                ]
        except FileNotFoundError:
            return
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
