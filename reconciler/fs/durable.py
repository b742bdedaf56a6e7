"""The durable directory: the files that hold decisions, apart from the caches.

Operators' intents (holds, retries, rebuilds, dead jobs, pauses) and the push-hook
token hashes cannot be recomputed from anything else, so they live in
`paths.durable`, which "delete the cache" never touches. Each write is atomic and
keeps the previous version beside the file as `<name>.prev`: the current file is
hard-linked aside before the new one is renamed over it, so at every instant the
file exists, whole, at its name. Releases before this kept them in `paths.state`;
`adopt_legacy` moves them over once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from pathlib import Path

from reconciler.fs.atomicfile import fsync_dir, write_bytes
from reconciler.model.errors import InputError

log = logging.getLogger(__name__)

PREVIOUS_SUFFIX = ".prev"


class DurableMoveError(InputError):
    """A file of the old place that could not be moved into the durable directory."""


def previous_version(path: Path) -> Path:
    return path.with_name(path.name + PREVIOUS_SUFFIX)


def write_keeping_previous(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Atomically replace `path` with `data`; what it held before becomes `<name>.prev`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.prev.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(aside)
    try:
        os.link(path, aside)
    except FileNotFoundError:
        pass  # the first version: nothing to keep
    else:
        os.replace(aside, previous_version(path))
    write_bytes(path, data, mode=mode)


def adopt_legacy(durable: Path, legacy: Path, names: tuple[str, ...]) -> list[str]:
    """Move each named file from the old place (`legacy`, the state directory) into
    `durable`, unless `durable` already has it. Returns what moved. A move across
    file systems is copy, fsync, rename, then delete: never lost, at worst twice."""
    moved = []
    for name in names:
        source, target = legacy / name, durable / name
        if target.exists() or not source.exists() or source == target:
            continue
        try:
            _move(source, target)
        except OSError as exc:
            raise DurableMoveError(f"{source}: cannot move it to {durable}: {exc}") from exc
        log.info("moved %s to %s, where decisions are kept apart from caches", source, target)
        moved.append(name)
    return moved


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        aside = target.with_name(f".{target.name}.adopt.tmp")
        shutil.copy2(source, aside)
        with open(aside, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(aside, target)
        fsync_dir(target.parent)
        source.unlink()
    else:
        fsync_dir(target.parent)
