"""What plan() is told besides desired and observed state: the branches in build
order, the limits, the operators' standing intents and this pass's requests.

Values only. The loop makes them from the configuration and the pass; the plan
memo compares them by equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.operator.intents import BranchRemoval, Intents


@dataclass(frozen=True, slots=True)
class BranchOrder:
    name: str
    arches: tuple[str, ...]  # the first is native
    ignore_errors: bool = False
    origin: str = ""  # a staging branch: the configured branch it stages for
    pmaports: str = ""  # the checkout builds of this branch read


@dataclass(frozen=True, slots=True)
class PlanSettings:
    branches: tuple[BranchOrder, ...]
    splitrepos: tuple[str, ...]
    max_parallel: int
    max_tries: int
    backoff_seconds: float
    backoff_max_seconds: float
    intents: Intents = field(default_factory=Intents)
    mirror: bool = False  # a mirror is configured: published repositories go there too
    mirror_retry_seconds: float = 60.0  # after a failed transfer, wait this long
    removals: tuple[BranchRemoval, ...] = ()

    def backoff(self, failures: int) -> float:
        delay: float = self.backoff_seconds * 2.0 ** max(failures - 1, 0)
        return min(delay, self.backoff_max_seconds)
