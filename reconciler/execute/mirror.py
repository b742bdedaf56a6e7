"""Publishing final repositories to a mirror with rsync.

The only module that runs rsync. A repository goes over in three steps so that
the mirror's index never lists a package it does not have: new packages first
(without the index and without deleting anything), then the index, then the
deletions.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from reconciler.model.errors import UnavailableError
from reconciler.model.layout import INDEX_NAME

log = logging.getLogger(__name__)

RSYNC_TIMEOUT = 3600


class MirrorError(UnavailableError):
    """rsync failed; the message says which step and what rsync said."""


def _rsync(step: str, *args: str) -> None:
    argv = ["rsync", "--recursive", "--times", "--mkpath", "--timeout=300", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=RSYNC_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MirrorError(f"{step}: {exc}") from exc
    if done.returncode != 0:
        raise MirrorError(f"{step}: rsync exit {done.returncode}: {done.stderr.strip()[-400:]}")


def push_repository(final_dir: Path, target: str, relpath: str) -> None:
    """Make `<target><relpath>/` equal to `final_dir`, packages before index."""
    source = f"{final_dir}/"
    destination = f"{target}{relpath}/"
    _rsync("packages", "--exclude", INDEX_NAME, "--exclude", ".*", source, destination)
    _rsync("index", "--exclude", ".*", f"{final_dir}/{INDEX_NAME}", destination)
    _rsync("deletions", "--delete", "--exclude", ".*", source, destination)
    log.info("mirrored %s to %s", relpath, destination)
