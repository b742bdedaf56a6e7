"""Repository directories -> what each repository holds, read as little as possible.

Reading is cached so that a pass over unchanged directories opens no apk: a
directory is listed again only when its mtime changed (or on a full pass), an apk is
read only when its inode, size or mtime is new, and an index is parsed only when it
changed. `scan` returns the same RepoObserved object while nothing changed. With a
ScanCache (the daemon's, in its state directory) what was read outlives the
process: a restart opens only the apks and indexes whose identity changed since,
and `persist` writes what changed at the end of a pass. Nothing else here writes;
everything found is reported, including unreadable files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from reconciler.formats.apk import ApkError
from reconciler.formats.apkindex import IndexFormatError, parse_index_text, read_index_archive
from reconciler.formats.keys import parse_signature_name
from reconciler.fs.apkfiles import read_apk
from reconciler.model.layout import INDEX_NAME, RepoRoots
from reconciler.model.names import (
    LAYOUT_NAMES,
    STAGING_SEPARATOR,
    RepoKey,
    is_safe_branch,
)
from reconciler.model.observations import IndexView, RepoObserved
from reconciler.model.packages import ApkInfo
from reconciler.observed.scancache import FileEntry, Ident, ScanCache, misnamed

log = logging.getLogger(__name__)


# A directory whose mtime is this close to the moment it was listed may change
# again within the same timestamp tick; such a listing is not trusted next time.
RACY_NS = 2_000_000_000

_by_name = attrgetter("name")


@dataclass(frozen=True, slots=True)
class _DirListing:
    mtime_ns: int
    apks: dict[str, ApkInfo]  # file name -> info
    bad: dict[str, str]  # file name -> why unreadable
    # file name -> ((inode, size, mtime_ns), info): what was read, while it stays true
    files: dict[str, FileEntry]
    racy: bool = False


class RepoScanner:
    """Scans WIP, final and symlink directories, remembering what it already read.

    Each directory keeps its own file cache, replaced whole when the directory is
    listed again, so files that left are forgotten with their directory. A
    listing costs one scandir; between full listings an apk whose inode did not
    change is not even stat'ed (writers rename new files in), a full listing
    (start, resync) stats every apk and reads those whose inode, size or mtime
    changed; when none did and no file came or left, the listing is the same
    object as before. `scan` hands out the very same RepoObserved object while
    nothing in the repository changed, so callers can tell "unchanged" by identity.
    With a `cache`, a directory or index first met is looked up there and
    its entries are trusted only as a full listing trusts its own.
    """

    def __init__(self, roots: RepoRoots, cache: ScanCache | None = None) -> None:
        self.roots = roots
        self.cache = cache
        self._dirs: dict[str, _DirListing] = {}
        self._indexes: dict[str, tuple[Ident, IndexView | None]] = {}
        self._repos: dict[RepoKey, RepoObserved] = {}
        self._missing = _DirListing(0, {}, {}, {})  # a directory that does not exist
        self.apks_opened = 0  # for tests and metrics: how many apk files were read
        self.indexes_read = 0  # for tests: how many index files were parsed

    def scan(self, key: RepoKey, *, full: bool = False) -> RepoObserved:
        """One repository. `full` lists the directories again (start and resync);
        an apk is read again only when its inode, size or mtime changed."""
        relpath = key.relpath
        wip_dir = os.path.join(self.roots.wip, relpath)
        final_dir = os.path.join(self.roots.final, relpath)
        wip = self._listing(wip_dir, full)
        final = self._listing(final_dir, full)
        wip_index = self._index(os.path.join(wip_dir, INDEX_NAME))
        final_index = self._index(os.path.join(final_dir, INDEX_NAME))
        symlink_index = self._index(os.path.join(self.roots.symlink, relpath, INDEX_NAME))
        last = self._repos.get(key)
        if (
            last is not None
            and last.wip is wip.apks
            and last.final is final.apks
            and last.bad_wip is wip.bad
            and last.bad_final is final.bad
            and last.wip_index is wip_index
            and last.final_index is final_index
            and last.symlink_index is symlink_index
        ):
            return last
        observed = RepoObserved(
            wip=wip.apks,
            final=final.apks,
            wip_index=wip_index,
            final_index=final_index,
            symlink_index=symlink_index,
            bad_wip=wip.bad,
            bad_final=final.bad,
        )
        self._repos[key] = observed
        return observed

    def persist(self) -> str:
        """Write what changed since the last call to the cache, if there is one
        (nothing after a pass that found no change); "" or a line saying the
        disk is full."""
        if self.cache is None:
            return ""
        listings = {directory: listing.files for directory, listing in self._dirs.items()}
        return self.cache.save(listings, self._indexes)

    def _listing(self, directory: str, full: bool) -> _DirListing:
        try:
            mtime_ns = os.stat(directory).st_mtime_ns
        except FileNotFoundError:
            self._dirs.pop(directory, None)
            return self._missing
        cached = self._dirs.get(directory)
        if cached is not None and cached.mtime_ns == mtime_ns and not cached.racy and not full:
            return cached
        racy = time.time_ns() - mtime_ns < RACY_NS
        with os.scandir(directory) as entries:
            found = [e for e in entries if e.name.endswith(".apk")]
        if cached is None and self.cache is not None:
            stored = self.cache.listing(directory)
            if stored is not None:  # trusted as a full listing trusts its own
                files, apks, bad = stored
                cached, full = _DirListing(0, apks, bad, files), True
        if cached is not None and full and _unchanged(found, cached):
            listing = _DirListing(mtime_ns, cached.apks, cached.bad, cached.files, racy)
        else:
            listing = self._read_listing(found, cached, full, mtime_ns, racy)
        self._dirs[directory] = listing
        return listing

    def _read_listing(
        self,
        found: list[os.DirEntry[str]],
        cached: _DirListing | None,
        full: bool,
        mtime_ns: int,
        racy: bool,
    ) -> _DirListing:
        """A listing made file by file: what is known and unchanged is kept, the
        rest is read."""
        known = cached.files if cached is not None else {}
        files: dict[str, FileEntry] = {}
        apks: dict[str, ApkInfo] = {}
        bad: dict[str, str] = {}
        for entry in sorted(found, key=_by_name):
            name = sys.intern(entry.name)
            info, problem = self._apk(name, entry, known, files, full)
            if info is None or (problem := misnamed(name, info)):
                bad[name] = problem
            else:
                apks[name] = info
        if cached is not None:  # the same objects: "nothing changed"
            if files == cached.files:
                files = cached.files
            if apks == cached.apks and bad == cached.bad:
                apks, bad = cached.apks, cached.bad
        return _DirListing(mtime_ns, apks, bad, files, racy)

    def _apk(
        self,
        name: str,
        entry: os.DirEntry[str],
        known: dict[str, FileEntry],
        files: dict[str, FileEntry],
        full: bool,
    ) -> tuple[ApkInfo | None, str]:
        cached = known.get(name)
        if not full and cached is not None and cached[0][0] == entry.inode():
            # Same inode (from the directory listing, no stat): every writer here
            # renames a new file in, so the content is the same. An in-place change
            # by anyone else is seen at the next full listing (start, resync).
            files[name] = cached
            return cached[1], ""
        try:
            stat = entry.stat()
        except OSError as exc:
            return None, f"{name}: {exc}"
        ident = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if cached is not None and cached[0] == ident:
            files[name] = cached
            return cached[1], ""
        try:
            self.apks_opened += 1
            info = read_apk(Path(entry.path))
        except (ApkError, OSError) as exc:
            return None, str(exc)
        files[name] = (ident, info)
        return info, ""

    def _index(self, path: str) -> IndexView | None:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            self._indexes.pop(path, None)
            return None
        ident = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        cached = self._indexes.get(path)
        if cached is None and self.cache is not None:
            cached = self.cache.index(path)
        if cached is not None and cached[0] == ident:
            self._indexes[path] = cached
            return cached[1]
        self.indexes_read += 1
        view = read_index_view(Path(path))
        self._indexes[path] = (ident, view)
        return view


def _unchanged(found: list[os.DirEntry[str]], cached: _DirListing) -> bool:
    """Whether the apks found are exactly those `cached` read, each with the same
    inode, size and mtime (one stat each: an in-place change is seen), and none of
    them was unreadable (those are tried again). The cheap way of a full listing
    through an unchanged directory."""
    files = cached.files
    if len(found) != len(files) or len(files) != len(cached.apks) + len(cached.bad):
        return False
    for entry in found:
        known = files.get(entry.name)
        if known is None:
            return False
        try:
            stat = entry.stat()
        except OSError:
            return False
        inode, size, mtime_ns = known[0]
        if stat.st_mtime_ns != mtime_ns or stat.st_ino != inode or stat.st_size != size:
            return False
    return True


def read_index_view(path: Path) -> IndexView | None:
    """What an APKINDEX.tar.gz lists; None (and a log line) when it is unreadable."""
    try:
        data = path.read_bytes()
        archive = read_index_archive(data, str(path))
        entries = parse_index_text(archive.text, str(path))
    except (OSError, IndexFormatError, ValueError) as exc:
        log.error("unreadable index %s: %s", path, exc)
        return None
    # Interned: the same file names and checksums key the directory listings.
    files = {sys.intern(f"{e.pkgname}-{e.version}.apk"): sys.intern(e.checksum) for e in entries}
    return IndexView(
        files=files,
        sha256=hashlib.sha256(data).hexdigest(),
        description=archive.description or "",
        mtime=path.stat().st_mtime,
        signer=signer_of(archive.signatures),
    )


def signer_of(signatures: tuple[tuple[str, bytes], ...]) -> str:
    """The key name the first signature names, when it can be a file name ("" otherwise)."""
    parsed = parse_signature_name(signatures[0][0]) if signatures else None
    name = parsed[0] if parsed is not None else ""
    return name if "/" not in name and not name.startswith(".") else ""


def stored_branches(roots: RepoRoots) -> frozenset[str]:
    """The branches with a repository directory in WIP, symlink or final: those at
    the top, under `staging/<name>/<origin>` and under `extra-repos/<split>/`."""
    found: set[str] = set()

    def branches_in(base: Path) -> None:
        for name in _subdirectories(base):
            if name not in LAYOUT_NAMES and is_safe_branch(name):
                found.add(name)
        for name in _subdirectories(base / "staging"):
            for origin in _subdirectories(base / "staging" / name):
                branch = f"{origin}{STAGING_SEPARATOR}{name}"
                if is_safe_branch(branch):
                    found.add(branch)

    for root in (roots.wip, roots.symlink, roots.final):
        branches_in(root)
        for split in _subdirectories(root / "extra-repos"):
            branches_in(root / "extra-repos" / split)
    return frozenset(found)


def _subdirectories(path: Path) -> list[str]:
    """Names of the real directories in `path` (none when it is not one)."""
    try:
        with os.scandir(path) as entries:
            return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
