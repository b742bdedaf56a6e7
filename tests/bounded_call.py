"""A call that could hang or eat the machine if a bug came back: run in a thread
with a time bound and an address-space bound, so the test fails instead."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")


@contextlib.contextmanager
def memory_bound(extra: int = 1 << 30) -> Iterator[None]:
    """This process may grow by `extra` bytes of address space, no more: a reader
    that streamed /dev/zero again would fail with MemoryError, not eat the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm", encoding="ascii") as statm:
        size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = size + extra if hard == resource.RLIM_INFINITY else min(size + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def in_time(call: Callable[[], T], tree: Path, seconds: float = 60) -> T:
    """call(), in a thread that a blocking open cannot keep (a FIFO with no writer
    would hang the test forever if the tree's FIFOs were ever opened blocking), with
    a bound on memory (a /dev/zero read to its end fails rather than eats it all)."""
    done: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            done.append(call())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    with memory_bound():
        thread.start()
        thread.join(seconds)
        if thread.is_alive():
            for fifo in (p for p in tree.rglob("*") if p.is_fifo()):
                # A blocked open of a FIFO returns once a writer comes: let the thread go.
                with contextlib.suppress(OSError):
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(5)
            pytest.fail(f"took more than {seconds} s (blocked?)")
    if errors:
        raise errors[0]
    return done[0]
