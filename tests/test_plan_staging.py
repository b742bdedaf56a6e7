"""plan() for staging branches: held back behind the origin, seeded from its
published packages, only the differences built."""

from __future__ import annotations

from reconciler.model.names import RepoKey
from reconciler.model.observations import ObservedState, RepoObserved
from reconciler.model.packages import BranchDesired, PkgSpec
from reconciler.model.progress import PkgState, RepoPhase
from reconciler.plan.actions import SeedFromOrigin, SubmitBuild
from reconciler.plan.inputs import BranchOrder, PlanSettings
from reconciler.plan.planner import Plan, plan
from reconciler.plan.staging import seed_files

from .plan_values import NOW, apk, repo, spec

MAIN = RepoKey("main", "", "x86_64")
STAGE = RepoKey("main_staging_try", "", "x86_64")


def run(main: list[PkgSpec], staged: list[PkgSpec], repos: dict[RepoKey, RepoObserved]) -> Plan:
    desired = {
        "main": BranchDesired("main", "c1", {MAIN: {s.pkgname: s for s in main}}),
        STAGE.branch: BranchDesired(STAGE.branch, "c2", {STAGE: {s.pkgname: s for s in staged}}),
    }
    settings = PlanSettings(
        (
            BranchOrder("main", ("x86_64",)),
            BranchOrder(STAGE.branch, ("x86_64",), True, origin="main"),
        ),
        (),
        4,
        3,
        60,
        600,
    )
    return plan(desired, ObservedState(repos, {}, {}), settings, NOW)


def test_staging_waits_while_its_origin_has_unpublished_packages() -> None:
    main = [spec("a"), spec("b", "2-r0")]
    staged = [spec("a", repo=STAGE), spec("b", "3-r0", repo=STAGE)]
    result = run(main, staged, {MAIN: repo(final=(apk("a"),))})
    staging = {p.pkgname: p for p in result.packages if p.repo == STAGE}
    assert {p.state for p in staging.values()} == {PkgState.WAITING}
    assert "held back: main/x86_64 has unpublished packages" in staging["b"].reason
    assert not [a for a in result.actions if getattr(a, "repo", None) == STAGE]
    assert [a.spec.repo for a in result.actions if isinstance(a, SubmitBuild)] == [MAIN]
    (status,) = [r for r in result.repos if r.repo == STAGE]
    assert status.phase is RepoPhase.BUILDING


def test_staging_copies_what_the_origin_publishes_and_builds_the_rest() -> None:
    main = [spec("a"), spec("b", "2-r0")]
    staged = [spec("a", repo=STAGE), spec("b", "3-r0", repo=STAGE)]
    published = repo(final=(apk("a"), apk("a-doc", origin="a"), apk("b", "2-r0")))
    result = run(main, staged, {MAIN: published})
    seeds = [a for a in result.actions if isinstance(a, SeedFromOrigin)]
    assert seeds == [SeedFromOrigin(STAGE, MAIN, ("a-1-r0.apk", "a-doc-1-r0.apk"))]
    builds = [a.key.job_id for a in result.actions if isinstance(a, SubmitBuild)]
    assert builds == ["build@main_staging_try@main@x86_64@b@3-r0@1"]
    staging = {p.pkgname: p.state for p in result.packages if p.repo == STAGE}
    assert staging == {"a": PkgState.BUILDING, "b": PkgState.BUILDING}


def test_nothing_is_seeded_twice_or_from_unlisted_files() -> None:
    specs = {"a": spec("a", repo=STAGE), "c": spec("c", repo=STAGE)}
    origin = repo(final=(apk("a"), apk("c")))
    # c is on disk in the origin but its live index does not list it.
    origin = RepoObserved(final=origin.final, final_index=repo(final=(apk("a"),)).final_index)
    assert seed_files(specs, RepoObserved(), origin) == {"a": ("a-1-r0.apk",)}
    in_wip = RepoObserved(wip={"a-1-r0.apk": apk("a")})
    assert seed_files(specs, in_wip, origin) == {}
    assert seed_files(specs, RepoObserved(), RepoObserved()) == {}
