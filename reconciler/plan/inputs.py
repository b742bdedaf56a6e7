"""What plan() is told besides desired and observed state: the branches in build
order, the limits, the operators' standing intents and this pass's requests.

Values only. The loop makes them from the configuration and the pass; the plan
memo compares them by equality.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from reconciler.model.images import DesiredImage
from reconciler.model.names import RepoKey
from reconciler.operator.intents import BranchRemoval, Intents


@dataclass(frozen=True, slots=True)
class BranchOrder:
    name: str
    arches: tuple[str, ...]  # the first is native
    ignore_errors: bool = False
    origin: str = ""  # a staging branch: the configured branch it stages for
    pmaports: str = ""  # the checkout builds of this branch read


@dataclass(frozen=True, slots=True)
class ImageSettings:
    """The images of this slot and how they are run and kept.

    `matrix`: every image the configuration names, as (branch, release, device,
    UI, kernel), whatever the trees hold: what an operator's removal may not
    touch. `root`: the images directory, as the reasons name it."""

    desired: tuple[DesiredImage, ...] = ()
    keep: int = 2  # published date directories kept per (release, device, UI)
    max_parallel: int = 1  # image jobs at once, within the jobs' own limit
    min_free_bytes: int = 0  # no image job starts with less free (0: no guard)
    root: str = ""
    matrix: frozenset[tuple[str, str, str, str, str]] = frozenset()


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
    images: ImageSettings = field(default_factory=ImageSettings)

    def paused(self, repo: RepoKey, now: float) -> str:
        """Why no new job may start in `repo` ("" when it may)."""
        pause = self.intents.pause_for(repo, now)
        if pause is None:
            return ""
        since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(pause.since))
        return f"paused by {pause.who} since {since} UTC: {pause.why}"

    def backoff(self, failures: int) -> float:
        delay: float = self.backoff_seconds * 2.0 ** max(failures - 1, 0)
        return min(delay, self.backoff_max_seconds)
