"""Which files the site has and the view model of each: SiteInput -> SitePages.

Pure. Each Page names its template and carries a frozen value; equal values mean
an unchanged file, which the writer then neither renders nor writes. Package
pages, thousands of them, come as values of their own (site.package) that the
writer renders with one macro each. Feeds, badge, monitoring.txt and the status
documents are built here too, from one set of summaries, so that every file
shows the same snapshot. The front page has a summary line per branch, the
state columns that are not all zero, the holds and pauses in force, when the
daemon last made a full pass and the transitions by day; the queue page is the
plan: what starts next in the order the plan submits it, what waits grouped by
what it waits for, and what each repository waits for before it publishes; the
operations page lists every operator action on record; the images page
(site.images_status) each desired device image, which the front page sums up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from reconciler.model.names import RepoKey
from reconciler.model.progress import OperationRecord, PkgState, PkgStatus, RepoPhase, need_words
from reconciler.operator.intents import Hold, Pause
from reconciler.plan.planner import Plan
from reconciler.site.documents import status_documents
from reconciler.site.feeds import OPERATIONS_PAGE, badge_state, feed_data, monitoring_lines
from reconciler.site.images_status import IMAGES_PAGE, ImagesData, images_data
from reconciler.site.model import (
    ALARM_STATES,
    BranchSummary,
    EventDay,
    GridRow,
    JobRow,
    Links,
    LogLink,
    LogLinks,
    SiteInput,
    bounded_excerpt,
    branch_summaries,
    cell_table,
    event_days,
    event_row,
    every,
    failures,
    grid_rows,
    iso,
    operation_target,
    package_href,
    running_jobs,
    target_words,
)
from reconciler.site.package import PackageInputs, PackagePages, package_pages
from reconciler.site.words import (
    FREE_SLOT,
    NOT_BUILT_AGAIN,
    describe_actions,
    joined,
    publish_text,
)


@dataclass(frozen=True, slots=True)
class Page:
    template: str
    root: str  # relative path from the page to the site root ("", "../", ...)
    title: str
    data: object


INDEX_UNPUBLISHED = 100  # the front page lists at most this many unpublished packages
INDEX_EVENTS = 30  # and this many transitions


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
    days: tuple[EventDay, ...]  # the last transitions, by day
    max_parallel: int
    job_service_error: str
    problems: tuple[str, ...]
    badge: str
    alarms: int  # failed or broken packages, outside the branches being brought up
    holds: tuple[IntentRow, ...]
    pauses: tuple[IntentRow, ...]
    daemon: DaemonSeen
    images: ImagesData  # the front page shows its counts


@dataclass(frozen=True, slots=True)
class OperationRow:
    time: str
    operation: str
    target: str  # as a person reads it (a job in words)
    target_id: str  # as it was asked for (a job id, for the title)
    href: str  # the target's page ("": none)
    who: str
    why: str
    outcome: str  # applied, refused or no-op
    effect: str


@dataclass(frozen=True, slots=True)
class BranchData:
    summary: BranchSummary
    arches: tuple[str, ...]
    rows: tuple[GridRow, ...]


@dataclass(frozen=True, slots=True)
class QueuedPackage:
    """A package in the plan's queue, in the order it starts."""

    pkgname: str
    version: str
    repo: str
    href: str
    note: str  # its reason when it says more than "waiting for a free slot"


@dataclass(frozen=True, slots=True)
class Waiter:
    """A package waiting in a group: its page and the repositories it waits in."""

    pkgname: str
    href: str
    repos: str  # "main/x86_64, main/aarch64"


@dataclass(frozen=True, slots=True)
class WaitGroup:
    """The packages of one branch that wait for the same thing."""

    branch: str
    what: str  # "needs foo", "blocked by foo (failed)", or the reason as given
    packages: tuple[Waiter, ...]


@dataclass(frozen=True, slots=True)
class PublishLine:
    """What an unfinished repository waits for before it publishes."""

    repo: str
    phase: str
    text: str


@dataclass(frozen=True, slots=True)
class QueueData:
    queued: tuple[QueuedPackage, ...]
    groups: tuple[WaitGroup, ...]
    publish: tuple[PublishLine, ...]
    running: tuple[JobRow, ...]
    in_use: int
    max_parallel: int
    actions: tuple[str, ...]  # what the last pass did, in words


@dataclass(frozen=True, slots=True)
class FailureRow:
    repo: str
    pkgname: str
    version: str
    state: str
    letter: str
    reason: str
    text: str  # state and reason in words, no word said twice
    tries: str
    when: str
    href: str
    log: LogLink | None
    next_try: str  # a retrying package's next try (ISO time), else ""
    alarm: bool  # failed or broken
    excerpt: str  # the last lines of the failed job's log


@dataclass(frozen=True, slots=True)
class FailureCard:
    """A package in trouble in one or more repositories of a branch, for the same
    reason (with the same log excerpt): one card of the failures page."""

    repos: str  # "main/x86_64, main/aarch64"
    row: FailureRow  # the first repository's: the others say the same
    logs: tuple[LogLink, ...]  # the log of each repository's job


@dataclass(frozen=True, slots=True)
class TextData:
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SitePages:
    pages: dict[str, Page]  # rendered from their templates
    packages: PackagePages  # rendered by PACKAGE_MACRO
    documents: dict[str, bytes]  # status.json and status/<branch>.json


PACKAGE_TEMPLATE = "package.html"
PACKAGE_ROOT = "../../"


def build_pages(site: SiteInput, previous: PackageInputs | None = None) -> SitePages:
    """Every file of the site; package pages only where they may differ from the
    pass `previous` describes (see site.package.package_pages)."""
    summaries = branch_summaries(site)
    logs = LogLinks(site.jobs)
    cells = cell_table(site)
    packages = package_pages(site, cells, logs, previous)
    links = Links(packages.inputs.pages, frozenset(b.name for b in site.branches))
    badge = badge_state(site)
    running = running_jobs(site)
    images = images_data(site, logs)
    pages: dict[str, Page] = {
        "index.html": Page(
            "index.html",
            "",
            site.title,
            index_data(site, summaries, links, logs, badge, running, images),
        ),
        IMAGES_PAGE: Page(IMAGES_PAGE, "", f"{site.title}: images", images),
        "queue.html": Page("queue.html", "", f"{site.title}: queue", queue_data(site, running)),
        "failures.html": Page(
            "failures.html", "", f"{site.title}: failures", failure_data(site, logs)
        ),
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
        pages[f"branch/{branch.name}.html"] = Page(
            "branch.html",
            "../",
            f"{site.title}: branch {branch.name}",
            BranchData(summary, branch.arches, grid_rows(branch, cells)),
        )
        pages[f"feeds/{branch.name}.atom"] = Page(
            "feed.atom", "", "", feed_data(site, branch, links)
        )
    return SitePages(pages, packages, status_documents(site, summaries, badge))


def index_data(
    site: SiteInput,
    summaries: tuple[BranchSummary, ...],
    links: Links,
    logs: LogLinks,
    badge: str,
    running: tuple[JobRow, ...],
    images: ImagesData,
) -> IndexData:
    quiet = {b.name for b in site.branches if b.ignore_errors}
    return IndexData(
        summaries,
        *unpublished_rows(site, logs),
        running,
        event_days(tuple(event_row(e, links, logs) for e in site.events[:INDEX_EVENTS])),
        site.max_parallel,
        site.job_service_error,
        site.problems,
        badge,
        sum(s.alarms for s in summaries if s.name not in quiet),
        tuple(hold_row(h, links) for h in site.holds),
        tuple(pause_row(p, links) for p in site.pauses),
        daemon_seen(site),
        images,
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
        target_words(record.target),
        record.target,
        links.target(branch, pkgname) if branch else "",
        record.who,
        record.why,
        record.outcome,
        record.effect,
    )


# --- the queue page --------------------------------------------------------------


def queue_data(site: SiteInput, running: tuple[JobRow, ...]) -> QueueData:
    plan = site.plan
    return QueueData(
        tuple(
            QueuedPackage(
                s.pkgname,
                s.version,
                str(s.repo),
                package_href(s.repo.branch, s.pkgname),
                "" if s.reason in ("", FREE_SLOT) else s.reason,
            )
            for s in plan.queue
        ),
        wait_groups(plan),
        publish_lines(plan),
        running,
        len(running),
        site.max_parallel,
        describe_actions(plan),
    )


def wait_groups(plan: Plan) -> tuple[WaitGroup, ...]:
    """The packages that cannot start yet, by branch and by what they wait for: each
    phrase of their `needs` (a package needing two things is in two groups), else
    their reason (a queued package outside the queue: a pause, the job service).
    Largest groups first: what holds back most packages leads."""
    queued = {(s.repo, s.pkgname) for s in plan.queue}
    groups: dict[tuple[str, str], dict[str, list[RepoKey]]] = {}
    for status in plan.packages:
        if status.state is PkgState.WAITING:
            whats = [need_words(n) for n in status.needs] or [status.reason or "waiting"]
        elif status.state is PkgState.QUEUED and (status.repo, status.pkgname) not in queued:
            whats = [status.reason or FREE_SLOT]
        else:
            continue
        for what in whats:
            members = groups.setdefault((status.repo.branch, what), {})
            members.setdefault(status.pkgname, []).append(status.repo)
    result = [
        WaitGroup(
            branch,
            what,
            tuple(
                Waiter(
                    name,
                    package_href(branch, name),
                    ", ".join(str(r) for r in sorted(repos)),
                )
                for name, repos in sorted(members.items())
            ),
        )
        for (branch, what), members in groups.items()
    ]
    result.sort(key=lambda g: (g.branch, -len(g.packages), g.what))
    return tuple(result)


def publish_lines(plan: Plan) -> tuple[PublishLine, ...]:
    """Each repository that is not published yet and what it waits for: a
    repository building says how many of its packages are still to come, any other
    its reason as the plan gives it (a foreign arch names the native packages it
    waits for)."""
    remaining: Counter[RepoKey] = Counter(
        s.repo for s in plan.packages if s.state not in NOT_BUILT_AGAIN
    )
    return tuple(
        PublishLine(str(r.repo), str(r.phase), publish_text(r, remaining[r.repo]))
        for r in plan.repos
        if r.phase not in (RepoPhase.PUBLISHED, RepoPhase.EMPTY)
    )


# --- failures ----------------------------------------------------------------------


def failure_row(status: PkgStatus, logs: LogLinks, when: str = "") -> FailureRow:
    return FailureRow(
        repo=str(status.repo),
        pkgname=status.pkgname,
        version=status.version,
        state=str(status.state),
        letter=status.state.letter,
        reason=status.reason,
        text=joined(str(status.state), status.reason),
        # The tries and the next try, unless the reason says them already.
        tries=(
            f"{status.tries} of {status.max_tries}"
            if status.max_tries and "try " not in status.reason
            else ""
        ),
        when=when,
        href=package_href(status.repo.branch, status.pkgname),
        log=logs.of(status.job_id),
        next_try=(
            iso(status.next_try_at)
            if status.state is PkgState.RETRYING and "next try" not in status.reason
            else ""
        ),
        alarm=status.state in ALARM_STATES,
        excerpt=bounded_excerpt(status.excerpt),
    )


def failure_data(site: SiteInput, logs: LogLinks) -> tuple[FailureCard, ...]:
    """Failed and broken packages (they need a person), then retrying ones; each
    group newest first; a package in trouble for the same reason in several
    repositories of a branch is one card."""
    rows = [failure_row(status, logs, when) for status, when in failures(site)]
    cards: dict[tuple[object, ...], list[FailureRow]] = {}
    for row in sorted(rows, key=lambda row: not row.alarm):
        key = (row.href, row.version, row.state, row.reason, row.excerpt, row.tries, row.next_try)
        cards.setdefault(key, []).append(row)
    return tuple(
        FailureCard(
            ", ".join(r.repo for r in members),
            members[0],
            tuple(r.log for r in members if r.log is not None),
        )
        for members in cards.values()
    )


def unpublished_rows(site: SiteInput, logs: LogLinks) -> tuple[tuple[FailureRow, ...], int]:
    """Packages not published yet, failed and broken first, then retrying ones, and
    how many did not fit."""
    rows = [s for s in site.plan.packages if s.state is not PkgState.PUBLISHED]
    rows.sort(
        key=lambda s: (s.state not in ALARM_STATES, not s.state.is_problem, s.repo, s.pkgname)
    )
    shown = tuple(failure_row(s, logs) for s in rows[:INDEX_UNPUBLISHED])
    return shown, max(len(rows) - INDEX_UNPUBLISHED, 0)
