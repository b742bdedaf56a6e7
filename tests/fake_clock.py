"""A clock that moves only when told: scenarios run through hours of backoff and
job durations in no time, and every time they see is the same on every run."""

from __future__ import annotations

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z


TICK = 0.01  # what each look at the clock costs: work takes time, even here


class FakeClock:
    """Call it for the time; `wait` is the daemon's sleep: it moves the time on.

    Each look moves it on by a tick too, so a loop that never waits still sees
    time pass (and a `converge(max_seconds=...)` still ends)."""

    def __init__(self, start: float = START, tick: float = TICK) -> None:
        self.now = start
        self.tick = tick
        self.waited = 0.0  # seconds the daemon slept, in total

    def __call__(self) -> float:
        self.now += self.tick
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)

    def wait(self, seconds: float) -> bool:
        """Sleep `seconds` at once; never woken by a trigger (passes drain them)."""
        self.advance(seconds)
        self.waited += max(seconds, 0.0)
        return False
