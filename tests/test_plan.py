"""plan() is pure: table-driven scenarios over hand-made desired and observed states."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.model.jobs import JobKind, JobStatus
from reconciler.model.packages import BrokenPackage
from reconciler.model.progress import PkgState, RepoPhase
from reconciler.operator.intents import Hold, Intents
from reconciler.plan.actions import (
    CancelJob,
    CollectBuild,
    PruneWip,
    PublishFinal,
    SubmitSign,
    WriteSymlinkRepo,
)

from .plan_values import ARM, NOW, X86, Case, apk, index, job, repo, spec, states, submitted


def test_leaves_start_and_dependents_wait() -> None:
    result = Case([spec("a"), spec("b", deps=("a",)), spec("c", deps=("b",))]).run()
    assert submitted(result) == ["build@main@main@x86_64@a@1-r0@1"]
    got = states(result)
    assert got["x86_64/a"][0] is PkgState.BUILDING
    assert got["x86_64/b"] == (PkgState.WAITING, "needs a")
    assert got["x86_64/c"] == (PkgState.WAITING, "needs b")


def test_dependency_in_wip_index_at_desired_version_unblocks() -> None:
    old = apk("a", "0-r0")
    result = Case(
        [spec("a"), spec("b", deps=("a",))], {X86: repo(wip=(apk("a"),), final=(old,))}
    ).run()
    assert submitted(result) == ["build@main@main@x86_64@b@1-r0@1"]
    # An older version of the dependency does not count.
    result = Case([spec("a"), spec("b", deps=("a",))], {X86: repo(final=(old,))}).run()
    assert submitted(result) == ["build@main@main@x86_64@a@1-r0@1"]


def test_parallel_cap_counts_running_jobs() -> None:
    case = Case(
        [spec("a"), spec("b"), spec("c")], jobs=[job("z", JobStatus.RUNNING)], max_parallel=2
    )
    result = case.run()
    assert submitted(result) == ["build@main@main@x86_64@a@1-r0@1"]
    assert states(result)["x86_64/c"] == (PkgState.QUEUED, "ready, waiting for a free job slot")


def test_running_job_is_not_submitted_again() -> None:
    result = Case([spec("a")], jobs=[job("a", JobStatus.RUNNING)]).run()
    assert submitted(result) == []
    assert states(result)["x86_64/a"][0] is PkgState.BUILDING


def test_finished_job_is_collected() -> None:
    result = Case([spec("a")], jobs=[job("a", JobStatus.SUCCESS)]).run()
    assert [type(a) for a in result.actions] == [CollectBuild]


@pytest.mark.parametrize(
    ("failures", "ended", "expect_state", "expect_submit"),
    [
        (1, NOW - 59, PkgState.RETRYING, None),  # backoff 60 s not yet over
        (1, NOW - 61, PkgState.BUILDING, "build@main@main@x86_64@a@1-r0@2"),
        (2, NOW - 119, PkgState.RETRYING, None),  # second backoff doubles
        (2, NOW - 121, PkgState.BUILDING, "build@main@main@x86_64@a@1-r0@3"),
        (3, NOW - 10_000, PkgState.FAILED, None),  # no tries left
    ],
)
def test_retries_with_exponential_backoff(
    failures: int, ended: float, expect_state: PkgState, expect_submit: str | None
) -> None:
    jobs = [job("a", JobStatus.FAILED, attempt=n, ended=ended) for n in range(1, failures + 1)]
    result = Case([spec("a")], jobs=jobs).run()
    state, reason = states(result)["x86_64/a"]
    assert state is expect_state
    assert submitted(result) == ([expect_submit] if expect_submit else [])
    if state is PkgState.RETRYING:
        assert reason.startswith(f"exit code 1 (try {failures} of 3); next try at ")
        assert result.next_wakeup == ended + 60 * 2 ** (failures - 1)
    if state is PkgState.FAILED:
        assert reason == "exit code 1 (try 3 of 3)"
        assert result.repos[0].phase is RepoPhase.BLOCKED


def test_refused_results_count_as_a_failed_try() -> None:
    ok = job("a", JobStatus.SUCCESS, ended=NOW - 10)
    result = Case([spec("a")], jobs=[ok], rejected={ok.key.job_id: "origin is 'x'"}).run()
    assert states(result)["x86_64/a"] == (
        PkgState.RETRYING,
        "origin is 'x' (try 1 of 3); next try at 13:47:30 UTC",
    )


def test_foreign_arch_waits_only_for_published_native_toolchain() -> None:
    gcc = spec("gcc-armv7")
    pkg = spec("foo", repo=ARM, native=("gcc-armv7",))
    unrelated = spec("broken-native")
    failed = [job("broken-native", JobStatus.FAILED, attempt=n) for n in (1, 2, 3)]
    # gcc-armv7 built but not published: armv7 waits.
    case = Case(
        [gcc, pkg, unrelated],
        {X86: repo(wip=(apk("gcc-armv7"),))},
        failed,
        arches=("x86_64", "armv7"),
    )
    assert states(case.run())["armv7/foo"] == (
        PkgState.WAITING,
        "needs gcc-armv7 published for x86_64",
    )
    # Published: armv7 builds although an unrelated native package failed for good.
    case.repos = {X86: repo(final=(apk("gcc-armv7"),))}
    result = case.run()
    assert states(result)["x86_64/broken-native"][0] is PkgState.FAILED
    assert "build@main@main@armv7@foo@1-r0@1" in submitted(result)


def test_cycles_are_reported_not_waited_on() -> None:
    result = Case(
        [
            spec("a", deps=("b",)),
            spec("b", deps=("c",)),
            spec("c", deps=("a",)),
            spec("d", deps=("a",)),
        ]
    ).run()
    got = states(result)
    for name in "abc":
        assert got[f"x86_64/{name}"] == (PkgState.BROKEN, "cycle: a → b → c → a")
    assert got["x86_64/d"] == (PkgState.WAITING, "blocked by a (broken)")
    # Nothing can build: the repository does not wait, it publishes what it can
    # (here: an empty index) and then says what blocks it.
    assert result.repos[0].phase is RepoPhase.INDEXING


def test_publish_ladder() -> None:
    a_new, b = apk("a", "2-r0"), apk("b")
    specs = [spec("a", "2-r0"), spec("b")]
    final = (apk("a", "1-r0"), b, apk("gone"))
    # Complete WIP: write the symlink repo from new WIP apks + current final apks.
    result = Case(specs, {X86: repo(wip=(a_new,), final=final)}).run()
    assert [type(a) for a in result.actions] == [WriteSymlinkRepo]
    action = result.actions[0]
    assert isinstance(action, WriteSymlinkRepo)
    assert (action.from_wip, action.from_final, action.commit) == ((a_new,), (b,), "c0ffee")
    # The symlink index lists exactly that: sign it.
    symlink = index(a_new, b, sha="f" * 64)
    result = Case(specs, {X86: repo(wip=(a_new,), final=final, symlink=symlink)}).run()
    assert [a.key.job_id for a in result.actions if isinstance(a, SubmitSign)] == [
        "sign@main@main@x86_64@-@" + "f" * 64 + "@1"
    ]
    assert result.repos[0].phase is RepoPhase.SIGNING
    # Signed: publish.
    signed = job("", JobStatus.SUCCESS, version="f" * 64, kind=JobKind.SIGN)
    result = Case(specs, {X86: repo(wip=(a_new,), final=final, symlink=symlink)}, [signed]).run()
    assert [type(a) for a in result.actions] == [PublishFinal]
    publish = result.actions[0]
    assert isinstance(publish, PublishFinal)
    # Once the new index is live, final's apks it does not list leave.
    assert publish.unlisted == ("a-1-r0.apk", "gone-1-r0.apk")
    # Published: final lists exactly the target; WIP copies are pruned.
    done = repo(wip=(a_new,), final=(a_new, b), symlink=symlink)
    result = Case(specs, {X86: done}).run()
    assert result.repos[0].phase is RepoPhase.PUBLISHED
    assert [a for a in result.actions if isinstance(a, PruneWip)] == [
        PruneWip(X86, ("a-2-r0.apk",), "published")
    ]


def test_nothing_publishes_while_a_package_builds() -> None:
    result = Case(
        [spec("a"), spec("b")], {X86: repo(wip=(apk("a"),))}, [job("b", JobStatus.RUNNING)]
    ).run()
    assert not any(isinstance(a, WriteSymlinkRepo | SubmitSign) for a in result.actions)
    assert result.repos[0].phase is RepoPhase.BUILDING


def test_published_version_is_never_replaced_by_other_bytes() -> None:
    wip = apk("a", checksum="Q1new")
    final = apk("a", checksum="Q1old")
    result = Case([spec("a")], {X86: repo(wip=(wip,), final=(final,))}).run()
    assert result.repos[0].phase is RepoPhase.PUBLISHED
    assert result.actions == (PruneWip(X86, ("a-1-r0.apk",), "published"),)


def test_stale_wip_versions_are_pruned() -> None:
    result = Case([spec("a", "2-r0")], {X86: repo(wip=(apk("a", "1-r0"),))}).run()
    assert PruneWip(X86, ("a-1-r0.apk",), "no longer desired") in result.actions


def test_plan_is_deterministic() -> None:
    case = Case([spec("a"), spec("b", deps=("a",))], jobs=[job("a", JobStatus.FAILED)])
    assert case.run() == case.run()


def test_dependency_on_a_broken_apkbuild_waits_for_it() -> None:
    broken = (BrokenPackage("main/a", "a", "main/a/APKBUILD: pkgrel: expected a number"),)
    result = Case([spec("b", deps=("a",))], broken=broken).run()
    assert states(result)["x86_64/b"] == (
        PkgState.WAITING,
        "blocked by a (its APKBUILD is broken)",
    )
    assert submitted(result) == []


def test_holds_keep_published_apks_and_hold_what_needs_them() -> None:
    hold = Hold("main", "", "a", "ana", "upstream broke", NOW - 3600)
    old_a, old_b = apk("a", "0-r0"), apk("b", "0-r0")
    case = Case(
        [spec("a"), spec("b", deps=("a",)), spec("c")],
        {X86: repo(wip=(apk("c"),), final=(old_a, old_b))},
    )
    case.intents = Intents(holds=(hold,))
    result = case.run()
    got = states(result)
    assert got["x86_64/a"] == (
        PkgState.HELD,
        "held by ana since 1970-01-12 12:46 UTC: upstream broke",
    )
    assert got["x86_64/b"] == (PkgState.HELD, "held: needs a, which is held")
    assert submitted(result) == []
    # The rest publishes: c from WIP, a and b as they are in final.
    action = next(a for a in result.actions if isinstance(a, WriteSymlinkRepo))
    assert [i.filename for i in action.from_wip] == ["c-1-r0.apk"]
    assert {i.filename for i in action.from_final} == {"a-0-r0.apk", "b-0-r0.apk"}
    # An expired hold no longer applies.
    case.intents = Intents(holds=(replace(hold, expires=NOW - 1),))
    assert submitted(case.run()) == ["build@main@main@x86_64@a@1-r0@1"]


def test_running_builds_of_superseded_versions_are_cancelled() -> None:
    old = job("a", JobStatus.RUNNING, version="0-r0")
    gone = job("gone", JobStatus.RUNNING)
    result = Case([spec("a")], jobs=[old, gone]).run()
    cancels = {a.key.job_id: a.why for a in result.actions if isinstance(a, CancelJob)}
    assert cancels == {
        old.key.job_id: "superseded by 1-r0",
        gone.key.job_id: "no longer in pmaports",
    }
    # The new version builds meanwhile: the old job is not counted against it.
    assert submitted(result) == ["build@main@main@x86_64@a@1-r0@1"]
