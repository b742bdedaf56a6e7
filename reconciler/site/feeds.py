"""The site's machine-facing summaries: the badge, monitoring.txt and Atom feeds.

Pure: each is computed from the same SiteInput as the pages, so all agree.
monitoring.txt keeps bpo's exact format, which monitoring already parses.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from reconciler.model.progress import PkgState
from reconciler.site.model import BranchInfo, SiteInput, event_row, log_href

FEED_KINDS = frozenset({"failed", "fixed", "published", "broken"})
FEED_LENGTH = 50


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


def badge_state(site: SiteInput) -> str:
    """failed (a problem outside the branches being brought up), building
    (anything not published yet) or up-to-date."""
    quiet = {b.name for b in site.branches if b.ignore_errors}
    published = PkgState.PUBLISHED
    building = False
    for status in site.plan.packages:
        state = status.state
        if state is published:
            continue
        building = True
        if state.is_problem and status.repo.branch not in quiet:
            return "failed"
    return "building" if building else "up-to-date"


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
