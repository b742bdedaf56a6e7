"""Which files the site has and the view model of each: SiteInput -> SitePages.

Pure. Each Page names its template and carries a frozen value; equal values mean
an unchanged file, which the writer then neither renders nor writes. Package
pages, thousands of them, come as ready bodies (sitepackage) that the writer puts
in their template's frame. Feeds, badge, monitoring.txt and the status documents
are built here too, from one set of summaries, so that every file shows the same
snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup

from reconciler.model.progress import PkgState, PkgStatus
from reconciler.site.documents import status_documents
from reconciler.site.feeds import badge_state, feed_data, monitoring_lines
from reconciler.site.model import (
    BranchSummary,
    Escaped,
    EventRow,
    JobRow,
    SiteInput,
    branch_summaries,
    cell_table,
    event_row,
    failures,
    grid_html,
    log_href,
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
        rows_html, rows = grid_html(branch, cells, "../", escaped)
        pages[f"branch/{branch.name}.html"] = Page(
            "branch.html",
            "../",
            f"{site.title}: {branch.name}",
            BranchData(summary, branch.arches, Markup(rows_html), rows),
        )
        pages[f"feeds/{branch.name}.atom"] = Page("feed.atom", "", "", feed_data(site, branch))
    return SitePages(
        pages,
        package_pages(site, cells, PACKAGE_ROOT, escaped, previous),
        status_documents(site, summaries, badge),
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
    )


def failure_data(site: SiteInput) -> tuple[FailureRow, ...]:
    return tuple(failure_row(status, when) for status, when in failures(site))


def unpublished_rows(site: SiteInput) -> tuple[tuple[FailureRow, ...], int]:
    """Packages not published yet, problems first, and how many did not fit."""
    rows = [s for s in site.plan.packages if s.state is not PkgState.PUBLISHED]
    rows.sort(key=lambda s: (not s.state.is_problem, s.repo, s.pkgname))
    shown = tuple(failure_row(s) for s in rows[:INDEX_UNPUBLISHED])
    return shown, max(len(rows) - INDEX_UNPUBLISHED, 0)
