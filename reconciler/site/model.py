"""The status site's view model: one pass's snapshot -> a value per page.

Pure. Everything a template shows is computed here (strings formatted, lists
sorted, URLs made relative), so templates only loop and print, and two passes
with the same snapshot give equal page models: the writer compares them to skip
unchanged pages without rendering. No HTML is made here: the templates own all
of it, escaping included. The package x arch grid is made of rows of statuses
(`grid_row`), kept from pass to pass by site.state: a grid page and every
package page that lists a package as a dependency share them. Summaries are
made from each repository's packages per state (`RepoCounts`), which site.state
keeps counted.

Which packages raise the alarm (badge, front page, monitoring.txt) is decided
here, by state only: `failed` (no tries left, or an operator failed its job) and
`broken` (its APKBUILD is unusable: it never fixes itself). `retrying` is shown
with its next try and raises nothing. A job's log is linked where it can be read:
the site's `logs/<job id>.log` for a job with a local log, while it runs too (the
web server serves the live file), else the job service's own page.
"""

from __future__ import annotations

import time
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from reconciler.model.jobs import JobKey, JobKind, JobObservation
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
from reconciler.site.words import job_id_label, job_label, joined

STATES = tuple(PkgState)
PROBLEM_STATES = frozenset(s for s in PkgState if s.is_problem)
PROBLEM_NAMES = frozenset(str(s) for s in PROBLEM_STATES)
# What raises the alarm: these never get better without a person.
ALARM_STATES = frozenset({PkgState.FAILED, PkgState.BROKEN})
SHORT_COMMIT = 7  # characters of a commit hash shown


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
    # The device images' slot interval (0: not known; the images page then names
    # each image's slot instead of when the next one starts).
    images_interval_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Piece:
    """A piece of a line that mixes words, commits and times: `kind` is "text",
    "commit" (text the short hash, `full` the hash, `href` its page or "") or "time"
    (text an ISO time)."""

    kind: str
    text: str
    href: str = ""
    full: str = ""


def words(text: str) -> Piece:
    return Piece("text", text)


def commit_piece(commit: str, url: str) -> Piece:
    """A commit: its short hash, linked to its page when the branch has a commit URL."""
    href = url.replace("{commit}", commit) if url and commit else ""
    return Piece("commit", commit[:SHORT_COMMIT], href, commit)


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
    commit: Piece  # published_commit as shown
    detail: str  # phase and reason as shown ("blocked: 1 broken package (x)")


@dataclass(frozen=True, slots=True)
class LogLink:
    """Where a job's log is read, and the job in words: `path` is the site's copy
    ("logs/<job id>.log", relative to the site root), else `url` the job service's
    page of the job; `job_id` only for links and attributes, never shown."""

    path: str
    url: str
    label: str
    job_id: str


@dataclass(frozen=True, slots=True)
class EventRow:
    time: str
    repo: str
    pkgname: str
    version: str
    kind: str
    message: str
    href: str  # package page, relative to the site root
    log: LogLink | None


@dataclass(frozen=True, slots=True)
class EventDay:
    """The events of one day (UTC), newest first."""

    day: str  # "2026-12-06"
    events: tuple[EventRow, ...]


@dataclass(frozen=True, slots=True)
class JobRow:
    job_id: str
    label: str  # the job in words: "build foo 1.2-r0 for main/x86_64, try 2"
    kind: str
    repo: str
    pkgname: str
    version: str
    attempt: int
    status: str
    started: str
    started_epoch: int
    duration: str
    log: LogLink | None


@dataclass(frozen=True, slots=True)
class BranchSummary:
    name: str
    href: str
    ignore_errors: bool
    commit: str
    published_commit: str  # the one commit all published repositories are at ("": not one)
    in_sync: bool  # every repository publishes what the newest commit asks for
    repos: tuple[RepoRow, ...]
    counts: tuple[int, ...]
    newest: Piece  # `commit` as shown
    published: tuple[Piece, ...]  # the published line: which repository is at which commit
    alarms: int  # packages failed or broken
    retrying: int
    columns: tuple[int, ...]  # the indexes of STATES with a package on the branch
    line: str  # the counts in words: "40 published, 1 failed"


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


@dataclass(frozen=True, slots=True)
class Links:
    """The pages a pass makes, so that every link points at one that exists."""

    packages: Container[tuple[str, str]]  # (branch, pkgname) of every package page
    branches: frozenset[str]  # every branch page

    def target(self, branch: str, pkgname: str = "") -> str:
        """The package's page, else its branch's page, else "" (no page)."""
        if pkgname and (branch, pkgname) in self.packages:
            return package_href(branch, pkgname)
        return f"branch/{branch}.html" if branch in self.branches else ""


def branch_of(repo: str) -> str:
    """The branch of a repository as events and records write it ("main:sr/arch")."""
    return repo.split("/")[0].split(":")[0]


def log_href(job: JobObservation | None, job_id: str | None = None) -> str:
    """The site's copy of a job's log, relative to the site root ("" for no job)."""
    ident = job.key.job_id if job is not None else job_id
    return f"logs/{ident}.log" if ident else ""


def job_log(job: JobObservation) -> LogLink | None:
    """Where the job's log is read: a local log at the site's copy (the live file
    while the job runs), a remote job at the job service's page; None when the
    job has neither."""
    ident = job.key.job_id
    if job.log_path:
        return LogLink(log_href(job), "", job_label(job.key), ident)
    if job.url:
        return LogLink("", job.url, job_label(job.key), ident)
    return None


class LogLinks:
    """The log of each job id a page names, looked up once per pass."""

    def __init__(self, jobs: tuple[JobObservation, ...]) -> None:
        self._jobs = {j.key.job_id: j for j in jobs}
        self._links: dict[str, LogLink | None] = {}

    def of(self, job_id: str | None) -> LogLink | None:
        """The log of a job the job service lists (see job_log); one it no longer
        lists at the site's copy, where its log was kept when it ended."""
        if not job_id:
            return None
        try:
            return self._links[job_id]
        except KeyError:
            pass
        job = self._jobs.get(job_id)
        found = (
            job_log(job)
            if job is not None
            else LogLink(log_href(None, job_id), "", job_id_label(job_id), job_id)
        )
        self._links[job_id] = found
        return found


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


STATE_INDEX = {state: i for i, state in enumerate(STATES)}
FAILED_INDEX = STATE_INDEX[PkgState.FAILED]
BROKEN_INDEX = STATE_INDEX[PkgState.BROKEN]
RETRYING_INDEX = STATE_INDEX[PkgState.RETRYING]
NO_COUNTS = (0,) * len(STATES)
# Repository -> its packages per state (as STATES): what summaries, the badge and
# the queue page count, kept from pass to pass by site.state.
RepoCounts = Mapping[RepoKey, Sequence[int]]


def repo_counts(statuses: Iterable[PkgStatus]) -> dict[RepoKey, list[int]]:
    """The packages of each repository per state (as STATES)."""
    counts: dict[RepoKey, list[int]] = {}
    repo: RepoKey | None = None
    found: list[int] = []
    index = STATE_INDEX
    for status in statuses:
        if status.repo is not repo:  # statuses come grouped by repository
            repo = status.repo
            found = counts.get(repo) or counts.setdefault(repo, [0] * len(STATES))
        found[index[status.state]] += 1
    return counts


def counts_line(counts: tuple[int, ...]) -> str:
    """The states with packages, in words: "40 published, 1 failed"."""
    shown = [f"{n} {state}" for state, n in zip(STATES, counts, strict=True) if n]
    return ", ".join(shown) or "no packages"


def operation_target(record: OperationRecord) -> tuple[str, str]:
    """(branch, pkgname) an operation was asked of, from its target ("main",
    "main/x86_64 hello", "main hello" or a job id); "" where it names none."""
    head, _, pkgname = record.target.partition(" ")
    if "@" in head:
        try:
            intent = JobKey.from_job_id(head).intent
        except ValueError:
            return "", ""
        return intent.repo.branch, intent.pkgname
    return branch_of(head), pkgname.strip()


def target_words(target: str) -> str:
    """An operation's target as a person reads it: a job id as the job in words."""
    head, space, rest = target.partition(" ")
    if "@" not in head:
        return target
    return job_id_label(head) + space + rest


def every(seconds: float) -> str:
    """An interval in words: "5 min", "1.5 min", "30 s"."""
    if seconds >= 60:
        minutes = seconds / 60
        return f"{minutes:.0f} min" if minutes == int(minutes) else f"{minutes:.1f} min"
    return f"{seconds:g} s"


def event_row(event: Event, links: Links, logs: LogLinks | None = None) -> EventRow:
    href = links.target(branch_of(event.repo), event.pkgname)
    return EventRow(
        iso(event.time),
        event.repo,
        event.pkgname,
        event.version,
        event.kind,
        event.message,
        href,
        (logs or LogLinks(())).of(event.job_id),
    )


def event_days(rows: tuple[EventRow, ...]) -> tuple[EventDay, ...]:
    """Events (newest first) under the day they happened, newest day first."""
    days: dict[str, list[EventRow]] = {}
    for row in rows:
        days.setdefault(row.time[:10], []).append(row)
    return tuple(
        EventDay(day, tuple(sorted(found, key=lambda r: r.time, reverse=True)))
        for day, found in sorted(days.items(), reverse=True)
    )


def job_row(job: JobObservation) -> JobRow:
    intent = job.key.intent
    ended = job.ended_at if job.ended_at else None
    return JobRow(
        job_id=job.key.job_id,
        label=job_label(job.key),
        kind=str(intent.kind),
        repo=str(intent.repo),
        pkgname=intent.pkgname,
        version=intent.version if intent.kind is JobKind.BUILD else intent.version[:12],
        attempt=job.key.attempt,
        status=str(job.status),
        started=iso(job.submitted_at),
        started_epoch=int(job.submitted_at),
        duration=duration(ended - job.submitted_at) if ended else "",
        log=job_log(job),
    )


def branch_summaries(site: SiteInput) -> tuple[BranchSummary, ...]:
    return summaries_of(site, repo_counts(site.plan.packages))


def summaries_of(site: SiteInput, counts: RepoCounts) -> tuple[BranchSummary, ...]:
    """Each branch's summary: its repositories (those of the plan) and their counts."""
    summaries = []
    for branch in site.branches:
        repos = [r for r in site.plan.repos if r.repo.branch == branch.name]
        rows = tuple(
            repo_row(r, tuple(counts.get(r.repo, NO_COUNTS)), branch.commit_url) for r in repos
        )
        commits = {r.published_commit for r in repos if is_live(r)}
        total = [0] * len(STATES)
        for row in rows:
            for i, n in enumerate(row.counts):
                total[i] += n
        branch_counts = tuple(total)
        summaries.append(
            BranchSummary(
                name=branch.name,
                href=f"branch/{branch.name}.html",
                ignore_errors=branch.ignore_errors,
                commit=branch.commit,
                published_commit=commits.pop() if len(commits) == 1 else "",
                in_sync=all(r.phase in (RepoPhase.PUBLISHED, RepoPhase.EMPTY) for r in repos),
                repos=rows,
                counts=branch_counts,
                newest=commit_piece(branch.commit, branch.commit_url),
                published=published_line(branch, repos),
                alarms=branch_counts[FAILED_INDEX] + branch_counts[BROKEN_INDEX],
                retrying=branch_counts[RETRYING_INDEX],
                columns=tuple(i for i, n in enumerate(branch_counts) if n),
                line=counts_line(branch_counts),
            )
        )
    return tuple(summaries)


def is_live(repo: RepoStatus) -> bool:
    """Whether the repository has a published index (its DESCRIPTION names when)."""
    return bool(repo.published_commit or repo.published_at)


def published_line(branch: BranchInfo, repos: list[RepoStatus]) -> tuple[Piece, ...]:
    """The published line: "published: <commit> at <time>" when every repository was
    published from one commit, else which repositories lag: "main/armv7 at 1a2b3c4, the rest at
    5d6e7f8"; then those never published. The branch's newest commit says so
    (or is named when nothing was published from it). A plain directory has no
    commits: its repositories are told apart by time."""
    groups: dict[str, list[RepoStatus]] = {}
    for repo in repos:
        if is_live(repo):
            groups.setdefault(repo.published_commit, []).append(repo)
    never = sorted(str(r.repo) for r in repos if not is_live(r) and r.phase is not RepoPhase.EMPTY)
    if not groups:
        return (words("published: nothing yet"),)
    newest = branch.commit

    def at(sha: str) -> list[Piece]:
        if not sha:  # no commit: when
            return [Piece("time", max(r.published_at for r in groups[sha]))]
        note = [words(" (the newest commit)")] if sha == newest else []
        return [commit_piece(sha, branch.commit_url), *note]

    pieces = [words("published: ")]
    if len(groups) == 1:
        sha, members = next(iter(groups.items()))
        if never:
            pieces.append(words(", ".join(sorted(str(r.repo) for r in members)) + " at "))
            pieces += at(sha)
        else:
            if sha:
                pieces += [commit_piece(sha, branch.commit_url), words(" at ")]
            pieces.append(Piece("time", max(r.published_at for r in members)))
            if sha and sha == newest:
                pieces.append(words(", the newest commit"))
    else:
        # "the rest": the commit most repositories are at (the newest one on a tie)
        rest = max(groups, key=lambda c: (len(groups[c]), c == newest, c))
        for sha in sorted(groups, key=lambda c: sorted(str(r.repo) for r in groups[c])):
            if sha != rest:
                names = ", ".join(sorted(str(r.repo) for r in groups[sha]))
                pieces += [words(f"{names} at "), *at(sha), words(", ")]
        pieces += [words("the rest at "), *at(rest)]
    if never:
        pieces.append(words(f"; not yet published: {', '.join(never)}"))
    if newest and newest not in groups:
        pieces += [words("; the newest commit is "), commit_piece(newest, branch.commit_url)]
    return tuple(pieces)


def repo_row(repo: RepoStatus, counts: tuple[int, ...], commit_url: str = "") -> RepoRow:
    return RepoRow(
        repo=str(repo.repo),
        arch=repo.repo.arch,
        splitrepo=repo.repo.splitrepo,
        phase=str(repo.phase),
        reason=repo.reason,
        counts=counts,
        published_commit=repo.published_commit,
        published_at=repo.published_at,
        commit=commit_piece(repo.published_commit, commit_url),
        detail=joined(str(repo.phase), repo.reason),
    )


def running_jobs(site: SiteInput) -> tuple[JobRow, ...]:
    live = [j for j in site.jobs if j.status.is_live]
    return tuple(job_row(j) for j in sorted(live, key=lambda j: (j.submitted_at, j.key)))


def failures(
    problems: Iterable[PkgStatus], jobs: tuple[JobObservation, ...]
) -> tuple[tuple[PkgStatus, str], ...]:
    """Problem packages with the time of their last failure, newest first."""
    ended = {j.key.job_id: j.ended_at or j.submitted_at for j in jobs}
    rows = [(s, iso(ended.get(s.job_id or "", 0.0))) for s in problems]
    rows.sort(key=lambda row: (row[1], str(row[0].repo), row[0].pkgname), reverse=True)
    return tuple(rows)


EXCERPT_LINES = 15  # a log excerpt shows at most its last lines...
EXCERPT_CHARS = 2000  # ...and characters


def bounded_excerpt(text: str) -> str:
    """The end of a log excerpt, at most EXCERPT_LINES lines and EXCERPT_CHARS
    characters (a page shows it whole; the log has the rest)."""
    text = text.strip("\n")
    lines = text.split("\n")
    if len(lines) > EXCERPT_LINES:
        text = "\n".join(lines[-EXCERPT_LINES:])
    if len(text) > EXCERPT_CHARS:
        text = "…" + text[-EXCERPT_CHARS:]
    return text


# --- the grid -------------------------------------------------------------------


# The grid's values are NamedTuples, not frozen dataclasses: a full render makes
# and compares thousands (in C for a tuple), and templates unpack them in loops
# without an attribute lookup per field.


class CellReason(NamedTuple):
    """Why a package is in trouble in some of its arches, shown beside its cells."""

    arches: str  # "x86_64, aarch64"
    state: str
    text: str  # the state and reason in words: "failed: exit code 1 (try 3 of 3)"


class GridRow(NamedTuple):
    """One package of one split repository on one branch: a cell per arch (its
    status, None where it is not built), the page it links to and, for the arches
    in trouble, why."""

    name: str
    splitrepo: str
    href: str  # its package page, relative to the site root ("": none)
    statuses: tuple[PkgStatus | None, ...]  # one per arch of the branch
    reasons: tuple[CellReason, ...]  # of its failed, broken and retrying arches


# (branch, splitrepo, pkgname) -> its row
CellTable = dict[tuple[str, str, str], GridRow]


def cell_kind(status: PkgStatus) -> object:
    """What a grid cell shows of its status (`cell_title`), as a key: cells of the
    same kind are the same but for their link. A published cell has no title:
    its letter says it all (the plan gives a published package no reason), and
    most cells are published."""
    state = status.state
    if state is PkgState.PUBLISHED:
        return state
    return (state, status.reason, status.next_try_at)


def cell_title(status: PkgStatus) -> str:
    """A cell's state and reason in words ("failed: exit code 1", "held by ana"),
    with a retrying package's next try; none for a published cell."""
    if status.state is PkgState.PUBLISHED:
        return ""
    text = joined(str(status.state), status.reason)
    if status.next_try_at and status.state is PkgState.RETRYING:
        text = text if "next try" in text else f"{text}; next try at {iso(status.next_try_at)}"
    return text


def cell_reasons(row: Sequence[PkgStatus | None]) -> tuple[CellReason, ...]:
    """The reasons of a row's arches in trouble, one line per distinct reason."""
    found: dict[tuple[str, str], list[str]] = {}
    for status in row:
        if status is not None and status.state in PROBLEM_STATES:
            key = (str(status.state), cell_title(status))
            found.setdefault(key, []).append(status.repo.arch)
    return tuple(
        CellReason(", ".join(arches), state, text) for (state, text), arches in found.items()
    )


def grid_row(key: tuple[str, str, str], cells: Sequence[PkgStatus | None]) -> GridRow:
    """The row of (branch, splitrepo, pkgname), its statuses in the branch's arch order."""
    troubled = False
    for s in cells:
        if s is not None and s.state in PROBLEM_STATES:
            troubled = True
            break
    return GridRow(
        key[2],
        key[1],
        package_href(key[0], key[2]),
        tuple(cells),
        cell_reasons(cells) if troubled else (),
    )
