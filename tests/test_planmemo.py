"""PlanMemo reuses a plan only while every input that can change it is the same:
each kind of change (desired, a repository, jobs, refused results, intents, the
clock passing a retry deadline or a hold's expiry) makes a new plan."""

from __future__ import annotations

from dataclasses import replace

from reconciler.model.jobs import JobObservation, JobStatus
from reconciler.model.names import RepoKey
from reconciler.model.observations import ObservedState, RepoObserved
from reconciler.model.packages import BranchDesired, PkgSpec
from reconciler.model.progress import PkgState
from reconciler.operator.intents import Hold, Intents
from reconciler.plan.inputs import BranchOrder, PlanSettings
from reconciler.plan.memo import PlanMemo
from reconciler.plan.planner import Plan, plan

from .plan_values import NOW, X86, apk, job, repo, spec

SETTINGS = PlanSettings((BranchOrder("main", ("x86_64",)),), (), 4, 3, 60, 600)


def desired_of(*specs: PkgSpec) -> dict[str, BranchDesired]:
    repos: dict[RepoKey, dict[str, PkgSpec]] = {}
    for s in specs:
        repos.setdefault(s.repo, {})[s.pkgname] = s
    return {"main": BranchDesired("main", "c0ffee", repos)}


def observed_of(
    repos: dict[RepoKey, RepoObserved] | None = None,
    *jobs: JobObservation,
    rejected: dict[str, str] | None = None,
    mirrored: dict[str, str] | None = None,
) -> ObservedState:
    return ObservedState(
        repos or {X86: repo()}, {j.key: j for j in jobs}, rejected or {}, mirrored=mirrored or {}
    )


def state_of(result: Plan, name: str) -> PkgState:
    return next(p.state for p in result.packages if p.pkgname == name)


def test_same_inputs_give_the_same_plan_object() -> None:
    memo = PlanMemo()
    desired, observed = desired_of(spec("a")), observed_of()
    first = memo.plan(desired, observed, SETTINGS, NOW)
    again = memo.plan(desired, replace(observed, jobs=dict(observed.jobs)), SETTINGS, NOW + 1)
    assert again is first and memo.hits == 1
    assert again == plan(desired, observed, SETTINGS, NOW + 1)


def test_a_new_desired_state_or_repository_object_makes_a_new_plan() -> None:
    memo = PlanMemo()
    desired, observed = desired_of(spec("a")), observed_of()
    first = memo.plan(desired, observed, SETTINGS, NOW)
    bumped = desired_of(spec("a", "2-r0"))
    assert memo.plan(bumped, observed, SETTINGS, NOW) is not first
    # A new apk in WIP: the scanner hands out a new RepoObserved.
    with_apk = observed_of({X86: repo(wip=(apk("a", "2-r0"),))})
    result = memo.plan(bumped, with_apk, SETTINGS, NOW)
    assert state_of(result, "a") is PkgState.BUILT
    assert memo.hits == 0


def test_jobs_refusals_and_mirrors_are_inputs() -> None:
    memo = PlanMemo()
    desired = desired_of(spec("a"))
    running = job("a", JobStatus.RUNNING)
    first = memo.plan(desired, observed_of(None, running), SETTINGS, NOW)
    assert state_of(first, "a") is PkgState.BUILDING
    done = job("a", JobStatus.SUCCESS)
    second = memo.plan(desired, observed_of(None, done), SETTINGS, NOW)
    assert second is not first
    refused = observed_of(None, done, rejected={done.key.job_id: "bad apk"})
    third = memo.plan(desired, refused, SETTINGS, NOW)
    assert third is not second and state_of(third, "a") is PkgState.RETRYING
    mirrored = observed_of(None, done, rejected={done.key.job_id: "bad apk"}, mirrored={"x": "y"})
    assert memo.plan(desired, mirrored, SETTINGS, NOW) is not third
    assert memo.hits == 0


def test_an_operator_intent_makes_a_new_plan() -> None:
    memo = PlanMemo()
    desired, observed = desired_of(spec("a")), observed_of()
    memo.plan(desired, observed, SETTINGS, NOW)
    hold = Hold("main", "", "a", "op", "testing", NOW)
    held = replace(SETTINGS, intents=Intents(holds=(hold,)))
    assert state_of(memo.plan(desired, observed, held, NOW), "a") is PkgState.HELD
    assert memo.hits == 0


def test_a_retry_becomes_due_when_the_clock_passes_its_deadline() -> None:
    memo = PlanMemo()
    desired = desired_of(spec("a"))
    # Failed at NOW - 50, backoff 60 s: the next try is due at NOW + 10.
    observed = observed_of(None, job("a", JobStatus.FAILED))
    first = memo.plan(desired, observed, SETTINGS, NOW)
    assert state_of(first, "a") is PkgState.RETRYING and first.next_wakeup == NOW + 10
    assert memo.plan(desired, observed, SETTINGS, NOW + 9.9) is first
    due = memo.plan(desired, observed, SETTINGS, NOW + 10)
    assert due is not first and state_of(due, "a") is PkgState.BUILDING
    assert due == plan(desired, observed, SETTINGS, NOW + 10)


def test_a_hold_ends_when_it_expires() -> None:
    memo = PlanMemo()
    desired, observed = desired_of(spec("a")), observed_of()
    hold = Hold("main", "", "a", "op", "testing", NOW, expires=NOW + 30)
    held = replace(SETTINGS, intents=Intents(holds=(hold,)))
    first = memo.plan(desired, observed, held, NOW)
    assert state_of(first, "a") is PkgState.HELD
    assert memo.plan(desired, observed, held, NOW + 29) is first
    assert state_of(memo.plan(desired, observed, held, NOW + 30), "a") is PkgState.BUILDING


def test_a_failure_without_an_end_time_is_never_reused() -> None:
    memo = PlanMemo()
    desired = desired_of(spec("a"))
    failed = replace(job("a", JobStatus.FAILED), ended_at=None)
    observed = observed_of(None, failed)
    first = memo.plan(desired, observed, SETTINGS, NOW)
    second = memo.plan(desired, observed, SETTINGS, NOW + 1)
    assert second is not first and second == plan(desired, observed, SETTINGS, NOW + 1)


def test_a_clock_that_goes_back_makes_a_new_plan() -> None:
    memo = PlanMemo()
    desired, observed = desired_of(spec("a")), observed_of()
    first = memo.plan(desired, observed, SETTINGS, NOW)
    assert memo.plan(desired, observed, SETTINGS, NOW - 1) is not first
