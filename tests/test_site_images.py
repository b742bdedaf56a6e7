"""Device images on the status site and in the CLI: the images page (a row per
image with its state, reason, tries, log or published directory and next slot),
the front page's summary and the nav link, status.json's `images`, the badge
and monitoring.txt for a failed image, and `reconciler status` exiting 1 for it."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from reconciler.cli.daemon import summary
from reconciler.loop import PassResult
from reconciler.model.images import ImageTarget
from reconciler.model.jobs import JobKey
from reconciler.model.names import RepoKey
from reconciler.model.progress import ImageStatus, PkgState, PkgStatus
from reconciler.site.feeds import badge_state, monitoring_lines
from reconciler.site.model import BranchInfo, SiteInput
from reconciler.site.state import build_pages
from reconciler.site.writer import SiteWriter

from .command_line import run_cli
from .conftest import ConfigFactory
from .site_inputs import page_text, site_of

SLOT = "20260101-0000"
WEEK = 7 * 86400.0


def image(
    device: str,
    ui: str,
    state: PkgState,
    reason: str = "",
    *,
    kernel: str = "",
    tries: int = 0,
    attempt: int = 1,
    date: str = "",
    arch: str = "aarch64",
    branch: str = "main",
) -> ImageStatus:
    target = ImageTarget(branch, device, ui, kernel, SLOT)
    job = JobKey(target.intent(arch), attempt).job_id if attempt else None
    return ImageStatus(
        target, arch, "edge", state, reason, job, tries, 3 if tries else 0, None, date
    )


FAILED = image(
    "demo-phone",
    "console",
    PkgState.FAILED,
    "exit code 1: no postmarketos-base",
    tries=3,
    attempt=3,
)
IMAGES = (
    image("demo-phone", "demo", PkgState.PUBLISHED, date="20260102-0930", attempt=0),
    image("demo-laptop", "demo", PkgState.BUILDING, "building, try 1 of 3", arch="x86_64"),
    image("demo-laptop", "console", PkgState.QUEUED, "ready; package builds go first", attempt=0),
    image(
        "demo-phone",
        "demo",
        PkgState.WAITING,
        "waiting for main/aarch64 to publish",
        kernel="mainline",
        attempt=0,
    ),
    image("demo-laptop", "plasma", PkgState.RETRYING, "exit code 2", tries=1, arch="x86_64"),
    image("demo-tablet", "demo", PkgState.HELD, "held by ana: panel", attempt=0),
    FAILED,
)


def published_site(images: tuple[ImageStatus, ...]) -> SiteInput:
    """Every package published; these images; a week between slots."""
    repo = RepoKey("main", "", "aarch64")
    site = site_of(
        (PkgStatus(repo, "hello", "1-r0", PkgState.PUBLISHED),),
        arches=("aarch64",),
        images_interval_seconds=WEEK,
    )
    return replace(site, plan=replace(site.plan, images=images))


def rendered(tmp_path: Path, site: SiteInput) -> Path:
    out = tmp_path / "html"
    SiteWriter(out).render(site, 0.0)
    return out


def rows_of(html: str) -> dict[str, str]:
    """Each image row's HTML by its name and state ("main:demo-phone:demo published")."""
    found = re.findall(r'<tr [^>]*data-image="([^"]+)" data-state="([^"]+)".*?</tr>', html, re.S)
    rows = re.findall(r'<tr [^>]*data-image="[^"]+" data-state="[^"]+".*?</tr>', html, re.S)
    return {f"{name} {state}": row for (name, state), row in zip(found, rows, strict=True)}


def test_the_images_page_has_a_row_per_image_with_its_reason_log_and_directory(
    tmp_path: Path,
) -> None:
    out = rendered(tmp_path, published_site(IMAGES))
    html = (out / "images.html").read_text()
    rows = rows_of(html)
    assert len(rows) == len(IMAGES)
    # Failed first, in the grid's colours, its reason and tries visible.
    assert next(iter(rows)) == "main:demo-phone:console failed"
    failed = rows["main:demo-phone:console failed"]
    assert 'class="s-failed alarm"' in failed
    text = page_text(failed)
    assert "failed: exit code 1: no postmarketos-base" in text and "try 3/3" in text
    assert f'href="logs/{FAILED.job_id}.log"' in failed
    # Building and retrying link their logs; the retrying one says its tries.
    assert 'href="logs/' in rows["main:demo-laptop:demo building"]
    retrying = rows["main:demo-laptop:plasma retrying"]
    assert 'href="logs/' in retrying and "try 1/3" in page_text(retrying)
    # Published: a link to its date directory on the same host, no log.
    published = rows["main:demo-phone:demo published"]
    assert 'href="images/edge/demo-phone/demo/20260102-0930/"' in published
    assert "logs/" not in published
    # Waiting and queued say why, a named kernel is part of the name.
    waiting = page_text(rows["main:demo-phone:demo:mainline waiting"])
    assert "waiting for main/aarch64 to publish" in waiting
    assert "ready; package builds go first" in page_text(rows["main:demo-laptop:console queued"])
    assert "held by ana: panel" in page_text(rows["main:demo-tablet:demo held"])
    # The next slot: a week after this one.
    assert "2026-01-08T00:00:00Z" in page_text(failed)
    assert 'href="images/edge' not in html.replace(
        'href="images/edge/demo-phone/demo/20260102-0930/"', ""
    )
    # Linked from the nav of every page; the front page sums them up.
    index = (out / "index.html").read_text()
    assert 'href="images.html"' in index
    summary = page_text(index.split('class="images-summary"')[1].split("</section>")[0])
    assert "1 failed" in summary and "1 published" in summary and "see the images" in summary
    assert 'href="../images.html"' in (out / "branch" / "main.html").read_text()


def test_without_an_interval_the_page_names_the_slot(tmp_path: Path) -> None:
    site = replace(published_site((FAILED,)), images_interval_seconds=0.0)
    html = (rendered(tmp_path, site) / "images.html").read_text()
    assert SLOT in page_text(html) and "2026-01-08" not in html


def test_status_json_lists_the_images(tmp_path: Path) -> None:
    out = rendered(tmp_path, published_site(IMAGES))
    document = json.loads((out / "status.json").read_text())
    by_name = {(i["device"], i["ui"], i["kernel"], i["state"]): i for i in document["images"]}
    assert len(by_name) == len(IMAGES)
    failed = by_name[("demo-phone", "console", "", "failed")]
    assert failed == {
        "branch": "main",
        "device": "demo-phone",
        "ui": "console",
        "kernel": "",
        "arch": "aarch64",
        "slot": SLOT,
        "state": "failed",
        "reason": "exit code 1: no postmarketos-base",
        "tries": 3,
        "max_tries": 3,
        "log": f"logs/{FAILED.job_id}.log",
        "date": "",
    }
    assert by_name[("demo-phone", "demo", "", "published")]["date"] == "20260102-0930"
    branch_doc = json.loads((out / "status" / "main.json").read_text())
    assert branch_doc["images"] == document["images"]


def test_a_failed_image_raises_the_badge_and_monitoring(tmp_path: Path) -> None:
    quiet = published_site(IMAGES[:1])
    assert badge_state(quiet) == "up-to-date" and monitoring_lines(quiet) == ("OK",)
    building = published_site(IMAGES[:2])
    assert badge_state(building) == "building" and monitoring_lines(building) == ("OK",)

    site = published_site(IMAGES)
    assert badge_state(site) == "failed"
    lines = monitoring_lines(site)
    assert lines[0] == "1 failure(s) at [reconciler](https://build.example.org/):"
    assert lines[1] == (
        f"* 🖼️ [main:demo-phone:console](https://build.example.org/logs/{FAILED.job_id}.log)"
        " (try 3/3)"
    )
    out = rendered(tmp_path, site)
    assert (out / "monitoring.txt").read_text().splitlines() == list(lines)
    assert "binary repo: failed" in (out / "badge.svg").read_text()
    pages = build_pages(site).pages
    assert pages["index.html"].data.images.alarms == 1  # type: ignore[attr-defined]

    # A branch being brought up does not turn the badge red; monitoring lists it (bpo).
    bringup = replace(site, branches=(BranchInfo("main", ("aarch64",), True, ""),))
    assert badge_state(bringup) == "building"
    assert len(monitoring_lines(bringup)) == 2


def test_the_images_page_is_not_rendered_again_when_nothing_changed(tmp_path: Path) -> None:
    site = published_site(IMAGES)
    writer = SiteWriter(tmp_path / "html")
    writer.render(site, 0.0)
    before = writer.rendered
    writer.render(site, 0.0)
    assert writer.rendered == before
    writer.render(replace(site, plan=replace(site.plan, images=IMAGES[:-1])), 0.0)
    assert writer.rendered > before


def test_reconciler_status_lists_images_and_exits_1_for_a_failed_one(
    make_config: ConfigFactory, tmp_path: Path
) -> None:
    config = make_config()
    html = config.paths.html_out
    html.mkdir(parents=True, exist_ok=True)

    def status_with(images: tuple[ImageStatus, ...]) -> tuple[int, str]:
        documents = build_pages(published_site(images)).documents
        (html / "status.json").write_bytes(documents["status.json"])
        ran = run_cli("status", "--config", config.source)
        return ran.returncode, ran.stdout

    code, out = status_with(IMAGES[:2])
    assert code == 0, out
    assert "images: 2" in out and "problems:" not in out
    assert "main:demo-phone:demo" in out and "[20260102-0930]" in out

    code, out = status_with(IMAGES)
    assert code == 1, out
    problems = out.split("problems: ")[1].splitlines()
    assert problems[0] == "2"  # the failed and the retrying image
    assert (
        "  image main:demo-phone:console (aarch64): failed: exit code 1: no postmarketos-base"
        in problems
    )
    line = next(x for x in out.splitlines() if "main:demo-phone:console" in x)
    assert "(try 3/3)" in line


def test_the_once_summary_names_the_images_not_published() -> None:
    site = published_site(IMAGES)
    text = summary(PassResult(site.plan, [], 0))
    assert "  image main:demo-phone:console (aarch64): failed: exit code 1" in text
    assert "  image main:demo-phone:demo:mainline (aarch64): waiting for main/aarch64" in text
    assert "image main:demo-phone:demo (aarch64)" not in text  # published
