"""Device images in the real loop (fake clock, in-memory jobs, the synthetic image
job): they wait for their arch's repository, then build, publish and are pruned
to `keep`; the next slot brings the next image and nothing is built twice in one
slot; a restart resumes without a second job; a device removed from the config
leaves the queue while its published images stay."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from reconciler.config.settings import Config
from reconciler.formats.keys import generate_private_key
from reconciler.fs.keyfiles import write_public_key
from reconciler.loop import Daemon
from reconciler.model.jobs import JobKind, JobStatus
from reconciler.model.progress import PkgState
from reconciler.plan.actions import CancelJob

from .conftest import ConfigFactory, DaemonFactory
from .fake_clock import FakeClock
from .memory_jobs import JobTable

DAY = 86400.0
BRANCHES = """\
branches:
  - name: main
    pmaports: {tree}
    arches: [x86_64, aarch64]
"""
IMAGES = """\
images:
  devices:
    - codename: demo-phone
      uis: [demo]
"""


def image_jobs(table: JobTable) -> list[str]:
    return [k.job_id for k in table.jobs if k.intent.kind is JobKind.IMAGE]


def dates(root: Path) -> list[str]:
    ui = root / "edge" / "demo-phone" / "demo"
    return sorted(p.name for p in ui.iterdir() if p.is_dir()) if ui.is_dir() else []


def test_an_image_waits_builds_publishes_and_is_pruned_to_keep(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    pmaports: Path,
    clock: FakeClock,
    job_table: JobTable,
) -> None:
    config = make_config(branches=BRANCHES.format(tree=pmaports), extra=IMAGES)
    daemon = fake_daemon(config)
    first = daemon.run_pass(full=True)
    (status,) = first.plan.images
    assert status.state is PkgState.WAITING
    assert status.reason == "waiting for main/aarch64 to publish"
    assert image_jobs(job_table) == []

    result = daemon.converge(max_seconds=3600)
    (status,) = result.plan.images
    assert status.state is PkgState.PUBLISHED, status
    root = config.paths.images
    (date,) = dates(root)
    files = sorted(p.name for p in (root / "edge/demo-phone/demo" / date).iterdir())
    stem = f"{date}-postmarketOS-edge-demo-1.0-demo-phone"
    assert files == [
        ".job",
        f"{stem}-packages.txt",
        f"{stem}.img.xz",
        f"{stem}.img.xz.sha256",
        f"{stem}.img.xz.sha512",
        "index.html",
    ], files
    image = (root / "edge/demo-phone/demo" / date / f"{stem}.img.xz").read_bytes()
    sha = (root / "edge/demo-phone/demo" / date / f"{stem}.img.xz.sha256").read_text()
    assert sha.split()[0] == hashlib.sha256(image).hexdigest()
    assert len(image_jobs(job_table)) == 1
    # The next pass sees it and writes the tree's pages and index.json.
    daemon.run_pass()
    index = json.loads((root / "index.json").read_text())
    (release,) = index["releases"]
    listed = release["devices"][0]["interfaces"][0]["images"]
    assert [i["name"] for i in listed] == [f"{stem}.img.xz"]
    assert listed[0]["sha256"] == hashlib.sha256(image).hexdigest()
    for page in (
        "",
        "edge/",
        "edge/demo-phone/",
        "edge/demo-phone/demo/",
        f"edge/demo-phone/demo/{date}/",
    ):
        assert (root / page / "index.html").is_file(), page
    files_page = (root / "edge/demo-phone/demo" / date / "index.html").read_text()
    assert f"{stem}.img.xz" in files_page and "logs/image%40main" in files_page

    # The same slot: nothing more, even after a restart.
    clock.advance(DAY)
    fake_daemon(config).converge(max_seconds=3600)
    assert len(image_jobs(job_table)) == 1
    # Three more slots: one image each, the newest two kept.
    for _ in range(3):
        clock.advance(7 * DAY)
        daemon.converge(max_seconds=3600)
    assert len(image_jobs(job_table)) == 4
    kept = dates(root)
    assert len(kept) == 2 and kept[0] > date


def converged_with_image(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path, extra: str = IMAGES
) -> tuple[Config, Daemon]:
    config = make_config(branches=BRANCHES.format(tree=pmaports), extra=extra)
    daemon = fake_daemon(config)
    daemon.converge(max_seconds=3600)
    return config, daemon


def next_slot_job_ends(daemon: Daemon, clock: FakeClock, table: JobTable) -> Path:
    """Roll over to the next slot, submit its image job, let it end; its artifacts."""
    before = set(table.jobs)
    clock.advance(7 * DAY)
    daemon.run_pass(full=True)
    daemon.jobs.list_jobs()  # the in-memory job runs when it is listed
    (job,) = [j for k, j in table.jobs.items() if k not in before]
    assert job.status is JobStatus.SUCCESS
    return job.directory / "artifacts"


def test_files_that_do_not_match_their_log_are_refused(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    pmaports: Path,
    clock: FakeClock,
    job_table: JobTable,
) -> None:
    config, daemon = converged_with_image(make_config, fake_daemon, pmaports)
    before = dates(config.paths.images)
    artifacts = next_slot_job_ends(daemon, clock, job_table)
    (image,) = artifacts.glob("*.img.xz")
    image.write_bytes(image.read_bytes() + b"tampered")
    result = daemon.run_pass()
    (status,) = result.plan.images
    assert dates(config.paths.images) == before, "nothing published"
    refused = [o for o in result.outcomes if not o.ok]
    assert refused and "the log says" in refused[0].message
    (why,) = daemon.memory.rejected.values()
    assert why.startswith("image refused: ") and "the log says" in why
    result = daemon.run_pass()  # the refused try counts: the next one starts
    (status,) = result.plan.images
    assert (status.state, status.tries, status.reason) == (
        PkgState.BUILDING,
        1,
        "starting, try 2 of 3",
    )


def test_an_index_signed_by_another_key_fails_the_image(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    pmaports: Path,
    clock: FakeClock,
    job_table: JobTable,
    tmp_path: Path,
) -> None:
    config, daemon = converged_with_image(make_config, fake_daemon, pmaports)
    other = generate_private_key(2048)
    write_public_key(config.keys.final_public, other)  # jobs get a key that signed nothing
    clock.advance(7 * DAY)
    result = daemon.converge(max_seconds=7200)
    (status,) = result.plan.images
    assert status.state is PkgState.FAILED, status
    assert status.tries == 3
    assert status.excerpt.startswith("ERROR: index ") and "not trusted" in status.excerpt
    assert len(dates(config.paths.images)) == 1, "only the first slot's image"
    feed = (config.paths.html_out / "feed.atom").read_text()
    assert f"image main:demo-phone:demo ({status.target.slot})" in feed
    assert "not trusted" in feed or "exit code 1" in feed


def test_a_device_removed_from_the_config_leaves_the_queue_and_its_images_stay(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    pmaports: Path,
    clock: FakeClock,
    job_table: JobTable,
) -> None:
    config, daemon = converged_with_image(make_config, fake_daemon, pmaports)
    published = dates(config.paths.images)
    clock.advance(7 * DAY)
    daemon.run_pass(full=True)
    live = [k for k, j in job_table.jobs.items() if j.status.is_live]
    assert [k.intent.kind for k in live] == [JobKind.IMAGE]
    job_table.jobs[live[0]].ends_at = math.inf  # a long image build
    gone = make_config(branches=BRANCHES.format(tree=pmaports))
    result = fake_daemon(gone).run_pass(full=True)
    assert result.plan.images == ()
    assert any(isinstance(o.action, CancelJob) and o.ok for o in result.outcomes)
    assert job_table.jobs[live[0]].status is JobStatus.CANCELLED
    assert dates(config.paths.images) == published


def test_a_restart_at_any_point_makes_no_second_job_for_an_image(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    pmaports: Path,
    clock: FakeClock,
    job_table: JobTable,
) -> None:
    """A new daemon after every pass of a slot: each image is built once."""
    config, _ = converged_with_image(make_config, fake_daemon, pmaports)
    clock.advance(7 * DAY)
    for _ in range(6):
        result = fake_daemon(config).run_pass(full=True)
        clock.advance(1)
    (status,) = result.plan.images
    assert status.state is PkgState.PUBLISHED
    attempts = [k.attempt for k in job_table.jobs if k.intent.kind is JobKind.IMAGE]
    assert attempts == [1, 1], "one job per slot, each its first try"
    assert len(dates(config.paths.images)) == 2


def test_an_image_behind_a_blocked_repository_says_what_blocks_it(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config(
        branches=BRANCHES.format(tree=pmaports),
        extra=IMAGES,
        builder='duration_seconds: 0, fail: ["main/aarch64/foo-gui"]',
        retries="max_tries: 1, backoff_seconds: 0.05, backoff_max_seconds: 0.2",
    )
    result = fake_daemon(config).converge(max_seconds=3600)
    (status,) = result.plan.images
    assert status.state is PkgState.WAITING
    assert status.reason.startswith(
        "waiting for main/aarch64 to publish (blocked: 1 failed package (foo-gui)"
    )
