"""Which files the site has and the view model of each: SiteInput -> SitePages.

Pure. Each Page names its template and carries a frozen value; equal values mean
an unchanged file, which the writer then neither renders nor writes. site.state
builds them, each from what it keeps counted, and only those a pass may have
changed. Package pages, tens of thousands of them, come as values of their own
(site.package) that the writer renders with one macro each. A branch's page is
its grid, or, when the grid is cut into pages (site.grid), the list of its grid
pages with their counts per state (`PartLink`); a grid page (`GridPageData`)
shows only its own rows. Feeds, badge, monitoring.txt and the status documents
are built from one set of summaries, so that every file shows the same
snapshot. The front page has a summary line per branch, the
state columns that are not all zero, the holds and pauses in force, when the
daemon last made a full pass and the transitions by day; the queue page is the
plan: what starts next in the order the plan submits it, what waits grouped by
what it waits for, and what each repository waits for before it publishes; the
operations page lists every operator action on record; the images page
(site.images_status) each desired device image, which the front page sums up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from reconciler.model.jobs import JobObservation
from reconciler.model.names import RepoKey
from reconciler.model.progress import OperationRecord, PkgState, PkgStatus, RepoPhase, need_words
from reconciler.operator.intents import Hold, Pause
from reconciler.plan.planner import Plan
from reconciler.site.images_status import ImagesData
from reconciler.site.model import (
    ALARM_STATES,
    NO_COUNTS,
    STATE_INDEX,
    BranchSummary,
    EventDay,
    GridRow,
    JobRow,
    Links,
    LogLink,
    LogLinks,
    RepoCounts,
    SiteInput,
    bounded_excerpt,
    event_days,
    event_row,
    every,
    failures,
    iso,
    operation_target,
    package_href,
    target_words,
)
from reconciler.site.package import PackagePages
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


class PartLink(NamedTuple):
    """A page of a branch's grid as its branch page lists it: its names (from
    `lowest` to `highest`, for the name search) and its packages per state."""

    href: str  # relative to the site root
    label: str  # "pa–pe"
    lowest: str
    highest: str
    rows: int
    counts: tuple[int, ...]  # per STATES
    problems: int  # rows in trouble


@dataclass(frozen=True, slots=True)
class BranchData:
    """A branch page: its summary and either its whole grid (`rows`, a branch that
    fits on one page) or the list of its grid's pages (`parts`)."""

    summary: BranchSummary
    arches: tuple[str, ...]
    rows: tuple[GridRow, ...]
    parts: tuple[PartLink, ...] = ()
    document: str = ""  # its package documents' first (or only) path


@dataclass(frozen=True, slots=True)
class GridPageData:
    """One page of a branch's grid: its rows and nothing that other rows change,
    so that a package's change renders only the page of its row."""

    branch: str
    ignore_errors: bool
    arches: tuple[str, ...]
    label: str
    rows: tuple[GridRow, ...]
    counts: tuple[int, ...]  # its own packages per state
    columns: tuple[int, ...]  # the indexes of STATES with a package on it
    previous: tuple[str, str]  # (href relative to the site root, label), ("", "") for none
    following: tuple[str, str]
    document: str  # its package document, relative to the site root


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
    """What one pass may have changed (everything, the first time): the pages to
    compare with what was written, the documents, and the files that are gone."""

    pages: dict[str, Page]  # rendered from their templates
    packages: PackagePages  # rendered by PACKAGE_MACRO
    documents: dict[str, bytes]  # status.json, status/<branch>.json, package documents
    removed: frozenset[str] = frozenset()  # pages and documents no longer part of the site
    added: frozenset[str] = frozenset()  # pages and documents new to the site


PACKAGE_TEMPLATE = "package.html"
PACKAGE_ROOT = "../../"


def index_data(
    site: SiteInput,
    summaries: tuple[BranchSummary, ...],
    links: Links,
    logs: LogLinks,
    badge: str,
    running: tuple[JobRow, ...],
    images: ImagesData,
    unpublished: tuple[tuple[FailureRow, ...], int],
) -> IndexData:
    quiet = {b.name for b in site.branches if b.ignore_errors}
    return IndexData(
        summaries,
        *unpublished,
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


def queue_data(
    site: SiteInput,
    running: tuple[JobRow, ...],
    groups: tuple[WaitGroup, ...],
    publish: tuple[PublishLine, ...],
) -> QueueData:
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
        groups,
        publish,
        running,
        len(running),
        site.max_parallel,
        describe_actions(plan),
    )


WAITS = frozenset({PkgState.WAITING, PkgState.QUEUED})  # the states the queue page groups


def wait_groups(
    waiting: Iterable[PkgStatus], queue: tuple[PkgStatus, ...]
) -> tuple[WaitGroup, ...]:
    """The packages that cannot start yet (of `waiting`: those WAITING or QUEUED),
    by branch and by what they wait for: each phrase of their `needs` (a package
    needing two things is in two groups), else their reason (a queued package
    outside the plan's `queue`: a pause, the job service). Largest groups first:
    what holds back most packages leads."""
    queued = {(s.repo, s.pkgname) for s in queue}
    groups: dict[tuple[str, str], dict[str, list[RepoKey]]] = {}
    for status in waiting:
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


BUILT_AGAIN_INDEXES = tuple(i for i, s in enumerate(STATE_INDEX) if s not in NOT_BUILT_AGAIN)


def publish_lines(plan: Plan, counts: RepoCounts) -> tuple[PublishLine, ...]:
    """Each repository that is not published yet and what it waits for: a
    repository building says how many of its packages are still to come, any other
    its reason as the plan gives it (a foreign arch names the native packages it
    waits for)."""
    lines = []
    for r in plan.repos:
        if r.phase in (RepoPhase.PUBLISHED, RepoPhase.EMPTY):
            continue
        numbers = counts.get(r.repo, NO_COUNTS)
        remaining = sum(numbers[i] for i in BUILT_AGAIN_INDEXES)
        lines.append(PublishLine(str(r.repo), str(r.phase), publish_text(r, remaining)))
    return tuple(lines)


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


def failure_data(
    problems: Iterable[PkgStatus], jobs: tuple[JobObservation, ...], logs: LogLinks
) -> tuple[FailureCard, ...]:
    """Failed and broken packages (they need a person), then retrying ones; each
    group newest first; a package in trouble for the same reason in several
    repositories of a branch is one card."""
    rows = [failure_row(status, logs, when) for status, when in failures(problems, jobs)]
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


def unpublished_key(status: PkgStatus) -> tuple[bool, bool, str, str, str, str]:
    """Where a package that is not published stands on the front page: failed and
    broken first, then retrying ones, then the rest, each by repository and name."""
    repo, state = status.repo, status.state
    return (
        state not in ALARM_STATES,
        not state.is_problem,
        repo.branch,
        repo.splitrepo,
        repo.arch,
        status.pkgname,
    )


def unpublished_rows(
    first: Iterable[PkgStatus], total: int, logs: LogLinks
) -> tuple[tuple[FailureRow, ...], int]:
    """The front page's packages not published yet (`first` of `total`, in the order
    of unpublished_key), and how many did not fit."""
    shown = tuple(failure_row(s, logs) for s in first)
    return shown, max(total - len(shown), 0)
