"""What the site says is true: alarms, the published line, operations, holds,
broken and retrying packages, the daemon's last pass.

Table tests over the pure view model (badge, monitoring.txt, the published
line), then real files: a SiteWriter renders a hand-made snapshot into a
temporary directory and the pages are read back as a person (or a script)
would read them.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from html import unescape
from pathlib import Path

import pytest
from markupsafe import escape

from reconciler.model.names import RepoKey
from reconciler.model.packages import DepRef, PkgSpec
from reconciler.model.progress import (
    Event,
    OperationRecord,
    PkgState,
    PkgStatus,
    RepoPhase,
    RepoStatus,
)
from reconciler.operator.intents import Hold, Pause
from reconciler.plan.planner import Plan
from reconciler.site.feeds import badge_state, monitoring_lines
from reconciler.site.model import BranchInfo, Piece, SiteInput, iso, published_line
from reconciler.site.writer import SiteWriter

X86 = RepoKey("main", "", "x86_64")
ARM = RepoKey("main", "", "armv7")
AARCH = RepoKey("main", "", "aarch64")
SYSTEMD = RepoKey("main", "systemd", "x86_64")
NOW = 1_796_560_000.0
OLD, NEW = "5d6e7f8" + "0" * 33, "1a2b3c4" + "f" * 33
COMMIT_URL = "https://gitlab.example.org/pmaports/-/commit/{commit}"
BROKEN_WHY = "main/badver/APKBUILD: line 3: pkgver: invalid characters in '1.0-beta'"


def failed(name: str, repo: RepoKey = X86, tries: int = 3) -> PkgStatus:
    return PkgStatus(repo, name, "1-r0", PkgState.FAILED, "exit 1", tries, 3, f"job-{name}")


def retrying(name: str, repo: RepoKey = X86) -> PkgStatus:
    return PkgStatus(
        repo, name, "1-r0", PkgState.RETRYING, "failed, try 1/3", 1, 3, f"job-{name}", NOW + 90
    )


def broken(name: str = "badver", repo: RepoKey = X86) -> PkgStatus:
    return PkgStatus(repo, name, "", PkgState.BROKEN, BROKEN_WHY)


def state(name: str, pkg_state: PkgState, repo: RepoKey = X86, reason: str = "") -> PkgStatus:
    return PkgStatus(repo, name, "1-r0", pkg_state, reason)


def make_site(
    packages: tuple[PkgStatus, ...],
    *,
    ignore_errors: bool = False,
    repos: tuple[RepoStatus, ...] | None = None,
    commit: str = NEW,
    **fields: object,
) -> SiteInput:
    if repos is None:
        keys = sorted({p.repo for p in packages}) or [X86]
        repos = tuple(RepoStatus(key, RepoPhase.BUILDING) for key in keys)
    site = SiteInput(
        title="t",
        url="https://build.example.org",
        branches=(
            BranchInfo("main", ("x86_64", "aarch64", "armv7"), ignore_errors, commit, COMMIT_URL),
        ),
        plan=Plan((), packages, repos),
        specs={},
        versions={},
        jobs=(),
        events=(),
        max_parallel=1,
        monitoring_max=3,
    )
    return replace(site, **fields)  # type: ignore[arg-type]


# -- the badge and monitoring.txt: failed and broken raise the alarm, retrying not ---


@pytest.mark.parametrize(
    ("packages", "ignore_errors", "badge"),
    [
        ((state("a", PkgState.PUBLISHED),), False, "up-to-date"),
        ((retrying("a"),), False, "building"),
        ((failed("a"),), False, "failed"),
        ((broken(),), False, "failed"),
        ((retrying("a"), state("b", PkgState.PUBLISHED)), False, "building"),
        ((state("a", PkgState.HELD), state("b", PkgState.PUBLISHED)), False, "up-to-date"),
        ((state("a", PkgState.QUEUED),), False, "building"),
        ((failed("a"),), True, "building"),  # a branch being brought up: no alarm
        ((broken(),), True, "building"),
    ],
)
def test_badge(packages: tuple[PkgStatus, ...], ignore_errors: bool, badge: str) -> None:
    assert badge_state(make_site(packages, ignore_errors=ignore_errors)) == badge


@pytest.mark.parametrize(
    ("packages", "footer", "expected"),
    [
        ((state("a", PkgState.PUBLISHED), retrying("r")), "", "OK\n"),
        (
            (retrying("r"), failed("a", tries=3)),
            "",
            "1 failure(s) at [t](https://build.example.org):\n"
            "* 📦 [main/x86_64/a](https://build.example.org/logs/job-a.log) (try 3/3)\n",
        ),
        (
            (broken(), broken(repo=AARCH), failed("x", SYSTEMD, tries=2)),
            "see [the MRs](https://mr.example.org)",
            "3 failure(s) at [t](https://build.example.org):\n"
            "* 📦 [main/x86_64/badver](https://build.example.org/package/main/badver.html)"
            " (APKBUILD broken)\n"
            "* 📦 [main/aarch64/badver](https://build.example.org/package/main/badver.html)"
            " (APKBUILD broken)\n"
            "* 📦 [main:systemd/x86_64/x](https://build.example.org/logs/job-x.log) (try 2/3)\n"
            "see [the MRs](https://mr.example.org)\n",
        ),
        (
            tuple(failed(f"p{i}") for i in range(5)),
            "",
            "5 failure(s) at [t](https://build.example.org):\n"
            + "".join(
                f"* 📦 [main/x86_64/p{i}](https://build.example.org/logs/job-p{i}.log) (try 3/3)\n"
                for i in range(3)
            )
            + "* ...\n",
        ),
        (  # an operator failed it before any job: no log, its page
            (PkgStatus(X86, "d", "1-r0", PkgState.FAILED, "declared dead", 1, 3),),
            "",
            "1 failure(s) at [t](https://build.example.org):\n"
            "* 📦 [main/x86_64/d](https://build.example.org/package/main/d.html) (try 1/3)\n",
        ),
    ],
)
def test_monitoring_txt(
    tmp_path: Path, packages: tuple[PkgStatus, ...], footer: str, expected: str
) -> None:
    """The exact file, as the writer writes it (bpo's format)."""
    site = make_site(packages, monitoring_footer=footer)
    assert "\n".join(monitoring_lines(site)) + "\n" == expected
    SiteWriter(tmp_path).render(site, NOW)
    assert (tmp_path / "monitoring.txt").read_text(encoding="utf-8") == expected


def test_monitoring_counts_branches_being_brought_up_as_bpo_does() -> None:
    lines = monitoring_lines(make_site((failed("a"),), ignore_errors=True))
    assert lines[0] == "1 failure(s) at [t](https://build.example.org):"


# -- the published line -------------------------------------------------------------


def live(repo: RepoKey, commit: str, at: str, phase: RepoPhase = RepoPhase.PUBLISHED) -> RepoStatus:
    return RepoStatus(repo, phase, "", commit, at)


def line_text(pieces: tuple[Piece, ...]) -> str:
    return "".join(p.text for p in pieces)


T1, T2 = "2026-12-01T10:00:00Z", "2026-12-02T11:00:00Z"


@pytest.mark.parametrize(
    ("repos", "newest", "expected"),
    [
        (
            (live(X86, NEW, T1), live(AARCH, NEW, T2), live(ARM, NEW, T1)),
            NEW,
            f"published: 1a2b3c4 at {T2}, the newest commit",
        ),
        (  # a push that changed nothing these repositories publish
            (live(X86, OLD, T1), live(AARCH, OLD, T2)),
            NEW,
            f"published: 5d6e7f8 at {T2}; the newest commit is 1a2b3c4",
        ),
        (  # a push that only bumped an aarch64 package
            (live(X86, OLD, T1), live(AARCH, NEW, T2), live(ARM, OLD, T1)),
            NEW,
            "published: main/aarch64 at 1a2b3c4 (the newest commit), the rest at 5d6e7f8",
        ),
        (
            (live(X86, NEW, T1), live(AARCH, NEW, T2), live(ARM, OLD, T1)),
            NEW,
            "published: main/armv7 at 5d6e7f8, the rest at 1a2b3c4 (the newest commit)",
        ),
        (
            (
                live(X86, NEW, T1),
                RepoStatus(ARM, RepoPhase.BUILDING),
                RepoStatus(SYSTEMD, RepoPhase.EMPTY),  # nothing to publish: not lagging
            ),
            NEW,
            "published: main/x86_64 at 1a2b3c4 (the newest commit); not yet published: main/armv7",
        ),
        ((RepoStatus(X86, RepoPhase.BUILDING),), NEW, "published: nothing yet"),
        (  # a plain directory: no commits, times tell the repositories apart
            (live(X86, "", T1), live(AARCH, "", T1)),
            "",
            f"published: {T1}",
        ),
    ],
)
def test_published_line(repos: tuple[RepoStatus, ...], newest: str, expected: str) -> None:
    branch = BranchInfo("main", ("x86_64", "aarch64", "armv7"), False, newest, COMMIT_URL)
    assert line_text(published_line(branch, list(repos))) == expected


def test_published_commits_link_to_their_full_hash_when_a_commit_url_is_set() -> None:
    repos = [live(X86, OLD, T1), live(AARCH, NEW, T2), live(ARM, OLD, T1)]
    branch = BranchInfo("main", ("x86_64",), False, NEW, COMMIT_URL)
    commits = [p for p in published_line(branch, repos) if p.kind == "commit"]
    assert [(p.text, p.full, p.href) for p in commits] == [
        ("1a2b3c4", NEW, COMMIT_URL.format(commit=NEW)),
        ("5d6e7f8", OLD, COMMIT_URL.format(commit=OLD)),
    ]
    unlinked = replace(branch, commit_url="")
    assert all(not p.href for p in published_line(unlinked, repos) if p.kind == "commit")


def test_the_published_line_on_the_front_and_branch_pages(tmp_path: Path) -> None:
    repos = (live(X86, OLD, T1), live(AARCH, NEW, T2), live(ARM, OLD, T1))
    packages = tuple(state("a", PkgState.PUBLISHED, r.repo) for r in repos)
    SiteWriter(tmp_path).render(make_site(packages, repos=repos), NOW)
    for page in ("index.html", "branch/main.html"):
        html = (tmp_path / page).read_text(encoding="utf-8")
        sync = re.search(r'<p class="sync ok">(.*?)</p>', html, re.DOTALL)
        assert sync, page
        text = " ".join(unescape(re.sub(r"<[^>]+>", "", sync.group(1))).split())
        assert text == (
            "pmaports: 1a2b3c4; published: main/aarch64 at 1a2b3c4 (the newest commit),"
            " the rest at 5d6e7f8 — up to date"
        ), page
        assert f'href="{COMMIT_URL.format(commit=OLD)}"' in html, page
    status = json.loads((tmp_path / "status.json").read_text())
    repos_doc = status["branches"]["main"]["repos"]
    assert repos_doc["main/armv7"]["published_commit"] == OLD
    assert status["branches"]["main"]["published_commit"] == ""  # they differ


# -- real pages of a snapshot with every kind of trouble -------------------------------

EVIL = "<script>alert('x')</script>\" & 'q'"
OPERATIONS = (
    OperationRecord(NOW - 10, "hold", "ana", EVIL, "main/x86_64 held", "applied", "held"),
    OperationRecord(
        NOW - 20,
        "fail-job",
        "bob",
        "stuck",
        "build@main@main@x86_64@a@1-r0@1",
        "applied",
        "declared dead: cancelled, counts as a failed try",
    ),
    OperationRecord(
        NOW - 30, "remove-branch", "cy", "old", "main", "refused", "main is still built"
    ),
    OperationRecord(NOW - 40, "resume", "dee", "oops", "v99", "no-op", "nothing was paused"),
)
HOLD = Hold("main", "x86_64", "held", "ana", EVIL, NOW - 10, NOW + 3600)
PAUSE = Pause("main", "armv7", "eve", "builder maintenance", NOW - 5)


@pytest.fixture
def troubled(tmp_path: Path) -> Path:
    packages = (
        failed("a"),
        broken(),
        broken(repo=AARCH),
        broken(repo=ARM),
        retrying("r"),
        PkgStatus(X86, "held", "1-r0", PkgState.HELD, "held by ana"),
        PkgStatus(
            AARCH, "needs", "1-r0", PkgState.WAITING, "waiting for badver (its APKBUILD is broken)"
        ),
        state("ok", PkgState.PUBLISHED),
    )
    specs = {
        (AARCH, "needs"): PkgSpec(
            AARCH, "needs", "1-r0", "main/needs", "aarch64", build_deps=(DepRef(AARCH, "badver"),)
        )
    }
    events = (
        Event(NOW - 1, "main/x86_64", "badver", "", "broken", BROKEN_WHY),
        Event(NOW - 2, "main/x86_64", "gone", "", "removed", "no longer in pmaports"),
        Event(NOW - 3, "old/x86_64", "x", "1", "failed", "a branch no longer configured"),
    )
    site = make_site(
        packages,
        specs=specs,
        events=events,
        operations=OPERATIONS,
        holds=(HOLD,),
        pauses=(PAUSE,),
        last_pass_at=NOW - 42.125,
        stale_after_seconds=600.0,
    )
    SiteWriter(tmp_path).render(site, NOW)
    return tmp_path


def rows_of(html: str, table_class: str) -> list[list[str]]:
    """The body rows of <table class=...> as lists of cell texts."""
    table = re.search(rf'<table class="{table_class}">(.*?)</table>', html, re.DOTALL)
    assert table, table_class
    body = table.group(1).split("<tbody>", 1)[1]
    return [
        [
            " ".join(unescape(re.sub(r"<[^>]+>", "", c)).split())
            for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)
        ]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.DOTALL)
    ]


def test_operations_page_lists_every_record(troubled: Path) -> None:
    html = (troubled / "operations.html").read_text(encoding="utf-8")
    assert 'href="operations.html"' in (troubled / "index.html").read_text(), "in the navigation"
    rows = rows_of(html, "operations")
    assert [(r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows] == [
        ("hold", "main/x86_64 held", "ana", EVIL, "applied", "held"),
        (
            "fail-job",
            "build a 1-r0 for main/x86_64, try 1",
            "bob",
            "stuck",
            "applied",
            "declared dead: cancelled, counts as a failed try",
        ),
        ("remove-branch", "main", "cy", "old", "refused", "main is still built"),
        ("resume", "v99", "dee", "oops", "no-op", "nothing was paused"),
    ]
    assert [r[0] for r in rows] == [iso(r.time) for r in OPERATIONS]
    assert "<script>alert" not in html and str(escape(EVIL)) in html
    # A job is named by what it does; its id stays in the title.
    assert 'title="build@main@main@x86_64@a@1-r0@1"' in html
    # Targets link to their pages when they have one: the package, the job's package, the branch.
    assert 'href="package/main/held.html"' in html
    assert 'href="package/main/a.html"' in html
    assert 'href="branch/main.html"' in html
    assert 'href="branch/v99.html"' not in html


def test_operations_are_feed_entries(troubled: Path) -> None:
    feed = (troubled / "feed.atom").read_text(encoding="utf-8")
    titles = re.findall(r"<title>(.*?)</title>", feed)[1:]
    assert titles[:4] == [  # merged with the state changes, newest first
        "main/x86_64/badver broken",
        "old/x86_64/x 1 failed",
        "hold main/x86_64 held: applied",
        "fail-job build a 1-r0 for main/x86_64, try 1: applied",
    ]
    assert "remove-branch main: refused" in titles and "resume v99: no-op" in titles
    branch = (troubled / "feeds/main.atom").read_text(encoding="utf-8")
    assert "resume v99: no-op" not in branch and "remove-branch main: refused" in branch
    assert "<script>" not in feed


def test_holds_and_pauses_are_on_the_front_page(troubled: Path) -> None:
    html = (troubled / "index.html").read_text(encoding="utf-8")
    holds, pauses = re.findall(r'<table class="intents">.*?</table>', html, re.DOTALL)
    assert rows_of(holds, "intents") == [
        ["main/x86_64 held", "ana", iso(HOLD.since), iso(HOLD.expires), EVIL]
    ]
    assert rows_of(pauses, "intents") == [
        ["main/armv7", "eve", iso(PAUSE.since), "until lifted", "builder maintenance"]
    ]
    assert "<script>alert" not in html


def test_held_broken_and_retrying_packages_everywhere(troubled: Path) -> None:
    status = json.loads((troubled / "status.json").read_text())
    states = {(p["repo"], p["pkgname"]): p for p in status["packages"]}
    assert states[("main/x86_64", "held")]["state"] == "held"
    assert {
        states[(r, "badver")]["state"] for r in ("main/x86_64", "main/aarch64", "main/armv7")
    } == {"broken"}
    assert states[("main/x86_64", "r")]["next_try_at"] == iso(NOW + 90)
    counts = status["branches"]["main"]["counts"]
    assert (counts["held"], counts["broken"], counts["retrying"], counts["failed"]) == (1, 3, 1, 1)
    # status.json lists the packages not published; the package documents every one.
    assert sum(counts.values()) - counts["published"] == len(status["packages"])
    documents = status["branches"]["main"]["package_documents"]
    every = [p for d in documents for p in json.loads((troubled / d).read_text())["packages"]]
    assert sum(counts.values()) == len(every)
    assert status["badge"] == "failed"

    grid = (troubled / "branch/main.html").read_text(encoding="utf-8")
    link = 'href="../package/main/{}.html"'
    assert (
        f'<td class="cell s-held" title="held by ana"><a {link.format("held")}>H</a></td>' in grid
    )
    why = escape(f"broken: {BROKEN_WHY}")
    assert f'<td class="cell s-broken" title="{why}"><a {link.format("badver")}>X</a>' in grid
    assert f"retrying: failed, try 1/3; next try at {iso(NOW + 90)}" in grid
    # The reasons of failed, broken and retrying cells are shown, not only as tooltips.
    assert f'<span class="why s-broken">x86_64, aarch64, armv7: {why}</span>' in grid
    assert '<span class="why s-failed">x86_64: failed: exit 1</span>' in grid

    held = (troubled / "package/main/held.html").read_text(encoding="utf-8")
    text = " ".join(unescape(re.sub(r"<[^>]+>", "", held)).split())
    assert (
        f"Held on x86_64 by ana since {iso(HOLD.since)}, until {iso(HOLD.expires)}: {EVIL}" in text
    )
    assert "<script>alert" not in held
    bad = (troubled / "package/main/badver.html").read_text(encoding="utf-8")
    assert f"Its APKBUILD is broken: {escape(BROKEN_WHY)}" in bad
    needs = (troubled / "package/main/needs.html").read_text(encoding="utf-8")
    assert '<a href="../../package/main/badver.html">badver</a>' in needs
    retry = (troubled / "package/main/r.html").read_text(encoding="utf-8")
    assert f'retrying: failed, try 1/3<br>next try at <time datetime="{iso(NOW + 90)}">' in retry

    failures = failure_cards((troubled / "failures.html").read_text(encoding="utf-8"))
    assert set(failures) == {
        ("main/x86_64", "a"),
        ("main/x86_64", "badver"),
        ("main/aarch64", "badver"),
        ("main/armv7", "badver"),
        ("main/x86_64", "r"),
    }
    assert failures[("main/armv7", "badver")]["why"] == f"X broken: {BROKEN_WHY}"
    # Broken in three repositories for one reason: one card.
    html = (troubled / "failures.html").read_text(encoding="utf-8")
    assert html.count('data-pkgname="badver"') == 1
    assert failures[("main/x86_64", "a")]["why"] == "F failed: exit 1"
    # The reason ("failed, try 1/3") says the try: the card adds only when the next one is.
    assert failures[("main/x86_64", "r")]["meta"].startswith(f"next try at {iso(NOW + 90)}")
    assert failures[("main/x86_64", "a")]["meta"].startswith("try 3 of 3")


def failure_cards(html: str) -> dict[tuple[str, str], dict[str, str]]:
    """The failures page's cards by (repository, package): the text of each part (a
    card of several repositories under each of them)."""
    cards = {}
    for attrs, body in re.findall(r"<article ([^>]*)>(.*?)</article>", html, re.DOTALL):
        repos = re.search(r'data-repos="([^"]*)"', attrs)
        name = re.search(r'data-pkgname="([^"]*)"', attrs)
        assert repos and name, attrs
        parts = {
            cls: " ".join(unescape(re.sub(r"<[^>]+>", "", text)).split())
            for cls, text in re.findall(r'<p class="(\w+)">(.*?)</p>', body, re.DOTALL)
        }
        excerpt = re.search(r'<pre class="excerpt">(.*?)</pre>', body, re.DOTALL)
        parts["excerpt"] = unescape(excerpt.group(1)) if excerpt else ""
        for repo in unescape(repos.group(1)).split(", "):
            cards[(repo, unescape(name.group(1)))] = parts
    return cards


def test_the_front_page_raises_the_alarm_for_failed_and_broken_only(troubled: Path) -> None:
    html = (troubled / "index.html").read_text(encoding="utf-8")
    assert '<p class="alert alarm">4 packages failed or broken' in html
    assert '<section class="branch alarm">' in html
    assert '<span class="count-retrying">1 retrying</span>' in html


def test_every_event_link_names_a_page_that_exists(troubled: Path) -> None:
    html = (troubled / "index.html").read_text(encoding="utf-8")
    events = re.search(r'<ul class="events">(.*?)</ul>', html, re.DOTALL)
    assert events
    hrefs = re.findall(r'href="([^"]+)"', events.group(1))
    # a removed package: its branch; a branch no longer configured: no link
    assert hrefs == ["package/main/badver.html", "branch/main.html"]
    for href in hrefs:
        assert (troubled / href).is_file(), href


def test_the_daemons_last_full_pass_is_shown_and_in_status_json(troubled: Path) -> None:
    html = (troubled / "index.html").read_text(encoding="utf-8")
    line = re.search(r'<p id="daemon-seen"[^>]*>(.*?)</p>', html, re.DOTALL)
    assert line
    assert f'data-last-pass="{NOW - 42.125:.3f}" data-stale-after="600"' in line.group(0)
    text = " ".join(re.sub(r"<strong.*?</strong>", "", line.group(1)).split())
    assert re.sub(r"<[^>]+>", "", text) == (
        f"daemon last seen: {iso(NOW - 42.125)} (a full pass runs every 5 min)"
    )
    assert '<script src="static/stale.js?v=' in html
    status = json.loads((troubled / "status.json").read_text())
    assert status["last_pass_at"] == iso(NOW - 42.125)
    assert status["last_pass_at_unix"] == NOW - 42.125
    assert status["stale_after_seconds"] == 600.0
    branch = json.loads((troubled / "status/main.json").read_text())
    assert branch["last_pass_at_unix"] == NOW - 42.125


def test_before_the_first_full_pass_the_line_says_so(tmp_path: Path) -> None:
    SiteWriter(tmp_path).render(make_site((state("a", PkgState.PUBLISHED),)), NOW)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "daemon last seen: not yet" in html and "data-last-pass" not in html
    status = json.loads((tmp_path / "status.json").read_text())
    assert (status["last_pass_at"], status["last_pass_at_unix"]) == (None, None)
