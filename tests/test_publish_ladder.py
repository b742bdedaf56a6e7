"""The publish rungs and what a repository publishes next, table by table.

`PublishLadder.rungs` is called directly with hand-made states, observations and
jobs; `publish_target` with hand-made WIP and final contents; `find_cycles` with
graphs. All pure.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from reconciler.model.jobs import JobKind, JobObservation, JobStatus
from reconciler.model.observations import IndexView, ObservedState, RepoObserved
from reconciler.model.packages import ApkInfo, BranchDesired, BrokenPackage, PkgSpec
from reconciler.model.progress import PkgState, PkgStatus, RepoPhase
from reconciler.operator.intents import Intents, RebuildRequest
from reconciler.plan.actions import (
    MirrorFinal,
    PruneFinal,
    PruneWip,
    PublishFinal,
    SubmitSign,
    WriteSymlinkRepo,
)
from reconciler.plan.cycles import find_cycles
from reconciler.plan.inputs import BranchOrder, PlanSettings
from reconciler.plan.next_publish import publish_target
from reconciler.plan.publishing import PublishLadder
from reconciler.plan.tries import Tries

from .plan_values import NOW, X86, apk, index, job, spec

SHA = "e" * 64
A1, A2, B1 = apk("a", "1-r0"), apk("a", "2-r0"), apk("b", "1-r0")


def settings(**changes: object) -> PlanSettings:
    base = PlanSettings((BranchOrder("main", ("x86_64",)),), (), 4, 3, 60, 600)
    return PlanSettings(**{**{f: getattr(base, f) for f in base.__slots__}, **changes})  # type: ignore[arg-type]


def rungs(
    specs: list[PkgSpec],
    obs: RepoObserved,
    states: Mapping[str, PkgState] | None = None,
    jobs: tuple[JobObservation, ...] = (),
    observed: ObservedState | None = None,
    plan_settings: PlanSettings | None = None,
    broken: tuple[BrokenPackage, ...] = (),
) -> tuple[list[object], RepoPhase, str]:
    by_name = {s.pkgname: s for s in specs}
    desired = BranchDesired("main", "c0ffee", {X86: by_name}, broken)
    observed = observed or ObservedState({X86: obs}, {j.key: j for j in jobs}, {})
    chosen = plan_settings or settings()
    statuses = {
        n: PkgStatus(X86, n, s.version, (states or {}).get(n, PkgState.BUILT))
        for n, s in by_name.items()
    }
    ladder = PublishLadder(observed, chosen, Tries(observed, chosen, NOW), NOW)
    actions, status = ladder.rungs(desired, X86, by_name, obs, statuses, {}, set())
    return list(actions), status.phase, status.reason


def sign_job(status: JobStatus, attempt: int = 1, ended: float | None = None) -> JobObservation:
    return job("", status, attempt, version=SHA, kind=JobKind.SIGN, ended=ended)


def wip_repo(
    *infos: ApkInfo, final: tuple[ApkInfo, ...] = (), symlink: bool = False
) -> RepoObserved:
    target = {i.filename: i.checksum for i in (*infos, *final)}
    return RepoObserved(
        wip={i.filename: i for i in infos},
        final={i.filename: i for i in final},
        wip_index=index(*infos),
        final_index=index(*final) if final else None,
        symlink_index=IndexView(target, SHA) if symlink else None,
    )


def test_nothing_wanted_and_nothing_published_is_empty() -> None:
    assert rungs([], RepoObserved()) == ([], RepoPhase.EMPTY, "")


@pytest.mark.parametrize(
    ("state", "phase", "reason"),
    [
        (PkgState.BUILDING, RepoPhase.BUILDING, "1 package still to build"),
        (PkgState.QUEUED, RepoPhase.BUILDING, "1 package still to build"),
        (PkgState.FAILED, RepoPhase.BLOCKED, "1 failed package (a)"),
        (PkgState.RETRYING, RepoPhase.BUILDING, "1 package still to build (1 retrying)"),
    ],
)
def test_an_unfinished_package_keeps_the_repository_from_publishing(
    state: PkgState, phase: RepoPhase, reason: str
) -> None:
    got = rungs([spec("a"), spec("b")], wip_repo(B1), {"a": state})
    assert got == ([], phase, reason)


def test_complete_wip_writes_the_index_to_sign_of_wip_and_final_apks() -> None:
    actions, phase, _ = rungs([spec("a", "2-r0"), spec("b")], wip_repo(A2, final=(A1, B1)))
    assert phase is RepoPhase.INDEXING
    assert actions == [WriteSymlinkRepo(X86, (A2,), (B1,), "c0ffee")]


def test_the_index_to_sign_gets_a_sign_job_then_waits_for_it() -> None:
    obs = wip_repo(A2, final=(B1,), symlink=True)
    specs = [spec("a", "2-r0"), spec("b")]
    actions, phase, _ = rungs(specs, obs)
    assert phase is RepoPhase.SIGNING
    assert [a.key.job_id for a in actions if isinstance(a, SubmitSign)] == [  # type: ignore[attr-defined]
        f"sign@main@main@x86_64@-@{SHA}@1"
    ]
    assert rungs(specs, obs, jobs=(sign_job(JobStatus.RUNNING),)) == (
        [],
        RepoPhase.SIGNING,
        "waiting for the sign job",
    )


def test_a_signed_index_publishes_replacing_and_dropping_what_it_says() -> None:
    gone = apk("gone")
    obs = wip_repo(A2, final=(A1, B1, gone), symlink=True)
    obs = RepoObserved(
        wip=obs.wip,
        final=obs.final,
        wip_index=obs.wip_index,
        final_index=obs.final_index,
        symlink_index=IndexView({A2.filename: A2.checksum, B1.filename: B1.checksum}, SHA),
        bad_final={"junk-1-r0.apk": "unreadable"},
    )
    actions, phase, _ = rungs(
        [spec("a", "2-r0"), spec("b")], obs, jobs=(sign_job(JobStatus.SUCCESS),)
    )
    assert phase is RepoPhase.PUBLISHING
    (publish,) = actions
    assert isinstance(publish, PublishFinal)
    assert publish.unsigned_sha256 == SHA and publish.replace == ()
    assert publish.unlisted == ("a-1-r0.apk", "gone-1-r0.apk", "junk-1-r0.apk")


def test_a_failed_sign_job_is_retried_after_its_backoff_then_fails_the_repository() -> None:
    specs, obs = [spec("a", "2-r0")], wip_repo(A2, symlink=True)
    failed_once = (sign_job(JobStatus.FAILED, 1, ended=NOW - 10),)
    assert rungs(specs, obs, jobs=failed_once)[1:] == (
        RepoPhase.BLOCKED,
        "the sign job failed: exit code 1 (try 1 of 3); next try at 13:47:30 UTC",
    )
    due = (sign_job(JobStatus.FAILED, 1, ended=NOW - 100),)
    actions, phase, _ = rungs(specs, obs, jobs=due)
    assert phase is RepoPhase.SIGNING
    assert [a.key.attempt for a in actions if isinstance(a, SubmitSign)] == [2]  # type: ignore[attr-defined]
    all_failed = tuple(sign_job(JobStatus.FAILED, n, ended=NOW - 5000) for n in (1, 2, 3))
    assert rungs(specs, obs, jobs=all_failed) == (
        [],
        RepoPhase.BLOCKED,
        "the sign job failed: exit code 1 (try 3 of 3)",
    )


def test_a_refused_signature_counts_as_a_failed_try_with_its_reason() -> None:
    specs, obs = [spec("a", "2-r0")], wip_repo(A2, symlink=True)
    signed = sign_job(JobStatus.SUCCESS, ended=NOW - 5000)
    refused = "signed index refused: no signature verifies with the given key"
    observed = ObservedState({X86: obs}, {signed.key: signed}, {signed.key.job_id: refused})
    actions, phase, _ = rungs(specs, obs, observed=observed)
    assert phase is RepoPhase.SIGNING and [type(a) for a in actions] == [SubmitSign]
    assert not any(isinstance(a, PublishFinal) for a in actions), "nothing is published"


def test_no_sign_job_is_submitted_while_the_job_service_cannot_be_asked() -> None:
    obs = wip_repo(A2, symlink=True)
    observed = ObservedState({X86: obs}, {}, {}, job_service_error="down")
    assert rungs([spec("a", "2-r0")], obs, observed=observed) == (
        [],
        RepoPhase.SIGNING,
        "the sign job waits for the job service",
    )


def test_published_prunes_wip_copies_and_unlisted_final_apks() -> None:
    stray = apk("stray")
    obs = RepoObserved(
        wip={A2.filename: A2},
        final={A2.filename: A2, stray.filename: stray},
        wip_index=index(A2),
        final_index=index(A2),
    )
    actions, phase, reason = rungs([spec("a", "2-r0")], obs)
    assert (phase, reason) == (RepoPhase.PUBLISHED, "")
    assert actions == [
        PruneFinal(X86, ("stray-1-r0.apk",)),
        PruneWip(X86, ("a-2-r0.apk",), "published"),
    ]


@pytest.mark.parametrize(
    ("mirrored", "failed_at", "mirrors", "reason"),
    [
        ({}, None, True, ""),  # never mirrored: copy it
        ({"main/x86_64": "s" * 64}, None, False, ""),  # this very index is on the mirror
        ({}, NOW - 10, False, "copying to the mirror failed; next try at 13:47:30 UTC"),
        ({}, NOW - 60, True, ""),  # the wait after a failure is over
    ],
)
def test_a_published_repository_goes_to_the_mirror_when_due(
    mirrored: dict[str, str], failed_at: float | None, mirrors: bool, reason: str
) -> None:
    obs = RepoObserved(final={A1.filename: A1}, final_index=index(A1))
    failures = {} if failed_at is None else {"main/x86_64": failed_at}
    observed = ObservedState({X86: obs}, {}, {}, mirrored=mirrored, mirror_failures=failures)
    actions, phase, why = rungs(
        [spec("a")], obs, observed=observed, plan_settings=settings(mirror=True)
    )
    assert phase is RepoPhase.PUBLISHED and why == reason
    assert actions == ([MirrorFinal(X86, "s" * 64)] if mirrors else [])


# --- what a repository publishes next ------------------------------------------------


def target(
    specs: list[PkgSpec],
    wip: tuple[ApkInfo, ...] = (),
    final: tuple[ApkInfo, ...] = (),
    held: set[str] | None = None,
    rebuilt: set[str] | None = None,
    broken: tuple[BrokenPackage, ...] = (),
) -> tuple[set[str], list[str], list[str], list[str]]:
    obs = RepoObserved(
        wip={i.filename: i for i in wip},
        final={i.filename: i for i in final},
        final_index=index(*final) if final else None,
    )
    desired = BranchDesired("main", "", {X86: {s.pkgname: s for s in specs}}, broken)
    files, from_wip, from_final, conflicts = publish_target(
        desired, X86, {s.pkgname: s for s in specs}, obs, held or set(), rebuilt or set()
    )
    return set(files), from_wip, from_final, conflicts


@pytest.mark.parametrize(
    ("case", "got", "expected"),
    [
        (
            "a new version comes from WIP, the rest from final",
            lambda: target([spec("a", "2-r0"), spec("b")], wip=(A2,), final=(A1, B1)),
            ({"a-2-r0.apk", "b-1-r0.apk"}, ["a-2-r0.apk"], ["b-1-r0.apk"], []),
        ),
        (
            "final's copy wins over WIP's at the same version",
            lambda: target([spec("b")], wip=(B1,), final=(B1,)),
            ({"b-1-r0.apk"}, [], ["b-1-r0.apk"], []),
        ),
        (
            "a held package keeps exactly what final has, even an old version",
            lambda: target([spec("a", "2-r0")], wip=(A2,), final=(A1,), held={"a"}),
            ({"a-1-r0.apk"}, [], ["a-1-r0.apk"], []),
        ),
        (
            "a package with a broken APKBUILD keeps what final has",
            lambda: target([], final=(A1,), broken=(BrokenPackage("main/a", "a", "bad"),)),
            ({"a-1-r0.apk"}, [], ["a-1-r0.apk"], []),
        ),
        (
            "a package no longer wanted leaves",
            lambda: target([spec("b")], final=(A1, B1)),
            ({"b-1-r0.apk"}, [], ["b-1-r0.apk"], []),
        ),
        (
            "final's bytes win over other bytes in WIP under a published name",
            lambda: target([spec("b")], wip=(apk("b", checksum="Q1other"),), final=(apk("b"),)),
            ({"b-1-r0.apk"}, [], ["b-1-r0.apk"], []),
        ),
        (
            "an asked-for rebuild takes the published name",
            lambda: target(
                [spec("b")],
                wip=(apk("b", checksum="Q1other"),),
                final=(apk("b"),),
                rebuilt={"b"},
            ),
            ({"b-1-r0.apk"}, ["b-1-r0.apk"], [], []),
        ),
    ],
)
def test_publish_target(case: str, got: object, expected: object) -> None:
    assert got() == expected, case  # type: ignore[operator]


def test_a_rebuild_request_on_the_plan_side_names_its_replacement() -> None:
    request = RebuildRequest("main", "x86_64", "a", "1-r0", A1.checksum, 1, "ops", "why", NOW)
    rebuilt = apk("a", checksum="Q1rebuilt")
    obs = wip_repo(rebuilt, final=(A1,), symlink=False)
    intents = Intents(rebuilds=(request,))
    actions, phase, _ = rungs([spec("a")], obs, plan_settings=settings(intents=intents))
    assert phase is RepoPhase.INDEXING
    (write,) = actions
    assert isinstance(write, WriteSymlinkRepo) and write.from_wip == (rebuilt,)


# --- cycles ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("graph", "cycles"),
    [
        ({}, []),
        ({"a": ["b"], "b": []}, []),
        ({"a": ["a"]}, [["a"]]),
        ({"a": ["b"], "b": ["a"]}, [["a", "b"]]),
        ({"b": ["c"], "c": ["a"], "a": ["b"]}, [["a", "b", "c"]]),
        ({"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c"], "e": ["a"]}, [["a", "b"], ["c", "d"]]),
        ({"a": ["b", "c"], "b": ["c"], "c": ["a"]}, [["a", "b", "c"]]),
        ({"x": ["y"]}, []),  # a target only: a node, no cycle
    ],
)
def test_find_cycles(graph: dict[str, list[str]], cycles: list[list[str]]) -> None:
    assert find_cycles(graph) == cycles


def test_find_cycles_has_no_recursion_limit() -> None:
    chain = {str(n): [str(n + 1)] for n in range(5_000)}
    chain["5000"] = ["0"]
    (cycle,) = find_cycles(chain)
    assert len(cycle) == 5_001 and cycle[0] == "0"


def test_a_broken_package_keeps_its_apks_and_the_rest_publishes() -> None:
    """Nothing holds the repository back: it publishes b's new build beside what
    final has of the broken a, then says what blocks it."""
    a1, b1, b2 = apk("a", "1-r0"), apk("b", "1-r0"), apk("b", "2-r0")
    specs = [spec("a", "2-r0"), spec("b", "2-r0")]
    states = {"a": PkgState.BROKEN}
    actions, _, _ = rungs(specs, wip_repo(b2, final=(a1, b1)), states)
    (write,) = actions
    assert isinstance(write, WriteSymlinkRepo)
    assert (write.from_wip, write.from_final) == ((b2,), (a1,))
    published = wip_repo(final=(a1, b2))
    assert rungs(specs, published, states)[1:] == (
        RepoPhase.BLOCKED,
        "1 broken package (a)",
    )
