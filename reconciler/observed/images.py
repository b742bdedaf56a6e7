"""What the images tree holds: `<release>/<device>/<ui>/<date>/` directories and
their files, with the checksums their `.sha256` / `.sha512` files state; and how
much space its file system has free (`free_bytes`, for `images.min_free_bytes`).

Read as hostile input: only names the images model allows are taken (a release,
codenames, `YYYYMMDD-HHMM` dates), symlinks and other odd entries are skipped,
checksum files are read bounded and only as regular files. A UI directory is
listed again only when its modification time changed (a date directory arrives
or leaves by a rename in it), so a quiet pass costs a stat per UI directory. A
listing taken within RACY_NS of the directory's last change is not kept: a
change in the same clock tick would leave the mtime as it was (git's "racy"
rule).
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.fs.regularfile import Refused, read_regular
from reconciler.model.images import JOB_ID_FILE, is_image_name, is_release_name, is_slot_name
from reconciler.model.jobs import JobKey
from reconciler.model.observations import ImageFile, PublishedImage

log = logging.getLogger(__name__)

MAX_CHECKSUM_FILE = 4096
RACY_NS = 2_000_000_000
_HEX = {".sha256": re.compile(r"[0-9a-f]{64}"), ".sha512": re.compile(r"[0-9a-f]{128}")}


@dataclass(frozen=True, slots=True)
class _Listed:
    mtime_ns: int
    images: tuple[PublishedImage, ...]


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the file system of `path`
    (or of its nearest existing parent, where it will be made); None when it
    cannot be told."""
    for candidate in (path, *path.parents):
        try:
            found = os.statvfs(candidate)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot tell the free space of %s: %s", candidate, exc)
            return None
        return found.f_bavail * found.f_frsize
    return None


class ImageScanner:
    """Lists the images tree; keeps each UI directory's listing while its mtime holds."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._uis: dict[tuple[str, str, str], _Listed] = {}

    def free_bytes(self) -> int | None:
        """The free space of the tree's file system (`free_bytes`)."""
        return free_bytes(self.root)

    def scan(self, *, full: bool = False) -> tuple[PublishedImage, ...]:
        """Every published date directory, sorted; `full` lists every UI directory again."""
        if full:
            self._uis.clear()
        found: list[PublishedImage] = []
        seen: set[tuple[str, str, str]] = set()
        for release in _subdirs(self.root, is_release_name):
            for device in _subdirs(self.root / release, is_image_name):
                for ui in _subdirs(self.root / release / device, is_image_name):
                    key = (release, device, ui)
                    seen.add(key)
                    found.extend(self._ui(key))
        for gone in set(self._uis) - seen:
            del self._uis[gone]
        return tuple(sorted(found, key=lambda i: (i.release, i.device, i.ui, i.date)))

    def _ui(self, key: tuple[str, str, str]) -> tuple[PublishedImage, ...]:
        path = self.root.joinpath(*key)
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            return ()
        cached = self._uis.get(key)
        if cached is not None and cached.mtime_ns == mtime:
            return cached.images
        release, device, ui = key
        images = tuple(
            PublishedImage(release, device, ui, date, _files(path / date), _job_of(path / date))
            for date in _subdirs(path, is_slot_name)
        )
        if time.time_ns() - mtime > RACY_NS:
            self._uis[key] = _Listed(mtime, images)
        else:
            self._uis.pop(key, None)
        return images


def _subdirs(path: Path, valid: Callable[[str], bool]) -> list[str]:
    """The names of the real directories in `path` that `valid` accepts, sorted."""
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("cannot list %s: %s", path, exc)
        return []
    return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False) and valid(e.name))


def _files(path: Path) -> tuple[ImageFile, ...]:
    """The regular files of a date directory, the checksum files' values on the
    files they name."""
    sizes: dict[str, int] = {}
    try:
        entries = list(os.scandir(path))
    except OSError as exc:
        log.warning("cannot list %s: %s", path, exc)
        return ()
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            sizes[entry.name] = info.st_size
    sums: dict[str, dict[str, str]] = {}
    for name in sizes:
        for suffix, pattern in _HEX.items():
            target = name.removesuffix(suffix)
            if name.endswith(suffix) and target in sizes:
                value = _checksum(path / name, pattern)
                if value:
                    sums.setdefault(target, {})[suffix] = value
    return tuple(
        ImageFile(
            name,
            size,
            sums.get(name, {}).get(".sha256", ""),
            sums.get(name, {}).get(".sha512", ""),
        )
        for name, size in sorted(sizes.items())
    )


def _job_of(path: Path) -> str:
    """The job id a date directory's `.job` file names ("" when none is readable)."""
    try:
        _, data = read_regular(str(path / JOB_ID_FILE), MAX_CHECKSUM_FILE)
        return str(JobKey.from_job_id(data.decode("ascii").strip()).job_id)
    except (OSError, Refused, UnicodeDecodeError, ValueError):
        return ""


def _checksum(path: Path, pattern: re.Pattern[str]) -> str:
    """The hex digest a `sha256sum`-style file states first ("" when it states none)."""
    try:
        _, data = read_regular(str(path), MAX_CHECKSUM_FILE)
    except (OSError, Refused):
        return ""
    words = data.decode("ascii", errors="replace").split()
    return words[0] if words and pattern.fullmatch(words[0]) else ""
