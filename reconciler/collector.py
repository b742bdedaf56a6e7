"""The cyclic garbage collector, paused around work that makes many objects and no cycles.

Resolving a branch or rendering the site makes hundreds of thousands of
short-lived objects; each of the collector's runs meanwhile would walk the whole
heap again (at Alpine size about half of a cold branch resolution went there).
Reference counting still frees everything at once; what the collector would
have found waits for its next run.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block (nested blocks are fine)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
