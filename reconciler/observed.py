"""Repository directories and the job service -> an ObservedState snapshot.

Reading is cached so that a pass over unchanged directories opens no apk: a
directory is listed again only when its mtime changed, an apk is read only when
its name, size or mtime is new, and an index is parsed only when it changed.
Nothing here writes; everything found is reported, including unreadable files.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .apk import ApkError, read_apk
from .apkindex import IndexFormatError, parse_index_text, read_index_archive
from .jobs import JobService, JobServiceError
from .model import ApkInfo, IndexView, ObservedState, RepoKey, RepoObserved, is_safe_name

log = logging.getLogger(__name__)

INDEX_NAME = "APKINDEX.tar.gz"


@dataclass(frozen=True, slots=True)
class RepoRoots:
    wip: Path
    final: Path
    symlink: Path


# A directory whose mtime is this close to the moment it was listed may change
# again within the same timestamp tick; such a listing is not trusted next time.
RACY_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class _DirListing:
    mtime_ns: int
    apks: dict[str, ApkInfo]
    bad: dict[str, str]
    racy: bool = False


class RepoScanner:
    """Scans WIP, final and symlink directories, remembering what it already read."""

    def __init__(self, roots: RepoRoots) -> None:
        self.roots = roots
        self._dirs: dict[Path, _DirListing] = {}
        # Keyed by path; valid while (inode, size, mtime) stay the same. Every writer
        # replaces files by rename, so a rewrite always changes the inode.
        self._files: dict[Path, tuple[tuple[int, int, int], ApkInfo]] = {}
        self._indexes: dict[Path, tuple[tuple[int, int, int], IndexView | None]] = {}
        self.apks_opened = 0  # for tests and metrics: how many apk files were read

    def scan(self, key: RepoKey, *, full: bool = False) -> RepoObserved:
        """One repository. `full` forgets the directory cache (start and resync)."""
        wip_dir = self.roots.wip / key.relpath
        final_dir = self.roots.final / key.relpath
        if full:
            for directory in (wip_dir, final_dir):
                self._dirs.pop(directory, None)
        wip = self._listing(wip_dir)
        final = self._listing(final_dir)
        return RepoObserved(
            wip=wip.apks,
            final=final.apks,
            wip_index=self._index(wip_dir / INDEX_NAME),
            final_index=self._index(final_dir / INDEX_NAME),
            symlink_index=self._index(self.roots.symlink / key.relpath / INDEX_NAME),
            bad_wip=wip.bad,
            bad_final=final.bad,
        )

    def _listing(self, directory: Path) -> _DirListing:
        try:
            mtime_ns = directory.stat().st_mtime_ns
        except FileNotFoundError:
            return _DirListing(0, {}, {})
        cached = self._dirs.get(directory)
        if cached is not None and cached.mtime_ns == mtime_ns and not cached.racy:
            return cached
        listed_at = time.time_ns()
        apks: dict[str, ApkInfo] = {}
        bad: dict[str, str] = {}
        for path in sorted(directory.glob("*.apk")):
            info, problem = self._apk(path)
            if info is None:
                bad[path.name] = problem
            elif info.filename != path.name or not is_safe_name(info.pkgname):
                bad[path.name] = f"{path.name}: .PKGINFO says {info.filename}"
            else:
                apks[path.name] = info
        listing = _DirListing(mtime_ns, apks, bad, racy=listed_at - mtime_ns < RACY_NS)
        self._dirs[directory] = listing
        live = set(directory.glob("*.apk"))
        for stale in [p for p in self._files if p.parent == directory and p not in live]:
            del self._files[stale]
        return listing

    def _apk(self, path: Path) -> tuple[ApkInfo | None, str]:
        try:
            stat = path.stat()
        except OSError as exc:
            return None, f"{path.name}: {exc}"
        ident = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        cached = self._files.get(path)
        if cached is not None and cached[0] == ident:
            return cached[1], ""
        try:
            self.apks_opened += 1
            info = read_apk(path)
        except (ApkError, OSError) as exc:
            return None, str(exc)
        self._files[path] = (ident, info)
        return info, ""

    def _index(self, path: Path) -> IndexView | None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        ident = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        cached = self._indexes.get(path)
        if cached is not None and cached[0] == ident:
            return cached[1]
        view = read_index_view(path)
        self._indexes[path] = (ident, view)
        return view


def read_index_view(path: Path) -> IndexView | None:
    """What an APKINDEX.tar.gz lists; None (and a log line) when it is unreadable."""
    try:
        data = path.read_bytes()
        archive = read_index_archive(data, str(path))
        entries = parse_index_text(archive.text, str(path))
    except (OSError, IndexFormatError, ValueError) as exc:
        log.error("unreadable index %s: %s", path, exc)
        return None
    files = {f"{e.pkgname}-{e.version}.apk": e.checksum for e in entries}
    return IndexView(
        files=files,
        sha256=hashlib.sha256(data).hexdigest(),
        description=archive.description or "",
        mtime=path.stat().st_mtime,
    )


def observe(
    scanner: RepoScanner,
    repos: Iterable[RepoKey],
    jobs: JobService,
    rejected: dict[str, str],
    *,
    full: bool = False,
    mirrored: dict[str, str] | None = None,
) -> ObservedState:
    """The whole snapshot for one pass."""
    error = ""
    try:
        job_map = dict(jobs.list_jobs())
    except JobServiceError as exc:
        log.error("job service unreachable: %s", exc)
        job_map, error = {}, str(exc)
    return ObservedState(
        repos={key: scanner.scan(key, full=full) for key in repos},
        jobs=job_map,
        rejected=dict(rejected),
        job_service_error=error,
        mirrored=dict(mirrored or {}),
    )
