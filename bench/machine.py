"""The machine a benchmark runs on: one core to run on, and what file system it writes to.

A figure "on one core" means this process pinned to one CPU, so that the kernel's
work for it (file creation, writeback it waits for) cannot spread to the other;
and a file-creation figure means little without the file system it was taken on:
ext4 without a journal, for one, skips inodes freed in the last minutes when it
allocates new ones, which makes creating files just after deleting thousands
several times slower (`recently_deleted` in fs/ext4/ialloc.c).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@contextlib.contextmanager
def one_core() -> Iterator[str]:
    """Run this process (and its threads) on one CPU meanwhile; yield which (or why
    not), and give it back every CPU it had after."""
    if not hasattr(os, "sched_setaffinity"):
        yield "not pinned (no sched_setaffinity here)"
        return
    allowed = os.sched_getaffinity(0)
    first = min(allowed)
    os.sched_setaffinity(0, {first})
    try:
        yield f"pinned to CPU {first} of {len(allowed)}"
    finally:
        os.sched_setaffinity(0, allowed)


@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    source: str
    options: str

    def describe(self) -> str:
        kind = self.fstype
        if kind == "ext4":
            journal = _ext4_journal(self.source)
            if journal is not None:
                kind += " (journaled)" if journal else " (no journal)"
        extra = " with discard" if "discard" in self.options.split(",") else ""
        return f"{kind}{extra} on {self.source}, mounted at {self.point}"


def mount_of(path: Path) -> Mount | None:
    """The mount that holds `path`, from /proc/self/mountinfo (None elsewhere)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best: Mount | None = None
    for line in lines:
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        point = fields[4].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.point)):
            best = Mount(point, fields[dash + 1], fields[dash + 2], f"{fields[5]},{fields[-1]}")
    return best


def describe_filesystem(path: Path) -> str:
    found = mount_of(path)
    return found.describe() if found is not None else "an unknown file system"


def _ext4_journal(source: str) -> bool | None:
    """Whether the ext4 file system on `source` has a journal (None: cannot tell)."""
    task = Path("/sys/fs/ext4") / os.path.basename(source) / "journal_task"
    try:
        return task.read_text().strip() != "<none>"
    except OSError:
        return None
