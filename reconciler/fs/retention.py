"""Bounded history on disk: delete a directory's oldest entries beyond an age, a
count or a size.

An entry is a file or a directory directly inside the pruned directory, dated by
its own modification time (lstat: a symlink is dated, never followed) and sized
with everything below it. Entries are pruned in groups (a trigger file with its
`.reason`, a log with its `.gz`, every attempt of one job intent), a group dated
by its newest entry. Groups named in `keep` stay whatever their age. Nothing
here raises for an entry that vanished or cannot be removed: the next pruning
tries again.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Callable, Collection
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a pruned directory may hold; None: no limit of that kind."""

    max_age_seconds: float
    max_entries: int | None = None
    max_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class _Group:
    key: str
    mtime: float  # of its newest member
    size: int
    names: tuple[str, ...]


def prune(
    directory: os.PathLike[str] | str,
    now: float,
    limits: Limits,
    *,
    keep: Collection[str] = (),
    group: Callable[[str], str] = lambda name: name,
) -> list[str]:
    """Delete the groups of entries of `directory` older than the age, then the
    oldest ones until the count and the size are within the limits. Entries with
    the same `group(name)` (a file and its `.reason`, a job's attempts) are dated
    by the newest of them and deleted together; a group whose key is in `keep`
    stays. Returns the keys of the groups deleted."""
    root = os.fspath(directory)
    groups = _groups(root, group)
    groups.sort(key=lambda g: (g.mtime, g.key))
    count = len(groups)
    total = sum(g.size for g in groups)
    removed: list[str] = []
    for entry in groups:
        too_old = now - entry.mtime > limits.max_age_seconds
        too_many = limits.max_entries is not None and count > limits.max_entries
        too_big = limits.max_bytes is not None and total > limits.max_bytes
        if not (too_old or too_many or too_big) or entry.key in keep:
            continue
        for name in entry.names:
            _remove(os.path.join(root, name))
        count -= 1
        total -= entry.size
        removed.append(entry.key)
    if removed:
        log.info("pruned %d old entries of %s", len(removed), root)
    return removed


def without_suffix(*suffixes: str) -> Callable[[str], str]:
    """A grouping: `x.reason` (say) goes with `x`."""

    def group(name: str) -> str:
        for suffix in suffixes:
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
        return name

    return group


def prune_directory(
    directory: os.PathLike[str] | str, now: float, max_age: float, max_files: int
) -> int:
    """Trigger archives: by age and count, each file with its `.reason`."""
    limits = Limits(max_age, max_entries=max_files)
    return len(prune(directory, now, limits, group=without_suffix(".reason")))


def _groups(directory: str, group: Callable[[str], str]) -> list[_Group]:
    try:
        with os.scandir(directory) as listing:
            found = [e for e in listing if not e.name.startswith(".")]
    except OSError:
        return []
    members: dict[str, list[tuple[str, float, int]]] = {}
    for entry in found:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        size = _size(entry.path) if stat.S_ISDIR(info.st_mode) else info.st_size
        members.setdefault(group(entry.name), []).append((entry.name, info.st_mtime, size))
    return [
        _Group(
            key,
            max(m[1] for m in found_members),
            sum(m[2] for m in found_members),
            tuple(m[0] for m in found_members),
        )
        for key, found_members in members.items()
    ]


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
