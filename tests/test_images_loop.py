"""Device images in the real loop (fake clock, in-memory jobs, the synthetic image
job): they wait for their arch's repository, then build, publish and are pruned
to `keep`; the next slot brings the next image and nothing is built twice in one
slot; a restart resumes without a second job; a device removed from the config
leaves the queue while its published images stay."""

from __future__ import annotations

import hashlib
from pathlib import Path

from reconciler.model.jobs import JobKind
from reconciler.model.progress import PkgState

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
    return sorted(p.name for p in ui.iterdir()) if ui.is_dir() else []


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
    ], files
    image = (root / "edge/demo-phone/demo" / date / f"{stem}.img.xz").read_bytes()
    sha = (root / "edge/demo-phone/demo" / date / f"{stem}.img.xz.sha256").read_text()
    assert sha.split()[0] == hashlib.sha256(image).hexdigest()
    assert len(image_jobs(job_table)) == 1

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
