"""The plan in words, as the queue page shows it: a sentence for every action, then
what each unfinished repository waits for."""

from __future__ import annotations

import typing

import pytest

from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.names import RepoKey
from reconciler.model.packages import PkgSpec
from reconciler.model.progress import PkgState, PkgStatus, RepoPhase, RepoStatus
from reconciler.plan.actions import (
    Action,
    CancelJob,
    CollectBuild,
    MirrorFinal,
    PruneFinal,
    PruneWip,
    PublishFinal,
    ReindexWip,
    RemoveBranch,
    SeedFromOrigin,
    SubmitBuild,
    SubmitSign,
    WriteSymlinkRepo,
)
from reconciler.plan.planner import Plan
from reconciler.site.words import describe_action, describe_actions

X86 = RepoKey("main", "", "x86_64")
SPEC = PkgSpec(X86, "foo", "1.2-r0", "main/foo", "x86_64")
BUILD = JobKey(JobIntent(JobKind.BUILD, X86, "foo", "1.2-r0"), 2)
SIGN = JobKey(JobIntent(JobKind.SIGN, X86, "", "a" * 64), 1)
DONE = JobObservation(BUILD, JobStatus.SUCCESS, 0.0)

SENTENCES: list[tuple[Action, str]] = [
    (SubmitBuild(BUILD, SPEC, (), (), "", ""), "start build foo 1.2-r0 for main/x86_64 (try 2)"),
    (CollectBuild(DONE, SPEC), "collect the packages of foo 1.2-r0 for main/x86_64"),
    (
        SeedFromOrigin(RepoKey("main_staging_x", "", "x86_64"), X86, ("a.apk", "b.apk")),
        "copy 2 apk(s) published in main/x86_64 into WIP main_staging_x/x86_64",
    ),
    (ReindexWip(X86, ()), "re-index the WIP repository main/x86_64"),
    (PruneWip(X86, ("a.apk",), "published"), "remove 1 apk(s) from WIP main/x86_64 (published)"),
    (
        WriteSymlinkRepo(X86, (), (), "c0ffee"),
        "prepare the index of main/x86_64: 0 new and 0 published apk(s)",
    ),
    (SubmitSign(SIGN), "sign the index of main/x86_64 (try 1)"),
    (PublishFinal(X86, DONE, "a" * 64), "publish main/x86_64"),
    (PruneFinal(X86, ("a.apk", "b.apk")), "remove 2 unlisted apk(s) from final main/x86_64"),
    (MirrorFinal(X86, "a" * 64), "copy main/x86_64 to the mirror"),
    (CancelJob(BUILD, "superseded by 1.3-r0"), f"cancel {BUILD.job_id} (superseded by 1.3-r0)"),
    (
        RemoveBranch("old", (), "", "removed by ops: EOL"),
        "remove the repositories of old (removed by ops: EOL)",
    ),
]


@pytest.mark.parametrize(("action", "sentence"), SENTENCES)
def test_every_action_has_its_sentence(action: Action, sentence: str) -> None:
    assert describe_action(action) == sentence


def test_the_table_covers_every_kind_of_action() -> None:
    assert {type(a) for a, _ in SENTENCES} == set(typing.get_args(Action))


def test_the_plan_in_words_ends_with_what_each_repository_waits_for() -> None:
    arm = RepoKey("main", "", "armv7")
    packages = (
        PkgStatus(X86, "a", "1-r0", PkgState.BUILDING),
        PkgStatus(X86, "b", "1-r0", PkgState.WAITING, "waiting for a"),
        PkgStatus(X86, "c", "1-r0", PkgState.BUILT),
        PkgStatus(arm, "a", "1-r0", PkgState.FAILED, "exit code 1"),
    )
    repos = (
        RepoStatus(X86, RepoPhase.BUILDING),
        RepoStatus(arm, RepoPhase.BLOCKED, "blocked by a"),
        RepoStatus(RepoKey("main", "systemd", "x86_64"), RepoPhase.PUBLISHED),
    )
    plan = Plan((MirrorFinal(X86, "s" * 64),), packages, repos)
    assert describe_actions(plan) == (
        "copy main/x86_64 to the mirror",
        "publish main/x86_64 after 2 more build(s)",
        "publish main/armv7: blocked (blocked by a)",
        "waiting: b for main/x86_64: waiting for a",
    )


def test_held_and_broken_packages_are_no_builds_to_come() -> None:
    packages = (
        PkgStatus(X86, "a", "1-r0", PkgState.QUEUED),
        PkgStatus(X86, "h", "1-r0", PkgState.HELD, "held by ana"),
        PkgStatus(X86, "x", "", PkgState.BROKEN, "main/x/APKBUILD: line 3: pkgver: bad"),
        PkgStatus(X86, "r", "1-r0", PkgState.RETRYING, "failed, try 1/3"),
    )
    arm = RepoKey("main", "", "armv7")
    repos = (
        RepoStatus(X86, RepoPhase.BUILDING),
        RepoStatus(arm, RepoPhase.BLOCKED, "blocked: 1 broken package (x)"),
    )
    assert describe_actions(Plan((), packages, repos)) == (
        "publish main/x86_64 after 2 more build(s)",
        "publish main/armv7: blocked: 1 broken package (x)",
    )
