"""Reasons in a maintainer's words: a failed package's log excerpt beside its reason
(escaped, bounded), a package behind a failed one "blocked by ... (failed)" as the
plan says it, no word said twice where the site joins a label and a reason, and
jobs named by what they do, their ids only in links and attributes."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest

from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.names import RepoKey
from reconciler.model.progress import (
    Event,
    OperationRecord,
    PkgState,
    PkgStatus,
    RepoPhase,
    RepoStatus,
)
from reconciler.site.model import EXCERPT_LINES
from reconciler.site.writer import SiteWriter

from .site_inputs import page_text, site_of

X86 = RepoKey("main", "", "x86_64")
ARM = RepoKey("main", "", "aarch64")
NOW = 1_796_560_000.0
HOSTILE = "ERROR: <script>alert('x')</script> & \"quotes\"\nmake: *** [all] Error 1"


def job(name: str, status: JobStatus, attempt: int = 1, **fields: object) -> JobObservation:
    key = JobKey(JobIntent(JobKind.BUILD, X86, name, "1.0-r0"), attempt)
    return JobObservation(key, status, NOW - 60, None if status.is_live else NOW - 10, **fields)  # type: ignore[arg-type]


def failed(
    name: str, excerpt: str = HOSTILE, reason: str = "exit code 2 (try 3 of 3)"
) -> PkgStatus:
    ident = job(name, JobStatus.FAILED, 3).key.job_id
    return PkgStatus(X86, name, "1.0-r0", PkgState.FAILED, reason, 3, 3, ident, excerpt=excerpt)


def render(tmp_path: Path, *packages: PkgStatus, **fields: object) -> Path:
    SiteWriter(tmp_path).render(site_of(packages, **fields), NOW)
    return tmp_path


def excerpts(html: str) -> list[str]:
    return [unescape(e) for e in re.findall(r'<pre class="excerpt">(.*?)</pre>', html, re.DOTALL)]


def test_the_log_excerpt_is_shown_escaped_beside_the_reason(tmp_path: Path) -> None:
    out = render(tmp_path, failed("foo-utils"))
    for page in ("package/main/foo-utils.html", "failures.html"):
        html = (out / page).read_text(encoding="utf-8")
        assert "<script>alert" not in html, page
        assert excerpts(html) == [HOSTILE], page
        text = page_text(html)
        assert "failed: exit code 2 (try 3 of 3)" in text, page
        # The reason comes first, the excerpt right after it.
        assert text.index("exit code 2") < text.index("ERROR:"), page


def test_a_long_excerpt_shows_its_last_lines(tmp_path: Path) -> None:
    long = "\n".join(f"line {n}" for n in range(1, 101))
    out = render(tmp_path, failed("foo-utils", long))
    shown = excerpts((out / "failures.html").read_text(encoding="utf-8"))[0].split("\n")
    assert shown == [f"line {n}" for n in range(101 - EXCERPT_LINES, 101)]


def test_a_package_without_an_excerpt_shows_no_empty_block(tmp_path: Path) -> None:
    out = render(tmp_path, failed("foo-utils", ""))
    for page in ("package/main/foo-utils.html", "failures.html"):
        assert "excerpt" not in (out / page).read_text(encoding="utf-8"), page


BLOCKED = PkgStatus(
    X86,
    "foo-gui",
    "2.0-r0",
    PkgState.WAITING,
    "blocked by foo-utils (failed); needs libfoo",
    needs=("foo-utils (failed)", "libfoo"),
)


def test_blocked_by_a_failed_package_is_displayed_as_the_plan_says_it(tmp_path: Path) -> None:
    out = render(tmp_path, failed("foo-utils"), BLOCKED)
    reason = "blocked by foo-utils (failed); needs libfoo"
    assert reason in page_text((out / "package/main/foo-gui.html").read_text(encoding="utf-8"))
    index = page_text((out / "index.html").read_text(encoding="utf-8"))
    assert f"waiting: {reason}" in index
    grid = (out / "branch/main.html").read_text(encoding="utf-8")
    assert f'title="waiting: {reason}"' in grid
    queue = page_text((out / "queue.html").read_text(encoding="utf-8"))
    assert "blocked by foo-utils (failed) · branch main · 1 package foo-gui in main/x86_64" in queue
    assert "needs libfoo · branch main · 1 package foo-gui in main/x86_64" in queue


STATE_WORDS = {str(s) for s in PkgState} | {str(p) for p in RepoPhase}
DOUBLED = re.compile(r"\b(\w+)\b[\s:,;—-]+\b\1\b", re.IGNORECASE)


def doubled_words(text: str) -> list[str]:
    return [m.group(0) for m in DOUBLED.finditer(text) if m.group(1).lower() in STATE_WORDS]


def test_no_label_says_a_word_twice(tmp_path: Path) -> None:
    """Reasons that begin with their state's word (the planner's older wording)
    are joined to it without saying it twice, on every page."""
    packages = (
        failed("a", reason="failed, try 3/3: exit code 1"),
        PkgStatus(X86, "b", "1-r0", PkgState.BUILDING, "building, try 1 of 3"),
        PkgStatus(X86, "c", "1-r0", PkgState.HELD, "held by ana since 2026-12-01 10:00 UTC: x"),
        PkgStatus(X86, "d", "1-r0", PkgState.RETRYING, "retrying after failure 1/3", 1, 3),
        PkgStatus(X86, "e", "1-r0", PkgState.WAITING, "waiting for a"),
        PkgStatus(X86, "f", "1-r0", PkgState.QUEUED, "queued: ready"),
    )
    repos = (
        RepoStatus(X86, RepoPhase.BLOCKED, "blocked by a"),
        RepoStatus(ARM, RepoPhase.BUILDING, "building for main/x86_64's packages first"),
    )
    out = render(tmp_path, *packages, repos=repos)
    pages = [p for p in out.rglob("*.html")]
    assert len(pages) > 8
    for page in pages:
        text = page_text(page.read_text(encoding="utf-8"))
        assert doubled_words(text) == [], page.relative_to(out)
    assert doubled_words("blocked: blocked by a; failed — failed, try 2") == [
        "blocked: blocked",
        "failed — failed",
    ]


def test_jobs_are_named_by_what_they_do_and_their_ids_stay_in_links(tmp_path: Path) -> None:
    running = job("foo-utils", JobStatus.RUNNING, 2, log_path="/x/log")
    done = job("foo-utils", JobStatus.FAILED, 1, log_path="/x/log")
    status = PkgStatus(
        X86, "foo-utils", "1.0-r0", PkgState.BUILDING, "building, try 2 of 3", 1, 3,
        running.key.job_id,
    )  # fmt: skip
    event = Event(
        NOW - 5, "main/x86_64", "foo-utils", "1.0-r0", "failed", "exit 1", done.key.job_id
    )
    operation = OperationRecord(
        NOW - 1, "fail-job", "ana", "stuck", running.key.job_id, "applied", "declared dead"
    )
    out = render(tmp_path, status, jobs=(running, done), events=(event,), operations=(operation,))
    label = "build foo-utils 1.0-r0 for main/x86_64, try 2"
    seen = set()
    for page in out.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        text = page_text(html)
        assert "@" not in text, f"{page.relative_to(out)} shows a job id"
        if label in text:
            seen.add(page.relative_to(out).as_posix())
        if running.key.job_id in html:  # in a link, a title or a data attribute only
            assert re.search(
                rf'(href|title|data-job)="[^"]*{re.escape(running.key.job_id)}', html
            ), page
    assert {"index.html", "queue.html", "package/main/foo-utils.html", "operations.html"} <= seen
    feed = (out / "feed.atom").read_text(encoding="utf-8")
    assert f"<title>fail-job {label}: applied</title>" in feed


@pytest.mark.parametrize("page", ["index.html", "failures.html", "package/main/foo-utils.html"])
def test_a_failed_package_links_its_log_with_the_job_in_words(tmp_path: Path, page: str) -> None:
    done = job("foo-utils", JobStatus.FAILED, 3, log_path="/x/log")
    out = render(tmp_path, failed("foo-utils"), jobs=(done,))
    html = (out / page).read_text(encoding="utf-8")
    root = "../../" if page.startswith("package/") else ""
    link = re.search(
        rf'<a href="{re.escape(root)}logs/{re.escape(done.key.job_id)}\.log"'
        r' title="([^"]*)" data-job="[^"]*">',
        html,
    )
    assert link, page
    assert unescape(link.group(1)) == "build foo-utils 1.0-r0 for main/x86_64, try 3"
