"""Which files the site has and the view model of each: SiteInput -> {path: Page}.

Pure. Each Page names its template and carries a frozen value; equal values mean
an unchanged file, which the writer then neither renders nor writes. Feeds,
badge, monitoring.txt and status.json are built here too, so that every file
shows the same snapshot.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from .model import JobKind, RepoKey
from .sitefeeds import badge_state, feed_data, monitoring_lines
from .sitemodel import (
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
    job_row,
    log_href,
    package_href,
    plan_words,
    row_html,
    running_jobs,
)
from .status import PkgState, PkgStatus


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
