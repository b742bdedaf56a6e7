"""The status site's view model: one pass's snapshot -> a value per page.

Pure. Everything a template shows is computed here (strings formatted, lists
sorted, URLs made relative), so templates only loop and print, and two passes
with the same snapshot give equal page models: the writer compares them to skip
unchanged pages without rendering. The package x arch grid is built here as
escaped HTML, one coloured, lettered cell per package state, once per pass: the
branch page (the biggest page) and every package page that shows a package or
lists it as a dependency share its cells.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.model.jobs import JobKind, JobObservation
from reconciler.model.names import RepoKey
from reconciler.model.observations import ObservedState
from reconciler.model.packages import PkgSpec
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
from reconciler.site.words import describe_actions

STATES = tuple(PkgState)
PROBLEM_STATES = frozenset(s for s in PkgState if s.is_problem)
PROBLEM_NAMES = frozenset(str(s) for s in PROBLEM_STATES)


def esc(text: str) -> str:
    """Escape text for HTML exactly as the templates' autoescape (markupsafe) does,
    for the fragments built in Python; a plain str is faster than Markup."""
    return (
        text.replace("&", "&amp;")
        .replace(">", "&gt;")
        .replace("<", "&lt;")
        .replace("'", "&#39;")
        .replace('"', "&#34;")
    )


class Escaped(dict[str, str]):
    """text -> esc(text), filled on first use: one per pass, for the names, arches,
    versions and reasons that thousands of fragments repeat."""

    def __missing__(self, text: str) -> str:
        value = self[text] = esc(text)
        return value


@dataclass(frozen=True, slots=True)
class BranchInfo:
    name: str
    arches: tuple[str, ...]
    ignore_errors: bool
    commit: str  # newest commit seen in pmaports ("" for a plain directory)
    commit_url: str = ""  # a commit's web page, "{commit}" standing for its hash ("": none)


@dataclass(frozen=True, slots=True)
class SiteInput:
    """Everything the site shows, from the pass that produced it."""

    title: str
    url: str
    branches: tuple[BranchInfo, ...]
    plan: Plan
    specs: Mapping[tuple[RepoKey, str], PkgSpec]
    versions: Mapping[tuple[RepoKey, str], tuple[str, str]]  # (in WIP, in final)
    jobs: tuple[JobObservation, ...]
    events: tuple[Event, ...]
    max_parallel: int
    job_service_error: str = ""
    monitoring_max: int = 10
    monitoring_footer: str = ""
    problems: tuple[str, ...] = ()  # what went wrong in the last pass (failed actions, disks)
    operations: tuple[OperationRecord, ...] = ()  # every manual operation, newest first
    holds: tuple[Hold, ...] = ()  # in force now
    pauses: tuple[Pause, ...] = ()  # in force now
    # The daemon's last full pass (at start and every resync): a page whose value is
    # older than `stale_after_seconds` comes from a daemon that may be down.
    last_pass_at: float | None = None
    stale_after_seconds: float = 600.0


@dataclass(frozen=True, slots=True)
class RepoRow:
    repo: str
    arch: str
    splitrepo: str
    phase: str
    reason: str
    counts: tuple[int, ...]
    published_commit: str
    published_at: str


@dataclass(frozen=True, slots=True)
class EventRow:
    time: str
    repo: str
    pkgname: str
    version: str
    kind: str
    message: str
    href: str  # package page, relative to the site root
    log: str


@dataclass(frozen=True, slots=True)
class JobRow:
    job_id: str
    kind: str
    repo: str
    pkgname: str
    version: str
    attempt: int
    status: str
    started: str
    started_epoch: int
    duration: str
    log: str
    url: str


@dataclass(frozen=True, slots=True)
class BranchSummary:
    name: str
    href: str
    ignore_errors: bool
    commit: str
    published_commit: str
    in_sync: bool
    repos: tuple[RepoRow, ...]
    counts: tuple[int, ...]


def versions_from(observed: ObservedState) -> dict[tuple[RepoKey, str], tuple[str, str]]:
    """(version in WIP, version in final) of each origin per repository."""
    result: dict[tuple[RepoKey, str], tuple[str, str]] = {}
    for key, repo in observed.repos.items():
        for index, apks in ((0, repo.wip), (1, repo.final)):
            for info in apks.values():
                if (info.origin or info.pkgname) != info.pkgname:
                    continue  # subpackages follow their origin
                pair = list(result.get((key, info.pkgname), ("", "")))
                pair[index] = info.version
                result[(key, info.pkgname)] = (pair[0], pair[1])
    return result


def package_href(branch: str, pkgname: str) -> str:
    return f"package/{branch}/{pkgname}.html"


def log_href(job: JobObservation | None, job_id: str | None = None) -> str:
    ident = job.key.job_id if job is not None else job_id
    return f"logs/{ident}.log" if ident else ""


def iso(epoch: float | None) -> str:
    if not epoch:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def counts_of(statuses: list[PkgStatus]) -> tuple[int, ...]:
    counter = Counter(s.state for s in statuses)
    return tuple(counter[s] for s in STATES)


def event_row(event: Event) -> EventRow:
    branch = event.repo.split("/")[0].split(":")[0]
    href = package_href(branch, event.pkgname) if event.pkgname else f"branch/{branch}.html"
    return EventRow(
        iso(event.time),
        event.repo,
        event.pkgname,
        event.version,
        event.kind,
        event.message,
        href,
        log_href(None, event.job_id),
    )


def job_row(job: JobObservation) -> JobRow:
    intent = job.key.intent
    ended = job.ended_at if job.ended_at else None
    return JobRow(
        job_id=job.key.job_id,
        kind=str(intent.kind),
        repo=str(intent.repo),
        pkgname=intent.pkgname,
        version=intent.version if intent.kind is JobKind.BUILD else intent.version[:12],
        attempt=job.key.attempt,
        status=str(job.status),
        started=iso(job.submitted_at),
        started_epoch=int(job.submitted_at),
        duration=duration(ended - job.submitted_at) if ended else "",
        log=log_href(job) if not job.status.is_live else "",
        url=job.url or "",
    )


def branch_summaries(site: SiteInput) -> tuple[BranchSummary, ...]:
    by_repo: dict[RepoKey, list[PkgStatus]] = {}
    for status in site.plan.packages:
        by_repo.setdefault(status.repo, []).append(status)
    summaries = []
    for branch in site.branches:
        rows = []
        statuses: list[PkgStatus] = []
        published = ""
        for repo in site.plan.repos:
            if repo.repo.branch != branch.name:
                continue
            members = by_repo.get(repo.repo, [])
            statuses += members
            if repo.repo.arch == branch.arches[0] and not repo.repo.splitrepo:
                published = repo.published_commit
            rows.append(repo_row(repo, members))
        summaries.append(
            BranchSummary(
                name=branch.name,
                href=f"branch/{branch.name}.html",
                ignore_errors=branch.ignore_errors,
                commit=branch.commit,
                published_commit=published,
                in_sync=all(r.phase in (RepoPhase.PUBLISHED, RepoPhase.EMPTY) for r in rows)
                and published == branch.commit,
                repos=tuple(rows),
                counts=counts_of(statuses),
            )
        )
    return tuple(summaries)


def repo_row(repo: RepoStatus, members: list[PkgStatus]) -> RepoRow:
    return RepoRow(
        repo=str(repo.repo),
        arch=repo.repo.arch,
        splitrepo=repo.repo.splitrepo,
        phase=str(repo.phase),
        reason=repo.reason,
        counts=counts_of(members),
        published_commit=repo.published_commit,
        published_at=repo.published_at,
    )


def running_jobs(site: SiteInput) -> tuple[JobRow, ...]:
    live = [j for j in site.jobs if j.status.is_live]
    return tuple(job_row(j) for j in sorted(live, key=lambda j: (j.submitted_at, j.key)))


def plan_words(site: SiteInput) -> tuple[str, ...]:
    return describe_actions(site.plan)


def failures(site: SiteInput) -> tuple[tuple[PkgStatus, str], ...]:
    """Problem packages with the time of their last failure, newest first."""
    ended = {j.key.job_id: j.ended_at or j.submitted_at for j in site.jobs}
    rows = [
        (s, iso(ended.get(s.job_id or "", 0.0)))
        for s in site.plan.packages
        if s.state in PROBLEM_STATES
    ]
    rows.sort(key=lambda row: (row[1], str(row[0].repo), row[0].pkgname), reverse=True)
    return tuple(rows)


# --- the grid -------------------------------------------------------------------
# Fragments stay ASCII (entities for · and —): ASCII strings join and encode as plain
# byte copies, which thousands of pages notice.
NO_CELL = '<td class="cell none" title="not built for this arch">&middot;</td>'


@dataclass(frozen=True, slots=True)
class GridRow:
    """One package of one split repository on one branch."""

    statuses: tuple[PkgStatus | None, ...]  # one per arch of the branch, None: not built there
    cells: str  # the row's cells as escaped HTML


# (branch, splitrepo, pkgname) -> its row
CellTable = dict[tuple[str, str, str], GridRow]


# state -> the literal pieces of its grid cell around the arch, version and reason
CELL_PIECES = {
    state: (
        f'<td class="cell s-{state.value}" title="',
        f": {state.value} ",
        f'"><span class="letter">{state.letter}</span></td>',
    )
    for state in PkgState
}


def cell_html(status: PkgStatus, e: Escaped) -> str:
    """A grid cell as escaped HTML: colour and letter, the reason as tooltip
    ("arch: state version: reason"; escaped piecewise, which is the same)."""
    start, middle, end = CELL_PIECES[status.state]
    if status.reason:
        return f"{start}{e[status.repo.arch]}{middle}{e[status.version]}: {e[status.reason]}{end}"
    return f"{start}{e[status.repo.arch]}{middle}{e[status.version]}{end}"


def empty_cells(arches: int) -> str:
    return NO_CELL * arches


def cell_table(site: SiteInput, e: Escaped) -> CellTable:
    """Every package row of every configured branch, built once per pass."""
    positions = {b.name: {a: i for i, a in enumerate(b.arches)} for b in site.branches}
    rows: dict[tuple[str, str, str], list[PkgStatus | None]] = {}
    for status in site.plan.packages:
        repo = status.repo
        arches = positions.get(repo.branch)
        if arches is None:
            continue
        index = arches.get(repo.arch)
        if index is None:
            continue
        key = (repo.branch, repo.splitrepo, status.pkgname)
        row = rows.get(key)
        if row is None:
            row = rows[key] = [None] * len(arches)
        row[index] = status
    return {
        key: GridRow(tuple(row), "".join([NO_CELL if s is None else cell_html(s, e) for s in row]))
        for key, row in rows.items()
    }


def grid_html(branch: BranchInfo, table: CellTable, root: str, e: Escaped) -> tuple[str, int]:
    """The branch page's table body (escaped HTML) and its number of rows."""
    keys = sorted((k for k in table if k[0] == branch.name), key=lambda k: (k[2], k[1]))
    parts = []
    for key in keys:
        _, splitrepo, pkgname = key
        row = table[key]
        present = [s for s in row.statuses if s is not None]
        states = sorted({str(s.state) for s in present})
        problem = " problem" if PROBLEM_NAMES.intersection(states) else ""
        name = e[pkgname]
        tag = f' <span class="tag">{e[splitrepo]}</span>' if splitrepo else ""
        parts.append(
            f'<tr class="pkg{problem}" data-name="{name}" data-states="{e[" ".join(states)]}"'
            f' data-arches="{e[" ".join([s.repo.arch for s in present])]}">\n'
            f'<th><a href="{root}{e[package_href(branch.name, pkgname)]}">{name}</a>{tag}</th>\n'
            f"{row.cells}\n</tr>\n"
        )
    return "".join(parts), len(keys)
