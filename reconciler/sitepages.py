"""Which files the site has and the view model of each: SiteInput -> {path: Page}.

Pure. Each Page names its template and carries a frozen value; equal values mean
an unchanged file, which the writer then neither renders nor writes. Feeds,
badge, monitoring.txt and status.json are built here too, so that every file
shows the same snapshot.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from html import escape
from urllib.parse import urlsplit

from markupsafe import Markup

from .model import JobKind, RepoKey
from .sitemodel import (
    STATES,
    BranchInfo,
    BranchSummary,
    CellTable,
    EventRow,
    GridRow,
    JobRow,
    SiteInput,
    branch_summaries,
    cell_table,
    event_row,
    failures,
    grid_rows,
    iso,
    job_row,
    log_href,
    package_href,
    plan_words,
    row_html,
    running_jobs,
)
from .status import PkgState, PkgStatus

FEED_KINDS = frozenset({"failed", "fixed", "published", "broken"})
FEED_LENGTH = 50


@dataclass(frozen=True, slots=True)
class Page:
    template: str
    root: str  # relative path from the page to the site root ("", "../", ...)
    title: str
    data: object


INDEX_UNPUBLISHED = 100  # the front page lists at most this many unpublished packages


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


@dataclass(frozen=True, slots=True)
class BranchData:
    summary: BranchSummary
    arches: tuple[str, ...]
    rows: tuple[GridRow, ...]


@dataclass(frozen=True, slots=True)
class DepLink:
    name: str
    href: str
    cells_html: Markup  # one escaped grid cell per arch


@dataclass(frozen=True, slots=True)
class PackageSection:
    repo_label: str  # "main" or "extra-repos/systemd"
    description: str
    url: str
    path: str

    @property
    def url_is_web(self) -> bool:
        """Only http(s) URLs from an APKBUILD become links (never javascript: etc.)."""
        return self.url.lower().startswith(("https://", "http://"))

    # One escaped table row per arch: state, reason, desired/WIP/final versions, log.
    rows_html: Markup
    deps: tuple[DepLink, ...]  # with their states


@dataclass(frozen=True, slots=True)
class PackageData:
    branch: str
    pkgname: str
    arches: tuple[str, ...]
    sections: tuple[PackageSection, ...]
    history: tuple[JobRow, ...]
    # Without states: a package's state change must not rewrite the pages of
    # everything it depends on (their pages list it here).
    rdeps: tuple[tuple[str, str], ...]  # (name, href)


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


@dataclass(frozen=True, slots=True)
class FeedEntry:
    id: str
    title: str
    updated: str
    href: str
    summary: str


@dataclass(frozen=True, slots=True)
class FeedData:
    id: str
    title: str
    updated: str
    self_href: str
    site_href: str
    entries: tuple[FeedEntry, ...]


@dataclass(frozen=True, slots=True)
class TextData:
    lines: tuple[str, ...]


def build_pages(site: SiteInput) -> dict[str, Page]:
    summaries = branch_summaries(site)
    cells = cell_table(site)
    badge = badge_state(site)
    events = tuple(event_row(e) for e in site.events[:30])
    running = running_jobs(site)
    pages: dict[str, Page] = {
        "index.html": Page(
            "index.html",
            "",
            site.title,
            IndexData(
                summaries,
                *unpublished_rows(site),
                running,
                events,
                site.max_parallel,
                site.job_service_error,
                site.problems,
                badge,
            ),
        ),
        "queue.html": Page(
            "queue.html",
            "",
            f"{site.title}: queue",
            QueueData(plan_words(site), running, len(running), site.max_parallel),
        ),
        "failures.html": Page("failures.html", "", f"{site.title}: failures", failure_data(site)),
        "badge.svg": Page("badge.svg", "", "", TextData((badge,))),
        "monitoring.txt": Page("monitoring.txt", "", "", TextData(monitoring_lines(site))),
        "feed.atom": Page("feed.atom", "", "", feed_data(site, None)),
    }
    for branch, summary in zip(site.branches, summaries, strict=True):
        pages[f"branch/{branch.name}.html"] = Page(
            "branch.html",
            "../",
            f"{site.title}: {branch.name}",
            BranchData(summary, branch.arches, grid_rows(branch, cells)),
        )
        pages[f"feeds/{branch.name}.atom"] = Page("feed.atom", "", "", feed_data(site, branch))
    pages.update(package_pages(site, cells))
    return pages


def badge_state(site: SiteInput) -> str:
    quiet = {b.name for b in site.branches if b.ignore_errors}
    states = [(s.repo.branch, s.state) for s in site.plan.packages]
    if any(s.is_problem and b not in quiet for b, s in states):
        return "failed"
    if any(s is not PkgState.PUBLISHED for _, s in states):
        return "building"
    return "up-to-date"


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
    )


def failure_data(site: SiteInput) -> tuple[FailureRow, ...]:
    return tuple(failure_row(status, when) for status, when in failures(site))


def unpublished_rows(site: SiteInput) -> tuple[tuple[FailureRow, ...], int]:
    """Packages not published yet, problems first, and how many did not fit."""
    rows = [s for s in site.plan.packages if s.state is not PkgState.PUBLISHED]
    rows.sort(key=lambda s: (not s.state.is_problem, s.repo, s.pkgname))
    shown = tuple(failure_row(s) for s in rows[:INDEX_UNPUBLISHED])
    return shown, max(len(rows) - INDEX_UNPUBLISHED, 0)


def monitoring_lines(site: SiteInput) -> tuple[str, ...]:
    """monitoring.txt in bpo's format, which monitoring already parses."""
    failed = [s for s in site.plan.packages if s.state in (PkgState.FAILED, PkgState.RETRYING)]
    if not failed:
        return ("OK",)
    base = site.url if site.url.endswith("/") else site.url + "/"
    noun = "failure" if len(failed) == 1 else "failures"
    lines = [f"{len(failed)} {noun} at [bpo]({base}):"]
    limit = site.monitoring_max
    for status in failed[:limit]:
        link = base + log_href(None, status.job_id) if status.job_id else base + "failures.html"
        lines.append(
            f"* 📦 [{status.repo}/{status.pkgname}]({link}) (try {status.tries}/{status.max_tries})"
        )
    if len(failed) > limit:
        lines.append("* ...")
    if site.monitoring_footer:
        lines.append(site.monitoring_footer)
    return tuple(lines)


def feed_data(site: SiteInput, branch: BranchInfo | None) -> FeedData:
    base = site.url if site.url.endswith("/") else site.url + "/"
    host = urlsplit(base).hostname or "localhost"
    entries = []
    for event in site.events:
        if event.kind not in FEED_KINDS:
            continue
        if branch is not None and event.repo.split("/")[0].split(":")[0] != branch.name:
            continue
        row = event_row(event)
        day = row.time[:10]
        what = f"{event.repo}/{event.pkgname}" if event.pkgname else event.repo
        ident = (
            f"tag:{host},{day}:{what}/{event.version or '-'}/{event.kind}/{int(event.time * 1000)}"
        )
        entries.append(
            FeedEntry(
                id=ident,
                title=f"{what} {event.version} {event.kind}".replace("  ", " "),
                updated=row.time,
                href=base + row.href,
                summary=event.message,
            )
        )
        if len(entries) >= FEED_LENGTH:
            break
    name = branch.name if branch else ""
    path = f"feeds/{name}.atom" if branch else "feed.atom"
    updated = entries[0].updated if entries else "1970-01-01T00:00:00Z"
    return FeedData(
        id=f"tag:{host},2026:reconciler/{path}",
        title=f"{site.title}{': ' + name if name else ''}",
        updated=updated,
        self_href=base + path,
        site_href=base + (f"branch/{name}.html" if branch else ""),
        entries=tuple(entries),
    )


def package_pages(site: SiteInput, cells: CellTable) -> dict[str, Page]:
    by_name: dict[tuple[str, str], dict[RepoKey, PkgStatus]] = defaultdict(dict)
    for status in site.plan.packages:
        by_name[(status.repo.branch, status.pkgname)][status.repo] = status
    rdeps: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for (repo, name), spec in site.specs.items():
        for dep in spec.build_deps:
            rdeps[(repo.branch, dep.pkgname)].add((repo.splitrepo, name))
    history: dict[tuple[str, str], list[JobRow]] = defaultdict(list)
    for job in sorted(site.jobs, key=lambda j: (j.submitted_at, j.key), reverse=True):
        intent = job.key.intent
        if intent.kind is JobKind.BUILD:
            rows = history[(intent.repo.branch, intent.pkgname)]
            if len(rows) < 30:
                rows.append(job_row(job))
    arches_of = {b.name: b.arches for b in site.branches}
    pages: dict[str, Page] = {}
    for (branch, pkgname), per_repo in sorted(by_name.items()):
        arches = arches_of.get(branch, ())
        sections = []
        for splitrepo in sorted({r.splitrepo for r in per_repo}):
            sections.append(_section(site, branch, splitrepo, pkgname, arches, per_repo, cells))
        reverse = rdeps.get((branch, pkgname), set())
        pages[package_href(branch, pkgname)] = Page(
            "package.html",
            "../../",
            f"{pkgname} ({branch})",
            PackageData(
                branch,
                pkgname,
                arches,
                tuple(sections),
                tuple(history[(branch, pkgname)]),
                tuple(
                    (n + (f" ({sr})" if sr else ""), package_href(branch, n))
                    for sr, n in sorted(reverse)
                ),
            ),
        )
    return pages


def _section(
    site: SiteInput,
    branch: str,
    splitrepo: str,
    pkgname: str,
    arches: tuple[str, ...],
    per_repo: dict[RepoKey, PkgStatus],
    table: CellTable,
) -> PackageSection:
    cells = []
    deps: dict[tuple[str, str], None] = {}
    description = url = path = ""
    own = table.get((branch, splitrepo, pkgname))
    for cell in own.cells if own is not None else ():
        if cell is None:
            continue
        repo = RepoKey(branch, splitrepo, cell.arch)
        status = per_repo[repo]
        spec = site.specs.get((repo, pkgname))
        wip, final = site.versions.get((repo, pkgname), ("", ""))
        log = log_href(None, status.job_id)
        log_cell = f'<a href="../../{escape(log)}">log</a>' if log else ""
        cells.append(
            f'<tr class="s-{cell.state}"><td>{escape(cell.arch)}</td>'
            f'<td><span class="letter">{cell.letter}</span> {cell.state}</td>'
            f"<td>{escape(cell.reason)}</td><td>{escape(status.version)}</td>"
            f"<td>{escape(wip) or '—'}</td><td>{escape(final) or '—'}</td>"
            f"<td>{log_cell}</td></tr>\n"
        )
        if spec is not None:
            description, url, path = spec.description, spec.url, spec.path
            for dep in spec.build_deps:
                deps[(dep.repo.splitrepo, dep.pkgname)] = None

    def link(sr: str, name: str) -> DepLink:
        found = table.get((branch, sr, name))
        html = found.html if found is not None else row_html((None,) * len(arches))
        label = name + (f" ({sr})" if sr else "")
        return DepLink(label, package_href(branch, name), html)

    return PackageSection(
        repo_label=f"extra-repos/{splitrepo}" if splitrepo else "main",
        description=description,
        url=url,
        path=path,
        rows_html=Markup("".join(cells)),
        deps=tuple(link(sr, n) for sr, n in sorted(deps)),
    )


def status_documents(site: SiteInput) -> dict[str, bytes]:
    """status.json (every branch) and status/<branch>.json: the same facts as the HTML,
    for scripts. Each package row is built once and shared by both documents."""
    summaries = {s.name: s for s in branch_summaries(site)}
    state_names = [str(s) for s in STATES]
    rows: dict[str, list[dict[str, object]]] = {b.name: [] for b in site.branches}
    for s in site.plan.packages:
        rows.setdefault(s.repo.branch, []).append(
            {
                "repo": str(s.repo),
                "branch": s.repo.branch,
                "splitrepo": s.repo.splitrepo,
                "arch": s.repo.arch,
                "pkgname": s.pkgname,
                "version": s.version,
                "state": str(s.state),
                "reason": s.reason,
                "tries": s.tries,
                "max_tries": s.max_tries,
                "log": log_href(None, s.job_id),
                "next_try_at": iso(s.next_try_at),
            }
        )

    def branch_doc(b: BranchInfo) -> dict[str, object]:
        summary = summaries[b.name]
        return {
            "ignore_errors": b.ignore_errors,
            "commit": b.commit,
            "published_commit": summary.published_commit,
            "counts": dict(zip(state_names, summary.counts, strict=True)),
            "repos": {
                r.repo: {
                    "phase": r.phase,
                    "reason": r.reason,
                    "published_commit": r.published_commit,
                    "published_at": r.published_at,
                    "counts": dict(zip(state_names, r.counts, strict=True)),
                }
                for r in summary.repos
            },
        }

    def encode(branches: list[BranchInfo]) -> bytes:
        document = {
            "title": site.title,
            "badge": badge_state(site),
            "states": state_names,
            "branches": {b.name: branch_doc(b) for b in branches},
            "packages": [row for b in branches for row in rows.get(b.name, [])],
        }
        return (json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n").encode()

    documents = {"status.json": encode(list(site.branches))}
    for b in site.branches:
        documents[f"status/{b.name}.json"] = encode([b])
    return documents
