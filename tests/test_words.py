"""The plan in words, as the queue page shows it: a sentence for every action, jobs
named by what they do (never by their id), labels and reasons joined without a
word said twice, requirements as headings and what each unfinished repository
waits for."""

from __future__ import annotations

import typing

import pytest

from reconciler.model.images import DesiredImage, ImageTarget
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.names import RepoKey
from reconciler.model.packages import PkgSpec
from reconciler.model.progress import RepoPhase, RepoStatus, need_words
from reconciler.plan.actions import (
    Action,
    CancelJob,
    CollectBuild,
    MirrorFinal,
    PruneFinal,
    PruneImages,
    PruneWip,
    PublishFinal,
    PublishImage,
    ReindexWip,
    RemoveBranch,
    RemoveImages,
    SeedFromOrigin,
    SubmitBuild,
    SubmitImage,
    SubmitSign,
    WriteSymlinkRepo,
)
from reconciler.plan.planner import Plan
from reconciler.site.words import (
    describe_action,
    describe_actions,
    job_id_label,
    job_label,
    joined,
    publish_text,
)

X86 = RepoKey("main", "", "x86_64")
SPEC = PkgSpec(X86, "foo", "1.2-r0", "main/foo", "x86_64")
BUILD = JobKey(JobIntent(JobKind.BUILD, X86, "foo", "1.2-r0"), 2)
SIGN = JobKey(JobIntent(JobKind.SIGN, X86, "", "a" * 64), 1)
DONE = JobObservation(BUILD, JobStatus.SUCCESS, 0.0)
TARGET = ImageTarget("main", "demo-phone", "phosh", "", "20261206-1200")
IMAGE = DesiredImage(
    TARGET,
    "aarch64",
    "edge",
    "Demo Phone",
    "Phosh",
    "1",
    (),
    "postmarketOS-edge-phosh-1-demo-phone",
)
IMAGE_JOB = JobKey(TARGET.intent("aarch64"), 1)

SENTENCES: list[tuple[Action, str]] = [
    (SubmitBuild(BUILD, SPEC, (), (), "", ""), "start build foo 1.2-r0 for main/x86_64, try 2"),
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
    (SubmitSign(SIGN), "start sign the index aaaaaaaaaaaa for main/x86_64, try 1"),
    (PublishFinal(X86, DONE, "a" * 64), "publish main/x86_64"),
    (PruneFinal(X86, ("a.apk", "b.apk")), "remove 2 unlisted apk(s) from final main/x86_64"),
    (MirrorFinal(X86, "a" * 64), "copy main/x86_64 to the mirror"),
    (
        CancelJob(BUILD, "superseded by 1.3-r0"),
        "cancel build foo 1.2-r0 for main/x86_64, try 2 (superseded by 1.3-r0)",
    ),
    (
        RemoveBranch("old", (), "", "removed by ops: EOL"),
        "remove the repositories of old (removed by ops: EOL)",
    ),
    (
        SubmitImage(IMAGE_JOB, IMAGE, "20261206-1200"),
        "start image demo-phone 20261206-1200 phosh for main/aarch64, try 1",
    ),
    (
        PublishImage(JobObservation(IMAGE_JOB, JobStatus.SUCCESS, 0.0), IMAGE),
        "publish the image of main:demo-phone:phosh (20261206-1200) for aarch64"
        " (image demo-phone 20261206-1200 phosh for main/aarch64, try 1)",
    ),
    (
        PruneImages("edge", "demo-phone", "phosh", ("20261201-1200",), ("",), "keep 3"),
        "remove 1 image(s) of demo-phone phosh for edge (keep 3)",
    ),
    (
        RemoveImages("edge", "demo-phone", "", (), "no longer configured"),
        "remove every image of demo-phone for edge (no longer configured)",
    ),
]


@pytest.mark.parametrize(("action", "sentence"), SENTENCES)
def test_every_action_has_its_sentence(action: Action, sentence: str) -> None:
    assert describe_action(action) == sentence


def test_the_table_covers_every_kind_of_action() -> None:
    assert {type(a) for a, _ in SENTENCES} == set(typing.get_args(Action))


def test_no_sentence_names_a_job_by_its_id() -> None:
    for action, sentence in SENTENCES:
        assert "@" not in sentence, (action, sentence)


def test_job_labels_say_kind_package_version_repository_and_try() -> None:
    assert job_label(BUILD) == "build foo 1.2-r0 for main/x86_64, try 2"
    assert job_label(SIGN) == "sign the index aaaaaaaaaaaa for main/x86_64, try 1"
    systemd = JobKey(
        JobIntent(JobKind.BUILD, RepoKey("main", "systemd", "aarch64"), "x", "1-r0"), 3
    )
    assert job_id_label(systemd.job_id) == "build x 1-r0 for main:systemd/aarch64, try 3"
    assert job_id_label("not-a-job-id") == "job not-a-job-id"


@pytest.mark.parametrize(
    ("label", "text", "expected"),
    [
        ("blocked", "blocked by foo-utils (failed)", "blocked by foo-utils (failed)"),
        ("blocked", "1 failed package (foo)", "blocked: 1 failed package (foo)"),
        ("failed", "failed, try 3/3: exit code 1", "failed, try 3/3: exit code 1"),
        ("failed", "exit code 1 (try 3 of 3)", "failed: exit code 1 (try 3 of 3)"),
        ("building", "building, try 1 of 3", "building, try 1 of 3"),
        (
            "held",
            "held by ana since 2026-12-01 10:00 UTC: why",
            "held by ana since 2026-12-01 10:00 UTC: why",
        ),
        ("publish main/armv7 blocked", "blocked by a", "publish main/armv7 blocked by a"),
        ("waiting", "", "waiting"),
        ("", "needs foo", "needs foo"),
        ("Failed", "FAILED: x", "FAILED: x"),
    ],
)
def test_joined_says_no_word_twice_where_label_and_text_meet(
    label: str, text: str, expected: str
) -> None:
    assert joined(label, text) == expected


@pytest.mark.parametrize(
    ("need", "heading"),
    [
        ("foo-utils", "needs foo-utils"),
        ("foo-utils (failed)", "blocked by foo-utils (failed)"),
        ("badver (its APKBUILD is broken)", "blocked by badver (its APKBUILD is broken)"),
        ("gcc-aarch64 published for x86_64", "needs gcc-aarch64 published for x86_64"),
    ],
)
def test_a_requirement_reads_as_one(need: str, heading: str) -> None:
    assert need_words(need) == heading


def test_what_each_repository_waits_for_before_it_publishes() -> None:
    arm = RepoKey("main", "", "armv7")
    assert publish_text(RepoStatus(X86, RepoPhase.BUILDING), 2) == (
        "building; 2 packages still to build"
    )
    assert publish_text(RepoStatus(X86, RepoPhase.BUILDING), 1) == (
        "building; 1 package still to build"
    )
    assert publish_text(RepoStatus(arm, RepoPhase.BLOCKED, "blocked by a"), 0) == "blocked by a"
    assert publish_text(RepoStatus(arm, RepoPhase.BLOCKED, "blocked: 1 broken package (x)"), 0) == (
        "blocked: 1 broken package (x)"
    )
    assert publish_text(RepoStatus(arm, RepoPhase.BLOCKED, "1 broken package (x)"), 0) == (
        "blocked: 1 broken package (x)"
    )
    foreign = RepoStatus(arm, RepoPhase.BUILDING, "waits for main/x86_64: gcc-armv7")
    assert publish_text(foreign, 0) == "building: waits for main/x86_64: gcc-armv7"


def test_the_pass_in_words_is_its_actions() -> None:
    plan = Plan((MirrorFinal(X86, "s" * 64), PublishFinal(X86, DONE, "a" * 64)), (), ())
    assert describe_actions(plan) == ("copy main/x86_64 to the mirror", "publish main/x86_64")
