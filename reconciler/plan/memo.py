"""plan() again only when one of its inputs changed: the memo of the last plan.

plan() is pure, so its result may be reused while every input is the same. The
inputs and how each is compared, cheapest first:

- desired: the BranchDesired objects, by identity (the reader hands out the same
  object while a branch's tree is unchanged);
- observed repositories: the RepoObserved objects, by identity (the scanner hands
  out the same object while a repository's directories and indexes are unchanged);
- jobs, refused results, mirrored indexes, published images, the job service's
  error: by equality; the images directory's free space only by what the plan
  makes of it (`images.disk_wait`: "" while there is enough), so that a
  changing number of free bytes does not make every pass plan again;
- settings, which carry the operator intents (holds, retries): by equality;
- the clock: plan() reads `now` only to tell whether a retry is due and whether a
  hold (of a package or an image) has expired, so a plan stays valid from the
  moment it was made until the earliest retry deadline (`Plan.next_wakeup`),
  hold or pause expiry or mirror retry after it. A failed
  job without an end time makes its deadline depend on `now` itself: such a plan
  is never reused.

A clock that goes backwards also invalidates the memo.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from reconciler.model.observations import ObservedState
from reconciler.model.packages import BranchDesired
from reconciler.plan.images import disk_wait
from reconciler.plan.inputs import PlanSettings
from reconciler.plan.planner import Plan, plan

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What one plan was made from; `matches` compares another pass's inputs."""

    desired: tuple[tuple[str, BranchDesired], ...]
    observed: ObservedState
    settings: PlanSettings

    def matches(
        self, desired: Mapping[str, BranchDesired], observed: ObservedState, settings: PlanSettings
    ) -> bool:
        mine = self.observed
        return (
            same_items(self.desired, desired)
            and same_items(tuple(mine.repos.items()), observed.repos)
            and mine.job_service_error == observed.job_service_error
            and mine.jobs == observed.jobs
            and mine.rejected == observed.rejected
            and mine.mirrored == observed.mirrored
            and mine.mirror_failures == observed.mirror_failures
            and mine.images == observed.images
            and self.settings == settings
            and disk_wait(mine.images_free_bytes, settings.images)
            == disk_wait(observed.images_free_bytes, settings.images)
        )


def same_items(items: tuple[tuple[K, V], ...], mapping: Mapping[K, V]) -> bool:
    """The mapping has exactly these keys, each with the very same value object."""
    if len(items) != len(mapping):
        return False
    return all(mapping.get(key) is value for key, value in items)


def valid_until(result: Plan, observed: ObservedState, settings: PlanSettings, now: float) -> float:
    """Until when (exclusive) `result`, made at `now`, holds for the same inputs."""
    for obs in observed.jobs.values():
        if not obs.status.is_live and not obs.ended_at:
            return now  # its retry deadline moves with the clock
    intents = settings.intents
    expiries = [h.expires for h in intents.holds] + [p.expires for p in intents.pauses]
    expiries += [h.expires for h in intents.image_holds]
    deadlines = [t for t in expiries if t is not None]
    deadlines += [t + settings.mirror_retry_seconds for t in observed.mirror_failures.values()]
    if result.next_wakeup is not None:
        deadlines.append(result.next_wakeup)
    return min((d for d in deadlines if d > now), default=math.inf)


class PlanMemo:
    """The last plan and what it was made from; one per daemon."""

    def __init__(self) -> None:
        self._inputs: _Inputs | None = None
        self._plan: Plan | None = None
        self._made_at = 0.0
        self._valid_until = 0.0
        self.hits = 0  # for tests: how many plans were reused

    def plan(
        self,
        desired: Mapping[str, BranchDesired],
        observed: ObservedState,
        settings: PlanSettings,
        now: float,
    ) -> Plan:
        """The same result as plan(desired, observed, settings, now)."""
        if (
            self._plan is not None
            and self._inputs is not None
            and self._made_at <= now < self._valid_until
            and self._inputs.matches(desired, observed, settings)
        ):
            self.hits += 1
            return self._plan
        result = plan(desired, observed, settings, now)
        self._inputs = _Inputs(tuple(desired.items()), observed, settings)
        self._plan = result
        self._made_at = now
        self._valid_until = valid_until(result, observed, settings, now)
        return result
