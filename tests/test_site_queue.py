"""The queue page is the plan: what starts next in the order the plan submits it,
what runs (with its log, live), what waits grouped by what it waits for, and what
each repository waits for before it publishes. Logs are linked where they can be
read while a job runs: the site's `logs/<job id>.log` for a local job (the web
server serves the live file), the job service's page for a remote one."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.names import RepoKey
from reconciler.model.progress import PkgState, PkgStatus, RepoPhase, RepoStatus
from reconciler.site.model import LogLinks, job_log
from reconciler.site.writer import SiteWriter

from .site_inputs import page_text, site_of

X86 = RepoKey("main", "", "x86_64")
ARM = RepoKey("main", "", "aarch64")
SYSTEMD = RepoKey("main", "systemd", "x86_64")
NOW = 1_796_560_000.0
SLOT = "ready, waiting for a free job slot"


def queued(repo: RepoKey, name: str, reason: str = SLOT) -> PkgStatus:
    return PkgStatus(repo, name, "1.0-r0", PkgState.QUEUED, reason)


def waiting(repo: RepoKey, name: str, *needs: str, reason: str = "") -> PkgStatus:
    return PkgStatus(
        repo, name, "1.0-r0", PkgState.WAITING, reason or f"needs {needs}", needs=needs
    )


def job(repo: RepoKey, name: str, status: JobStatus, **fields: object) -> JobObservation:
    key = JobKey(JobIntent(JobKind.BUILD, repo, name, "1.0-r0"), 1)
    return JobObservation(key, status, NOW - 30, None if status.is_live else NOW, **fields)  # type: ignore[arg-type]


def section(html: str, ident: str) -> str:
    found = re.search(rf'<section id="{ident}">(.*?)</section>', html, re.DOTALL)
    assert found, ident
    return found.group(1)


def render(tmp_path: Path, *packages: PkgStatus, **fields: object) -> str:
    SiteWriter(tmp_path).render(site_of(packages, **fields), NOW)
    return (tmp_path / "queue.html").read_text(encoding="utf-8")


def test_what_starts_next_is_the_plans_queue_in_its_order_each_linked(tmp_path: Path) -> None:
    # The plan's order (native arch first, then by dependencies), not the names'.
    order = (queued(X86, "zlib"), queued(X86, "libfoo"), queued(ARM, "gcc-aarch64"))
    paused = queued(ARM, "other", "ready; main/aarch64 is paused: maintenance")
    html = render(tmp_path, *order, paused, queue=order)
    items = re.findall(r"<li>(.*?)</li>", section(html, "next"), re.DOTALL)
    assert [page_text(i) for i in items] == [
        "zlib 1.0-r0 for main/x86_64",
        "libfoo 1.0-r0 for main/x86_64",
        "gcc-aarch64 1.0-r0 for main/aarch64",
    ]
    hrefs = [re.search(r'href="([^"]+)"', i).group(1) for i in items]  # type: ignore[union-attr]
    assert hrefs == [
        "package/main/zlib.html",
        "package/main/libfoo.html",
        "package/main/gcc-aarch64.html",
    ]
    assert all((tmp_path / h).is_file() for h in hrefs)
    assert "<ol" in section(html, "next"), "numbered"
    # A queued package outside the queue waits for what its reason says.
    waits = page_text(section(html, "waiting"))
    assert "ready; main/aarch64 is paused: maintenance · branch main · 1 package other" in waits


def test_an_empty_queue_says_so(tmp_path: Path) -> None:
    html = render(tmp_path, PkgStatus(X86, "a", "1-r0", PkgState.PUBLISHED))
    assert "Nothing waits for a build slot." in page_text(section(html, "next"))
    assert "Nothing waits for another package." in page_text(section(html, "waiting"))


def test_waiting_packages_are_grouped_by_what_they_wait_for(tmp_path: Path) -> None:
    packages = (
        waiting(X86, "foo-gui", "foo-utils (failed)", "libfoo"),
        waiting(ARM, "foo-gui", "foo-utils (failed)"),
        waiting(X86, "foo-tools", "foo-utils (failed)"),
        waiting(ARM, "crossdirect", "gcc-aarch64 published for x86_64"),
        waiting(X86, "old", reason="waiting for the job service"),
    )
    html = render(tmp_path, *packages)
    waits = section(html, "waiting")
    groups = re.findall(r"<h3>(.*?)</h3>\s*<ul class=\"waiters\">(.*?)</ul>", waits, re.DOTALL)
    found = {
        page_text(head).split(" · ")[0]: [
            page_text(li) for li in re.findall(r"<li>(.*?)</li>", body)
        ]
        for head, body in groups
    }
    assert found == {
        "blocked by foo-utils (failed)": [
            "foo-gui in main/aarch64, main/x86_64",
            "foo-tools in main/x86_64",
        ],
        "needs libfoo": ["foo-gui in main/x86_64"],
        "needs gcc-aarch64 published for x86_64": ["crossdirect in main/aarch64"],
        "waiting for the job service": ["old in main/x86_64"],
    }
    # What holds back most packages comes first; each package links to its page.
    assert page_text(groups[0][0]).startswith("blocked by foo-utils (failed)")
    assert 'href="package/main/foo-gui.html"' in waits


def test_repositories_say_what_they_wait_for_before_they_publish(tmp_path: Path) -> None:
    native_wait = "waits for 2 native packages: gcc-aarch64, crossdirect"
    repos = (
        RepoStatus(X86, RepoPhase.BUILDING),
        RepoStatus(ARM, RepoPhase.BUILDING, native_wait),
        RepoStatus(SYSTEMD, RepoPhase.BLOCKED, "1 failed package (foo-utils)"),
        RepoStatus(RepoKey("main", "", "armv7"), RepoPhase.PUBLISHED),
    )
    packages = (queued(X86, "a"), queued(X86, "b"), PkgStatus(X86, "c", "1", PkgState.BUILT))
    html = render(tmp_path, *packages, repos=repos, queue=packages[:2])
    lines = [page_text(li) for li in re.findall(r"<li[^>]*>(.*?)</li>", section(html, "publish"))]
    assert lines == [
        "main/x86_64: building; 2 packages still to build",
        f"main/aarch64: building: {native_wait}",
        "main:systemd/x86_64: blocked: 1 failed package (foo-utils)",
    ]


def test_running_jobs_link_their_live_logs(tmp_path: Path) -> None:
    local = job(X86, "foo-utils", JobStatus.RUNNING, log_path="/data/jobs/live/x/log")
    remote = job(ARM, "foo-utils", JobStatus.RUNNING, url="https://builds.example.org/~b/job/7")
    html = render(tmp_path, jobs=(local, remote), max_parallel=2)
    running = section(html, "running")
    assert f'href="logs/{local.key.job_id}.log"' in running
    assert 'href="https://builds.example.org/~b/job/7"' in running
    text = page_text(running)
    assert "build foo-utils 1.0-r0 for main/x86_64, try 1" in text
    assert "build foo-utils 1.0-r0 for main/aarch64, try 1" in text
    assert "log so far" in text and "job page" in text
    assert "2 of 2 build slots in use" in page_text(html)
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert f'href="logs/{local.key.job_id}.log"' in index, "the front page links it too"


def test_the_log_link_rule() -> None:
    """A local log is linked at the site's copy whether the job runs or ended; a
    remote job at its page; a job with neither has no link; a job the service no
    longer lists at the copy its log was kept as."""
    for status in (JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.FAILED, JobStatus.SUCCESS):
        local = job(X86, "a", status, log_path="/x/log")
        link = job_log(local)
        assert link is not None and (link.path, link.url) == (f"logs/{local.key.job_id}.log", "")
        remote = job(X86, "a", status, url="https://b.example.org/j/1")
        link = job_log(remote)
        assert link is not None and (link.path, link.url) == ("", "https://b.example.org/j/1")
    assert job_log(job(X86, "a", JobStatus.RUNNING)) is None
    gone = job(X86, "gone", JobStatus.FAILED).key.job_id
    link = LogLinks(()).of(gone)
    assert link is not None and link.path == f"logs/{gone}.log"
    assert link.label == "build gone 1.0-r0 for main/x86_64, try 1"
    assert LogLinks(()).of(None) is None


def test_the_queue_page_lists_what_the_last_pass_did(tmp_path: Path) -> None:
    html = render(tmp_path, queued(X86, "a"))
    assert "Nothing: there was nothing to do." in unescape(section(html, "actions"))
