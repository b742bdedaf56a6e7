"""The images' disk guard: no image job starts while the images directory's file
system has less free space than `images.min_free_bytes`; the image shows as
queued, saying how much is free where.

The decision table on the pure plan (and the plan memo, which must notice the
guard open or close but not every changing byte); the observation on real file
systems; the configuration; and the loop, with the free space injected and on
a small tmpfs that really is that full.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

import reconciler.observed.images
from reconciler.model.errors import ConfigError
from reconciler.model.images import DesiredImage, ImageTarget
from reconciler.model.jobs import JobKey, JobObservation, JobStatus
from reconciler.model.names import RepoKey
from reconciler.model.observations import IndexView, ObservedState, RepoObserved
from reconciler.model.packages import ApkInfo, BranchDesired, PkgSpec
from reconciler.model.progress import ImageStatus, PkgState
from reconciler.observed.images import ImageScanner, free_bytes
from reconciler.plan.actions import SubmitImage
from reconciler.plan.images import disk_wait
from reconciler.plan.inputs import BranchOrder, ImageSettings, PlanSettings
from reconciler.plan.memo import PlanMemo
from reconciler.plan.planner import Plan, plan

from .conftest import ConfigFactory, DaemonFactory
from .memory_jobs import JobTable
from .test_images_loop import BRANCHES, IMAGES, dates, image_jobs

GiB = 1024**3
NOW = 1_800_000_000.0
ARM = RepoKey("main", "", "aarch64")
ROOT = "/srv/images"
APK = ApkInfo("a", "1-r0", "aarch64", 100, 10, "Q1a", origin="a")
IMAGE = DesiredImage(
    ImageTarget("main", "demo-phone", "demo", "", "20270115-0000"),
    "aarch64",
    "edge",
    "Demo Phone",
    "Demo",
    "1.0",
    ("a",),
    "postmarketOS-edge-demo-1.0-demo-phone",
    (("a", "1-r0"),),
    ("a",),
)
DESIRED = {
    "main": BranchDesired(
        "main", "c0ffee", {ARM: {"a": PkgSpec(ARM, "a", "1-r0", "main/a", "aarch64")}}
    )
}


def final() -> dict[RepoKey, RepoObserved]:
    listed = IndexView({APK.filename: APK.checksum}, "f" * 64)
    return {ARM: RepoObserved(final={APK.filename: APK}, final_index=listed)}


def observed(
    free: int | None, *jobs: JobObservation, repos: dict[RepoKey, RepoObserved] | None = None
) -> ObservedState:
    """`repos`: the same objects pass after pass, as the scanner hands them out."""
    found = final() if repos is None else repos
    return ObservedState(found, {j.key: j for j in jobs}, {}, images_free_bytes=free)


def settings(min_free: int) -> PlanSettings:
    images = ImageSettings((IMAGE,), min_free_bytes=min_free, root=ROOT)
    return PlanSettings((BranchOrder("main", ("aarch64",)),), (), 2, 3, 60, 600, images=images)


def only_image(result: Plan) -> ImageStatus:
    (status,) = result.images
    return status


# --- the decision --------------------------------------------------------------


@pytest.mark.parametrize(
    ("min_free", "free", "reason"),
    [
        (0, 1, ""),  # no guard
        (2 * GiB, None, ""),  # not known: not guarded
        (2 * GiB, 3 * GiB, ""),
        (2 * GiB, 2 * GiB, ""),  # exactly enough
        (
            2 * GiB,
            2 * GiB - 1,
            f"waiting: 2 GiB free on {ROOT}, images.min_free_bytes is 2 GiB",
        ),
        (
            2 * GiB,
            3 * GiB // 2,
            f"waiting: 1.5 GiB free on {ROOT}, images.min_free_bytes is 2 GiB",
        ),
        (
            4 * GiB,
            300 * 1024**2,
            f"waiting: 300 MiB free on {ROOT}, images.min_free_bytes is 4 GiB",
        ),
        (100, 7, f"waiting: 7 bytes free on {ROOT}, images.min_free_bytes is 100 bytes"),
    ],
)
def test_an_image_starts_only_with_enough_free_space(
    min_free: int, free: int | None, reason: str
) -> None:
    result = plan(DESIRED, observed(free), settings(min_free), NOW)
    status = only_image(result)
    submits = [a for a in result.actions if isinstance(a, SubmitImage)]
    if reason:
        assert (status.state, status.reason) == (PkgState.QUEUED, reason)
        assert submits == []
    else:
        assert (status.state, status.reason) == (PkgState.BUILDING, "starting, try 1 of 3")
        assert len(submits) == 1
    assert disk_wait(free, settings(min_free).images) == reason


def test_the_guard_stops_only_new_jobs() -> None:
    key = JobKey(IMAGE.intent(), 1)
    running = JobObservation(key, JobStatus.RUNNING, NOW - 10)
    status = only_image(plan(DESIRED, observed(1, running), settings(GiB), NOW))
    assert (status.state, status.job_id) == (PkgState.BUILDING, key.job_id)
    waiting = replace(observed(1), repos={})  # its packages come first
    status = only_image(plan(DESIRED, waiting, settings(GiB), NOW))
    assert status.state is PkgState.WAITING and status.reason.startswith("waiting for main")


def test_the_memo_plans_again_when_the_guard_opens_not_for_every_byte() -> None:
    repos = final()
    memo = PlanMemo()
    low = memo.plan(DESIRED, observed(GiB, repos=repos), settings(2 * GiB), NOW)
    assert only_image(low).state is PkgState.QUEUED
    same = memo.plan(DESIRED, observed(GiB + 4096, repos=repos), settings(2 * GiB), NOW + 1)
    assert same is low and memo.hits == 1, "the same reason: the same plan"
    lower = memo.plan(DESIRED, observed(GiB // 2, repos=repos), settings(2 * GiB), NOW + 2)
    assert only_image(lower).reason.startswith("waiting: 512 MiB free")
    opened = memo.plan(DESIRED, observed(3 * GiB, repos=repos), settings(2 * GiB), NOW + 3)
    assert only_image(opened).state is PkgState.BUILDING
    unguarded = PlanMemo()
    first = unguarded.plan(DESIRED, observed(GiB, repos=repos), settings(0), NOW)
    assert unguarded.plan(DESIRED, observed(2 * GiB, repos=repos), settings(0), NOW + 1) is first


# --- the observation and the configuration -------------------------------------


def test_free_space_is_that_of_the_nearest_existing_directory(tmp_path: Path) -> None:
    found = free_bytes(tmp_path)
    assert found is not None and found > 0
    info = os.statvfs(tmp_path)
    assert abs(found - info.f_bavail * info.f_frsize) < 64 * 1024**2
    later = free_bytes(tmp_path / "images" / "not" / "made" / "yet")
    assert later is not None and abs(later - found) < 64 * 1024**2
    assert ImageScanner(tmp_path / "images").free_bytes() is not None


def test_min_free_bytes_is_read_and_checked(make_config: ConfigFactory) -> None:
    assert make_config().images.min_free_bytes == 0, "no guard unless asked for"
    guarded = make_config(extra="images:\n  min_free_bytes: 2147483648\n")
    assert guarded.images.min_free_bytes == 2 * GiB
    with pytest.raises(ConfigError) as caught:
        make_config(extra="images:\n  min_free_bytes: -1\n")
    assert any(
        p.endswith("images.min_free_bytes: expected a number >= 0, got -1")
        for p in caught.value.problems
    ), caught.value.problems


# --- in the loop --------------------------------------------------------------


def test_the_loop_waits_for_space_and_then_builds(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    pmaports: Path,
    job_table: JobTable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    free = {"bytes": GiB}
    monkeypatch.setattr(reconciler.observed.images, "free_bytes", lambda path: free["bytes"])
    extra = IMAGES + "  min_free_bytes: 2147483648\n"
    config = make_config(branches=BRANCHES.format(tree=pmaports), extra=extra)
    daemon = fake_daemon(config)
    result = daemon.converge(max_seconds=3600)
    assert result.all_published, "packages are not guarded"
    (status,) = result.plan.images
    assert status.state is PkgState.QUEUED
    assert status.reason == (
        f"waiting: 1 GiB free on {config.paths.images}, images.min_free_bytes is 2 GiB"
    )
    assert image_jobs(job_table) == []
    status_json = (config.paths.html_out / "status.json").read_text(encoding="utf-8")
    assert "queued" in status_json

    free["bytes"] = 3 * GiB  # someone made room
    result = daemon.converge(max_seconds=3600)
    (status,) = result.plan.images
    assert status.state is PkgState.PUBLISHED
    assert len(image_jobs(job_table)) == 1


def test_on_a_full_small_file_system_no_image_job_starts(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    pmaports: Path,
    job_table: JobTable,
    tiny_mount: Path,
    tmp_path: Path,
) -> None:
    """A real 2 MiB tmpfs holds the images: asking for 4 MiB keeps the image
    queued, naming the mount's real free space; asking for 1 MiB lets it build."""
    paths = f"data: {tmp_path}/data, html_out: {tmp_path}/html, images: {tiny_mount}/images"
    branches = BRANCHES.format(tree=pmaports)
    config = make_config(
        branches=branches, extra=IMAGES + "  min_free_bytes: 4194304\n", paths=paths
    )
    daemon = fake_daemon(config)
    (status,) = daemon.converge(max_seconds=3600).plan.images
    assert status.state is PkgState.QUEUED
    assert status.reason.startswith("waiting: ") and status.reason.endswith(
        f" free on {tiny_mount}/images, images.min_free_bytes is 4 MiB"
    )
    assert image_jobs(job_table) == []

    enough = make_config(
        branches=branches, extra=IMAGES + "  min_free_bytes: 1048576\n", paths=paths
    )
    (status,) = fake_daemon(enough).converge(max_seconds=3600).plan.images
    assert status.state is PkgState.PUBLISHED
    assert len(dates(Path(f"{tiny_mount}/images"))) == 1
