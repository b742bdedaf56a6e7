"""Bounded history on disk: delete a directory's oldest entries beyond an age, a
count or a size.

An entry is a file or a directory directly inside the pruned directory, dated by
its own modification time (lstat: a symlink is dated, never followed) and sized
with everything below it. A file `<name>.reason` (or any `<name>.<suffix>` named
in `companions`) goes with `<name>`. Entries named in `keep` stay whatever their
age. Nothing here raises for an entry that vanished or cannot be removed: the
next pruning tries again.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Collection
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a pruned directory may hold; None: no limit of that kind."""

    max_age_seconds: float
    max_entries: int | None = None
    max_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    mtime: float
    size: int
    names: tuple[str, ...]  # the entry and its companions


def prune(
    directory: os.PathLike[str] | str,
    now: float,
    limits: Limits,
    *,
    keep: Collection[str] = (),
    companions: tuple[str, ...] = (".reason",),
) -> list[str]:
    """Delete the entries of `directory` older than the age, then the oldest ones
    until the count and the size are within the limits. Returns the names deleted."""
    entries = _entries(os.fspath(directory), companions)
    entries.sort(key=lambda e: (e.mtime, e.name))
    count = len(entries)
    total = sum(e.size for e in entries)
    removed: list[str] = []
    for entry in entries:
        too_old = now - entry.mtime > limits.max_age_seconds
        too_many = limits.max_entries is not None and count > limits.max_entries
        too_big = limits.max_bytes is not None and total > limits.max_bytes
        if not (too_old or too_many or too_big) or entry.name in keep:
            continue
        for name in entry.names:
            _remove(os.path.join(os.fspath(directory), name))
        count -= 1
        total -= entry.size
        removed.append(entry.name)
    if removed:
        log.info("pruned %d old entries of %s", len(removed), os.fspath(directory))
    return removed


def prune_directory(
    directory: os.PathLike[str] | str, now: float, max_age: float, max_files: int
) -> int:
    """Trigger archives: by age and count, each file with its `.reason`."""
    return len(prune(directory, now, Limits(max_age, max_entries=max_files)))


def _entries(directory: str, companions: tuple[str, ...]) -> list[_Entry]:
    try:
        with os.scandir(directory) as listing:
            found = {e.name: e for e in listing if not e.name.startswith(".")}
    except OSError:
        return []
    attached: dict[str, list[str]] = {}  # base name -> its companions
    for name in found:
        for suffix in companions:
            base = name[: -len(suffix)]
            if name.endswith(suffix) and base in found:
                attached.setdefault(base, []).append(name)
    companion_names = {c for group in attached.values() for c in group}
    entries = []
    for name, entry in found.items():
        if name in companion_names:
            continue
        names = (name, *attached.get(name, ()))
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        size = sum(_size(os.path.join(directory, n)) for n in names)
        entries.append(_Entry(name, info.st_mtime, size, names))
    return entries


def _size(path: str) -> int:
    """Bytes of a file, or of everything below a directory (symlinks not followed)."""
    try:
        info = os.lstat(path)
    except OSError:
        return 0
    if not stat.S_ISDIR(info.st_mode):
        return info.st_size
    total = 0
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _remove(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot prune %s: %s", path, exc)
