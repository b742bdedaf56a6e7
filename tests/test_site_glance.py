"""Readable at a glance, with honest times: the front page has a summary line per
branch, word column headers and no all-zero state column, transitions under the
day they happened, branches and repositories told apart, and says when the last
pass ran; every page says when its content last changed; every page that shows
state letters says what they mean."""

from __future__ import annotations

import re
import time
from pathlib import Path

from reconciler.model.names import RepoKey
from reconciler.model.progress import Event, PkgState, PkgStatus, RepoPhase, RepoStatus
from reconciler.site.writer import SiteWriter

from .site_inputs import page_text, site_of

X86 = RepoKey("main", "", "x86_64")
ARM = RepoKey("main", "", "aarch64")
DAY = 86_400.0
# A state letter and the word after it (a count may come between).
LETTER = re.compile(r'<span class="letter[^"]*">([A-Z])</span>\s*(?:\d+\s+)?([a-z]*)')
NOW = 1_796_560_000.0  # 2026-12-06T13:46:40Z


def day_of(epoch: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


def test_transitions_are_grouped_by_day_newest_first(tmp_path: Path) -> None:
    events = (  # newest first, as the history gives them
        Event(NOW - 10, "main/x86_64", "c", "1-r0", "published", "published"),
        Event(NOW - 20, "main/x86_64", "b", "1-r0", "failed", "exit code 1"),
        Event(NOW - DAY, "main/x86_64", "a", "1-r0", "fixed", "built again"),
        Event(NOW - DAY - 5, "main/aarch64", "a", "1-r0", "failed", "exit code 2"),
    )
    packages = tuple(PkgStatus(X86, n, "1-r0", PkgState.PUBLISHED) for n in "abc")
    SiteWriter(tmp_path).render(site_of(packages, events=events), NOW)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    section = re.search(r'<section class="transitions">(.*?)</section>', html, re.DOTALL)
    assert section
    days = re.findall(
        r'<h3><time datetime="([^"]+)">[^<]+</time></h3>\s*<ul class="events">(.*?)</ul>',
        section.group(1),
        re.DOTALL,
    )
    assert [d for d, _ in days] == [day_of(NOW), day_of(NOW - DAY)]
    listed = [
        [page_text(li) for li in re.findall(r"<li>(.*?)</li>", body, re.DOTALL)] for _, body in days
    ]
    clock = [[item.split()[0] for item in items] for items in listed]
    assert clock == [
        [
            time.strftime("%H:%M:%S", time.gmtime(NOW - 10)),
            time.strftime("%H:%M:%S", time.gmtime(NOW - 20)),
        ],
        [
            time.strftime("%H:%M:%S", time.gmtime(NOW - DAY)),
            time.strftime("%H:%M:%S", time.gmtime(NOW - DAY - 5)),
        ],
    ]
    assert "failed main/x86_64 b 1-r0 — exit code 1" in listed[0][1]


def test_the_front_page_reads_at_a_glance(tmp_path: Path) -> None:
    packages = (
        PkgStatus(X86, "a", "1-r0", PkgState.PUBLISHED),
        PkgStatus(X86, "b", "1-r0", PkgState.FAILED, "exit code 1", 1, 1, None),
        PkgStatus(ARM, "a", "1-r0", PkgState.PUBLISHED),
        PkgStatus(ARM, "b", "1-r0", PkgState.WAITING, "needs x"),
    )
    repos = (
        RepoStatus(X86, RepoPhase.BLOCKED, "1 failed package (b)"),
        RepoStatus(ARM, RepoPhase.BUILDING),
    )
    SiteWriter(tmp_path).render(site_of(packages, repos=repos, arches=("x86_64", "aarch64")), NOW)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    # One summary line per branch, in words.
    summary = re.search(r'<ul class="branches">(.*?)</ul>', html, re.DOTALL)
    assert summary
    lines = [page_text(li) for li in re.findall(r"<li>(.*?)</li>", summary.group(1), re.DOTALL)]
    assert lines == ["branch main: P 2 published W 1 waiting F 1 failed — not yet up to date"]
    # Word headers, only for the states a package is in.
    table = re.search(r'<table class="repos">(.*?)</table>', html, re.DOTALL)
    assert table
    heads = re.findall(r'<th class="num" data-state="(\w+)">(.*?)</th>', table.group(1))
    assert [(s, page_text(h)) for s, h in heads] == [
        ("published", "P published"),
        ("waiting", "W waiting"),
        ("failed", "F failed"),
    ]
    # The branch and its repositories are told apart.
    assert '<a class="branch-name" href="branch/main.html">branch main</a>' in html
    assert '<td class="repo">main/x86_64</td>' in html
    assert "blocked: 1 failed package (b)" in page_text(table.group(1))


def test_every_page_says_when_its_content_last_changed(tmp_path: Path) -> None:
    site = site_of((PkgStatus(X86, "a", "1-r0", PkgState.PUBLISHED),))
    SiteWriter(tmp_path).render(site, NOW)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW))
    for page in tmp_path.rglob("*.html"):
        footer = re.search(r"<footer>(.*?)</footer>", page.read_text(encoding="utf-8"), re.DOTALL)
        assert footer, page
        assert page_text(footer.group(1)) == f"Content last changed by the pass at {stamp}.", page


def test_the_front_page_shows_when_the_last_pass_ran(tmp_path: Path) -> None:
    """The front page is written only when its content changes, so the time of
    every pass comes from the heartbeat every pass writes (metrics.prom), read by
    stale.js; the time of the last full pass is on the page itself."""
    site = site_of((PkgStatus(X86, "a", "1-r0", PkgState.PUBLISHED),), last_pass_at=NOW - 60)
    SiteWriter(tmp_path).render(site, NOW)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert re.search(r'<p id="last-pass" class="daemon" hidden>[^<]*<time></time></p>', html)
    assert "daemon last seen: " in page_text(html)
    script = (tmp_path / "static/stale.js").read_text(encoding="utf-8")
    assert 'fetch("metrics.prom"' in script
    assert "reconciler_last_pass_timestamp_seconds" in script


def test_every_page_with_state_letters_says_what_they_mean(tmp_path: Path) -> None:
    packages = tuple(
        PkgStatus(X86, f"p{i}", "1-r0", state, "why") for i, state in enumerate(PkgState)
    )
    SiteWriter(tmp_path).render(site_of(packages), NOW)
    for page in tmp_path.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        letters = re.findall(LETTER, html)
        if not letters:
            continue
        explained = 'class="legend"' in html or all(word for _, word in letters)
        assert explained, f"{page.relative_to(tmp_path)}: letters without words or a legend"
