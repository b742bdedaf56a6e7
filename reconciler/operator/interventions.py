"""Operator interventions during a pass: pushes and operation triggers turned into
new operator intents and events, and intents that are done dropped.

Pure apart from logging: the loop passes in what it observed and the triggers it
drained, and saves the intents and events this returns. `remove-branch` only
names the branches whose data the loop must delete; it is refused for a branch
the daemon still builds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation
from reconciler.model.observations import ObservedState
from reconciler.model.packages import BranchDesired
from reconciler.model.progress import Event
from reconciler.operator.intents import Intents
from reconciler.operator.operations import (
    apply_fail_job,
    apply_operation,
    apply_rebuild,
    highest_attempts,
    push_retries,
)

log = logging.getLogger(__name__)

# branch -> (commit before, commit after, package directories changed)
Pushes = Mapping[str, tuple[str, str, set[str]]]


@dataclass(frozen=True, slots=True)
class Intervention:
    intents: Intents
    events: list[Event] = field(default_factory=list)
    remove_branches: list[str] = field(default_factory=list)


def failing(
    jobs: Mapping[JobKey, JobObservation], attempts: Mapping[JobIntent, int]
) -> list[tuple[str, str, str]]:
    """(branch, arch, pkgname) whose last try failed, read from the job service."""
    return sorted(
        {
            (k.intent.repo.branch, k.intent.repo.arch, k.intent.pkgname)
            for k, o in jobs.items()
            if k.intent.kind is JobKind.BUILD
            and o.status.is_failure
            and k.attempt == attempts[k.intent]
        }
    )


def apply_pushes(
    intents: Intents,
    pushes: Pushes,
    desired: Mapping[str, BranchDesired],
    jobs: Mapping[JobKey, JobObservation],
    now: float,
) -> Intervention:
    """A push gives fresh tries to failing packages it touched, directly or not."""
    attempts = highest_attempts(jobs)
    failed = failing(jobs, attempts)
    events = []
    for branch, (before, after, changed) in pushes.items():
        summary = f"pmaports {before[:12] or '(new)'} -> {after[:12]}: {len(changed)} changed"
        events.append(Event(now, branch, "", "", "push", summary))
        if branch not in desired:
            continue
        mine = [(a, p) for b, a, p in failed if b == branch]
        intents, new = push_retries(intents, desired[branch], changed, mine, attempts, after, now)
        events += new
    return Intervention(intents, events)


def apply_operations(
    intents: Intents,
    operations: Sequence[Mapping[str, Any]],
    observed: ObservedState,
    desired: Mapping[str, BranchDesired],
    now: float,
) -> Intervention:
    """Manual operations (validated trigger data) -> new intents, events, removals."""
    attempts = highest_attempts(observed.jobs)
    failed_now = failing(observed.jobs, attempts)
    events: list[Event] = []
    removals: list[str] = []
    for data in operations:
        op = data["type"]
        if op == "fail-job":
            intents, new = apply_fail_job(intents, data, now)
        elif op == "rebuild":
            published = _published(observed, desired.get(data["branch"]), data["pkgname"])
            intents, new = apply_rebuild(intents, data, now, attempts, published)
        elif op == "remove-branch":
            new = [_removal(data, desired, now)]
            if new[0].kind == "removed":
                removals.append(data["branch"])
        else:
            branch, arch = data["branch"], data.get("arch", "")
            failed = [(a, p) for b, a, p in failed_now if b == branch and arch in ("", a)]
            intents, new = apply_operation(intents, data, now, attempts, failed)
        events += new
    for event in events:
        log.info("%s %s: %s", event.repo, event.pkgname, event.message)
    return Intervention(intents, events, removals)


def _published(
    observed: ObservedState, desired: BranchDesired | None, pkgname: str
) -> dict[tuple[str, str], tuple[str, str]]:
    """(arch, pkgname) -> (version, checksum) of the desired version final publishes."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    if desired is None:
        return found
    for key, specs in desired.repos.items():
        spec = specs.get(pkgname)
        obs = observed.repos.get(key)
        if spec is None or obs is None or obs.final_index is None:
            continue
        checksum = obs.final_index.files.get(f"{pkgname}-{spec.version}.apk")
        if checksum is not None:
            found[(key.arch, pkgname)] = (spec.version, checksum)
    return found


def _removal(data: Mapping[str, Any], desired: Mapping[str, BranchDesired], now: float) -> Event:
    branch, who, why = data["branch"], data["who"], data["why"]
    if branch in desired:
        message = f"removal asked by {who} refused: {branch} is still built ({why})"
        return Event(now, branch, "", "", "operator", message)
    return Event(now, branch, "", "", "removed", f"data of {branch} removed by {who}: {why}")


def settle(
    intents: Intents,
    observed: ObservedState,
    desired: Mapping[str, BranchDesired],
) -> Intents:
    """The intents without the requests that are done: rebuilds whose old bytes final
    no longer lists at a still desired version, and dead jobs the job service has
    forgotten (kept while it cannot be asked)."""
    if not intents.rebuilds and not intents.dead_jobs:
        return intents
    rebuilds = tuple(
        r
        for r in intents.rebuilds
        if _published(observed, desired.get(r.branch), r.pkgname).get((r.arch, r.pkgname))
        == (r.version, r.replaced)
    )
    dead = intents.dead_jobs
    if not observed.job_service_error:
        known = {k.job_id for k in observed.jobs}
        dead = tuple(d for d in dead if d.job_id in known)
    return replace(intents, rebuilds=rebuilds, dead_jobs=dead)
