"""The site's machine-facing summaries: the badge, monitoring.txt and Atom feeds.

Pure: each is computed from the same SiteInput as the pages, so all agree.
monitoring.txt keeps bpo's exact format, which monitoring already parses. The
badge and monitoring.txt raise the alarm for failed and broken packages only
(`sitemodel.ALARM_STATES`): a retrying package will be tried again by itself.
The feeds carry the state changes worth hearing of and every operator action
(a job they name in words, not by its id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from reconciler.model.progress import PkgState, PkgStatus
from reconciler.site.images_status import (
    IMAGES_PAGE,
    image_alarms,
    image_name,
    quiet_alarms,
    unsettled,
)
from reconciler.site.model import (
    ALARM_STATES,
    BROKEN_INDEX,
    FAILED_INDEX,
    STATES,
    BranchInfo,
    Links,
    RepoCounts,
    SiteInput,
    branch_of,
    event_row,
    iso,
    log_href,
    operation_target,
    package_href,
    repo_counts,
    target_words,
)

FEED_KINDS = frozenset({"failed", "fixed", "published", "broken"})
FEED_LENGTH = 50
OPERATIONS_PAGE = "operations.html"
SETTLED = frozenset({PkgState.PUBLISHED, PkgState.HELD})  # nothing left to do for them
SETTLED_INDEXES = frozenset(i for i, s in enumerate(STATES) if s in SETTLED)


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
    return badge_of(site, repo_counts(site.plan.packages))


def badge_of(site: SiteInput, counts: RepoCounts) -> str:
    """failed (a package failed or broken, or an image failed, outside the branches
    being brought up), building (anything else still to publish, images too: held
    ones are not) or up-to-date; `counts` are every repository's packages per state."""
    if quiet_alarms(site):
        return "failed"
    quiet = {b.name for b in site.branches if b.ignore_errors}
    building = unsettled(site)
    for repo, numbers in counts.items():
        if repo.branch not in quiet and (numbers[FAILED_INDEX] or numbers[BROKEN_INDEX]):
            return "failed"
        building = building or any(n for i, n in enumerate(numbers) if i not in SETTLED_INDEXES)
    return "building" if building else "up-to-date"


def monitoring_lines(site: SiteInput) -> tuple[str, ...]:
    return monitoring_of(site, [s for s in site.plan.packages if s.state in ALARM_STATES])


def monitoring_of(site: SiteInput, failing: Sequence[PkgStatus]) -> tuple[str, ...]:
    """monitoring.txt in bpo's format, which monitoring already parses: "OK", or
    "N failure(s) at [title](url):" and a bullet per failed or broken package
    (`failing`, of every branch as bpo, in the plan's order), then one per failed
    image ("* 🖼️ [branch:device:ui](log) (try n/N)"), at most `monitoring_max` in
    all, "* ..." for the rest, then the footer."""
    images = image_alarms(site)
    if not failing and not images:
        return ("OK",)
    base = site.url if site.url.endswith("/") else site.url + "/"
    lines = [f"{len(failing) + len(images)} failure(s) at [{site.title}]({site.url}):"]
    limit = site.monitoring_max
    for status in failing[:limit]:
        page = base + package_href(status.repo.branch, status.pkgname)
        if status.state is PkgState.BROKEN:
            link, why = page, "APKBUILD broken"
        else:
            link = base + log_href(None, status.job_id) if status.job_id else page
            why = f"try {status.tries}/{status.max_tries}"
        lines.append(f"* 📦 [{status.repo}/{status.pkgname}]({link}) ({why})")
    for image in images[: max(limit - len(failing), 0)]:
        link = base + log_href(None, image.job_id) if image.job_id else base + IMAGES_PAGE
        why = f"try {image.tries}/{image.max_tries}"
        lines.append(f"* 🖼️ [{image_name(image.target)}]({link}) ({why})")
    if len(failing) + len(images) > limit:
        lines.append("* ...")
    if site.monitoring_footer:
        lines.append(site.monitoring_footer)
    return tuple(lines)


def feed_data(site: SiteInput, branch: BranchInfo | None, links: Links) -> FeedData:
    """The newest state changes (FEED_KINDS) and operator actions, of one branch or
    of all, newest first."""
    base = site.url if site.url.endswith("/") else site.url + "/"
    host = urlsplit(base).hostname or "localhost"
    timed: list[tuple[float, FeedEntry]] = []
    for event in site.events:
        if event.kind not in FEED_KINDS:
            continue
        if branch is not None and branch_of(event.repo) != branch.name:
            continue
        row = event_row(event, links)
        what = f"{event.repo}/{event.pkgname}" if event.pkgname else event.repo
        ident = f"{what}/{event.version or '-'}/{event.kind}/{int(event.time * 1000)}"
        title = f"{what} {event.version} {event.kind}".replace("  ", " ")
        entry = FeedEntry(
            f"tag:{host},{row.time[:10]}:{ident}", title, row.time, base + row.href, event.message
        )
        timed.append((event.time, entry))
        if len(timed) >= FEED_LENGTH:
            break
    shown = 0
    for record in site.operations:
        if shown >= FEED_LENGTH:
            break
        if branch is not None and operation_target(record)[0] != branch.name:
            continue
        shown += 1
        when = iso(record.time) or "1970-01-01T00:00:00Z"
        what = quote(f"{record.operation}/{record.target}/{record.outcome}", safe="/@:")
        ident = f"tag:{host},{when[:10]}:operation/{what}/{int(record.time * 1000)}"
        title = f"{record.operation} {target_words(record.target)}: {record.outcome}"
        summary = f"{record.effect} (by {record.who}: {record.why})"
        timed.append((record.time, FeedEntry(ident, title, when, base + OPERATIONS_PAGE, summary)))
    timed.sort(key=lambda item: item[0], reverse=True)
    entries = tuple(entry for _, entry in timed[:FEED_LENGTH])
    name = branch.name if branch else ""
    path = f"feeds/{name}.atom" if branch else "feed.atom"
    return FeedData(
        id=f"tag:{host},2026:reconciler/{path}",
        title=f"{site.title}{': ' + name if name else ''}",
        updated=entries[0].updated if entries else "1970-01-01T00:00:00Z",
        self_href=base + path,
        site_href=base + (f"branch/{name}.html" if branch else ""),
        entries=entries,
    )
