"""At most one write per key per window, and none lost: the receiver's coalescer.

A flood of requests that all mean the same thing ("branch X moved", "look now")
must not become a flood of trigger files, yet the last request must always be
followed by a file written after it. `Coalescer.offer(key, value)` does that per
key (a branch for pushes, one fixed key for look-now):

- the first offer for a key, or one a full window after that key's last write,
  is written at once ("written");
- an offer inside the window schedules one write for the window's end
  ("scheduled"); later offers inside the window join it ("coalesced"), and the
  latest value is the one written;
- so a key gets at most one write per window (plus the first), and every offer
  is followed within one window by a write of it or of a later value.

`close()` (the receiver shutting down) writes the pending values at once instead
of dropping them; an offer after `close()` is written at once. Writes run under
the coalescer's lock, so one key's writes never overtake each other. A failed
write of an offer made at once propagates to the caller (the request answers
500); a failed deferred write is logged (the daemon's next full pass fetches
every branch anyway).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

V = TypeVar("V")

PRUNE_ABOVE = 256  # keys remembered before the ones idle for a window are dropped


@dataclass(slots=True)
class _Key(Generic[V]):
    last: float  # when this key was last written (the window starts there)
    pending: tuple[V] | None = None  # the value to write at the window's end
    timer: threading.Timer | None = None


class Coalescer(Generic[V]):
    """Per key: write now, or once at the end of the window with the latest value."""

    def __init__(
        self,
        window: float,
        write: Callable[[str, V], object],
        *,
        name: str = "coalescer",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.name = name
        self._write = write
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, _Key[V]] = {}
        self._closed = False

    def offer(self, key: str, value: V) -> str:
        """Write now, schedule a write, or join the scheduled one; say which."""
        with self._lock:
            now = self._clock()
            state = self._keys.get(key)
            if self._closed:
                self._write(key, value)
                return "written"
            if state is not None and state.timer is not None:
                state.pending = (value,)
                return "coalesced"
            if state is None or now - state.last >= self.window:
                self._write(key, value)
                self._remember(key, now)
                return "written"
            state.pending = (value,)
            state.timer = threading.Timer(state.last + self.window - now, self._deferred, (key,))
            state.timer.daemon = True
            state.timer.start()
            return "scheduled"

    def pending(self) -> int:
        """How many keys wait for a write at the end of their window."""
        with self._lock:
            return sum(1 for state in self._keys.values() if state.timer is not None)

    def close(self) -> None:
        """Write every pending value now; later offers are written at once."""
        with self._lock:
            self._closed = True
            for key, state in self._keys.items():
                if state.timer is None:
                    continue
                state.timer.cancel()
                state.timer = None
                self._write_pending(key, state)

    def _deferred(self, key: str) -> None:
        with self._lock:
            state = self._keys.get(key)
            if state is None or state.timer is None:  # flushed by close() meanwhile
                return
            state.timer = None
            state.last = self._clock()
            self._write_pending(key, state)

    def _write_pending(self, key: str, state: _Key[V]) -> None:
        """A deferred write: nobody waits for it, so a failure is logged."""
        pending, state.pending = state.pending, None
        if pending is None:
            return
        try:
            self._write(key, pending[0])
        except Exception:
            log.exception("%s: cannot write the coalesced %r", self.name, key)

    def _remember(self, key: str, now: float) -> None:
        """Record a write; forget keys idle for a window once there are many."""
        state = self._keys.get(key)
        if state is None:
            self._keys[key] = _Key(now)
        else:
            state.last = now
        if len(self._keys) > PRUNE_ABOVE:
            idle = [
                k
                for k, s in self._keys.items()
                if s.timer is None and now - s.last >= self.window and k != key
            ]
            for k in idle:
                del self._keys[k]
