"""Which files the site has and the view model of each: SiteInput -> SitePages.

Pure. Each Page names its template and carries a frozen value; equal values mean
an unchanged file, which the writer then neither renders nor writes. Package
pages, thousands of them, come as ready bodies (sitepackage) that the writer puts
in their template's frame. Feeds, badge, monitoring.txt and the status documents
are built here too, from one set of summaries, so that every file shows the same
snapshot. The operations page lists every operator action on record; the front
page shows the holds and pauses in force and when the daemon last made a full
pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup

from reconciler.model.progress import OperationRecord, PkgState, PkgStatus
from reconciler.operator.intents import Hold, Pause
from reconciler.site.documents import status_documents
from reconciler.site.feeds import OPERATIONS_PAGE, badge_state, feed_data, monitoring_lines
from reconciler.site.model import (
    ALARM_STATES,
    BranchSummary,
    Escaped,
    EventRow,
    JobRow,
    Links,
    SiteInput,
    branch_summaries,
    cell_table,
    event_row,
    every,
    failures,
    grid_html,
    iso,
    log_href,
    operation_target,
    package_href,
    plan_words,
    running_jobs,
)
from reconciler.site.package import PackageInputs, PackagePages, package_pages


@dataclass(frozen=True, slots=True)
class Page:
    template: str
    root: str  # relative path from the page to the site root ("", "../", ...)
    title: str
    data: object


INDEX_UNPUBLISHED = 100  # the front page lists at most this many unpublished packages


@dataclass(frozen=True, slots=True)
class IntentRow:
    """A hold or a pause in force: what, who, since, until and why."""

    what: str
    href: str  # the held package's page or the paused branch's ("": none)
    who: str
    since: str
    until: str  # "" while it has no end
    why: str


@dataclass(frozen=True, slots=True)
class DaemonSeen:
    """When the daemon last made a full pass: the front page's "last seen" line,
    which static/stale.js turns into a warning once it is older than `stale_after`."""

    seen: str  # ISO time, "" before the first full pass
    epoch: str  # the same as unix time, for the script
    stale_after: str  # seconds
    interval: str  # the full pass's interval in words


@dataclass(frozen=True, slots=True)
class IndexData:
    branches: tuple[BranchSummary, ...]
    unpublished: tuple[FailureRow, ...]
    more_unpublished: int
    running: tuple[JobRow, ...]
    events: tuple[EventRow, ...]
    max_parallel: int
    job_service_error: str
    problems: tuple[str, ...]
    badge: str
    alarms: int  # failed or broken packages, outside the branches being brought up
    holds: tuple[IntentRow, ...]
    pauses: tuple[IntentRow, ...]
    daemon: DaemonSeen


@dataclass(frozen=True, slots=True)
class OperationRow:
    time: str
    operation: str
    target: str
    href: str  # the target's page ("": none)
    who: str
    why: str
    outcome: str  # applied, refused or no-op
    effect: str


@dataclass(frozen=True, slots=True)
class BranchData:
    summary: BranchSummary
    arches: tuple[str, ...]
    rows_html: Markup  # the grid's rows (sitemodel.grid_html)
    rows: int


@dataclass(frozen=True, slots=True)
class QueueData:
    words: tuple[str, ...]
    running: tuple[JobRow, ...]
    in_use: int
    max_parallel: int


@dataclass(frozen=True, slots=True)
class FailureRow:
    repo: str
    pkgname: str
    version: str
    state: str
    letter: str
    reason: str
    tries: str
    when: str
    href: str
    log: str
    next_try: str  # a retrying package's next try (ISO time), else ""
    alarm: bool  # failed or broken


@dataclass(frozen=True, slots=True)
class TextData:
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SitePages:
    pages: dict[str, Page]  # rendered from their templates
    packages: PackagePages  # framed by PACKAGE_TEMPLATE
    documents: dict[str, bytes]  # status.json and status/<branch>.json


PACKAGE_TEMPLATE = "package.html"
PACKAGE_ROOT = "../../"


def build_pages(site: SiteInput, previous: PackageInputs | None = None) -> SitePages:
    """Every file of the site; package pages only where they may differ from the
    pass `previous` describes (see sitepackage.package_pages)."""
    summaries = branch_summaries(site)
    escaped = Escaped()  # shared by the grid and the package pages
    cells = cell_table(site, escaped)
    packages = package_pages(site, cells, PACKAGE_ROOT, escaped, previous)
    links = Links(packages.inputs.pages, frozenset(b.name for b in site.branches))
    badge = badge_state(site)
    running = running_jobs(site)
    pages: dict[str, Page] = {
        "index.html": Page(
            "index.html", "", site.title, index_data(site, summaries, links, badge, running)
        ),
        "queue.html": Page(
            "queue.html",
            "",
            f"{site.title}: queue",
            QueueData(plan_words(site), running, len(running), site.max_parallel),
        ),
        "failures.html": Page("failures.html", "", f"{site.title}: failures", failure_data(site)),
        OPERATIONS_PAGE: Page(
            OPERATIONS_PAGE,
            "",
            f"{site.title}: operations",
            tuple(operation_row(r, links) for r in site.operations),
        ),
        "badge.svg": Page("badge.svg", "", "", TextData((badge,))),
        "monitoring.txt": Page("monitoring.txt", "", "", TextData(monitoring_lines(site))),
        "feed.atom": Page("feed.atom", "", "", feed_data(site, None, links)),
    }
    for branch, summary in zip(site.branches, summaries, strict=True):
        rows_html, rows = grid_html(branch, cells, "../", escaped)
        pages[f"branch/{branch.name}.html"] = Page(
            "branch.html",
            "../",
            f"{site.title}: {branch.name}",
            BranchData(summary, branch.arches, Markup(rows_html), rows),
        )
        pages[f"feeds/{branch.name}.atom"] = Page(
            "feed.atom", "", "", feed_data(site, branch, links)
        )
    return SitePages(pages, packages, status_documents(site, summaries, badge))


def index_data(
    site: SiteInput,
    summaries: tuple[BranchSummary, ...],
    links: Links,
    badge: str,
    running: tuple[JobRow, ...],
) -> IndexData:
    quiet = {b.name for b in site.branches if b.ignore_errors}
    return IndexData(
        summaries,
        *unpublished_rows(site),
        running,
        tuple(event_row(e, links) for e in site.events[:30]),
        site.max_parallel,
        site.job_service_error,
        site.problems,
        badge,
        sum(s.alarms for s in summaries if s.name not in quiet),
        tuple(hold_row(h, links) for h in site.holds),
        tuple(pause_row(p, links) for p in site.pauses),
        daemon_seen(site),
    )


def hold_row(hold: Hold, links: Links) -> IntentRow:
    where = f"{hold.branch}/{hold.arch}" if hold.arch else hold.branch
    return IntentRow(
        f"{where} {hold.pkgname}",
        links.target(hold.branch, hold.pkgname),
        hold.who,
        iso(hold.since),
        iso(hold.expires),
        hold.why,
    )


def pause_row(pause: Pause, links: Links) -> IntentRow:
    where = f"{pause.branch}/{pause.arch}" if pause.arch else pause.branch
    return IntentRow(
        where,
        links.target(pause.branch),
        pause.who,
        iso(pause.since),
        iso(pause.expires),
        pause.why,
    )


def daemon_seen(site: SiteInput) -> DaemonSeen:
    seen = site.last_pass_at
    return DaemonSeen(
        iso(seen) if seen is not None else "",
        f"{seen:.3f}" if seen is not None else "",
        f"{site.stale_after_seconds:g}",
        every(site.stale_after_seconds / 2),
    )


def operation_row(record: OperationRecord, links: Links) -> OperationRow:
    branch, pkgname = operation_target(record)
    return OperationRow(
        iso(record.time),
        record.operation,
        record.target,
        links.target(branch, pkgname) if branch else "",
        record.who,
        record.why,
        record.outcome,
        record.effect,
    )


def failure_row(status: PkgStatus, when: str = "") -> FailureRow:
    return FailureRow(
        repo=str(status.repo),
        pkgname=status.pkgname,
        version=status.version,
        state=str(status.state),
        letter=status.state.letter,
        reason=status.reason,
        tries=f"{status.tries}/{status.max_tries}" if status.max_tries else "",
        when=when,
        href=package_href(status.repo.branch, status.pkgname),
        log=log_href(None, status.job_id),
        next_try=iso(status.next_try_at) if status.state is PkgState.RETRYING else "",
        alarm=status.state in ALARM_STATES,
    )


def failure_data(site: SiteInput) -> tuple[FailureRow, ...]:
    return tuple(failure_row(status, when) for status, when in failures(site))


def unpublished_rows(site: SiteInput) -> tuple[tuple[FailureRow, ...], int]:
    """Packages not published yet, failed and broken first, then retrying ones, and
    how many did not fit."""
    rows = [s for s in site.plan.packages if s.state is not PkgState.PUBLISHED]
    rows.sort(
        key=lambda s: (s.state not in ALARM_STATES, not s.state.is_problem, s.repo, s.pkgname)
    )
    shown = tuple(failure_row(s) for s in rows[:INDEX_UNPUBLISHED])
    return shown, max(len(rows) - INDEX_UNPUBLISHED, 0)
