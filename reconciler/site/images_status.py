"""The images page's view model: where each desired device image stands.

Pure. One row per image of the plan (`Plan.images`): bpo's `branch:device:ui`
name (with `:kernel` when one is named), its arch, its state with the package
grid's colours, the reason in words, the tries of a failed or retrying one,
the log of a running, retrying or failed one (the site's `logs/<job id>.log`,
else the job service's page), the published date directory (the images tree is
served at `/images/` of the same host as the site, so from the site root it is
`images/<release>/<device>/<ui>/<date>/`) and when the next slot starts (the
slot's start plus the images interval; the slot's name when the interval is not
known). Which images raise the alarm (badge, monitoring.txt, `reconciler
status`) is decided here too: failed ones, as for packages.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from reconciler.model.images import ImageTarget, is_slot_name, slot_epoch
from reconciler.model.progress import ImageStatus, PkgState
from reconciler.site.model import (
    ALARM_STATES,
    STATES,
    LogLink,
    LogLinks,
    SiteInput,
    counts_line,
    iso,
)
from reconciler.site.words import joined

IMAGES_PAGE = "images.html"
# States whose row links the job's log: it runs, or it failed.
LOGGED_STATES = frozenset({PkgState.BUILDING, PkgState.RETRYING, PkgState.FAILED})
# An image in these needs nothing more from the loop.
SETTLED_IMAGES = frozenset({PkgState.PUBLISHED, PkgState.HELD})


@dataclass(frozen=True, slots=True)
class ImageRow:
    name: str  # "main:demo-phone:console", ":kernel" added when one is named
    branch: str
    device: str
    ui: str
    kernel: str
    arch: str
    release: str
    slot: str  # the slot's start, YYYYMMDD-HHMM (UTC)
    state: str
    letter: str
    reason: str
    text: str  # state and reason in words, no word said twice
    tries: str  # "2/3" for a failed or retrying image, else ""
    log: LogLink | None
    published: str  # its date directory, relative to the site root ("": none yet)
    date: str
    next_try: str  # a retrying image's next try (ISO time), else ""
    next_slot: str  # the next slot's start (ISO time), else the slot's name
    alarm: bool  # failed: it will not fix itself


@dataclass(frozen=True, slots=True)
class ImagesData:
    rows: tuple[ImageRow, ...]
    counts: tuple[int, ...]  # per STATES
    columns: tuple[int, ...]  # the indexes of STATES with an image
    line: str  # the counts in words: "2 published, 1 failed"
    alarms: int  # failed images outside the branches being brought up
    interval: str  # the slots' interval in words ("" when not known)


def image_name(target: ImageTarget) -> str:
    """bpo's `branch:device:ui`, with `:kernel` when one is named."""
    kernel = f":{target.kernel}" if target.kernel else ""
    return f"{target.branch}:{target.device}:{target.ui}{kernel}"


def published_href(image: ImageStatus) -> str:
    """The image's published date directory, relative to the site root ("": none)."""
    if not image.date:
        return ""
    t = image.target
    return f"images/{image.release}/{t.device}/{t.ui}/{image.date}/"


def next_slot(slot: str, interval_seconds: float) -> str:
    """When the slot after `slot` starts (ISO time), or the slot's own name when
    the interval is not known."""
    if interval_seconds <= 0 or not is_slot_name(slot):
        return slot
    return iso(slot_epoch(slot) + interval_seconds)


def tries_text(image: ImageStatus) -> str:
    if image.state in (PkgState.FAILED, PkgState.RETRYING) and image.max_tries:
        return f"{image.tries}/{image.max_tries}"
    return ""


def image_row(image: ImageStatus, logs: LogLinks, interval_seconds: float) -> ImageRow:
    target = image.target
    return ImageRow(
        name=image_name(target),
        branch=target.branch,
        device=target.device,
        ui=target.ui,
        kernel=target.kernel,
        arch=image.arch,
        release=image.release,
        slot=target.slot,
        state=str(image.state),
        letter=image.state.letter,
        reason=image.reason,
        text=joined(str(image.state), image.reason),
        tries=tries_text(image),
        log=logs.of(image.job_id) if image.state in LOGGED_STATES else None,
        published=published_href(image) if image.state is PkgState.PUBLISHED else "",
        date=image.date,
        next_try=(
            iso(image.next_try_at)
            if image.state is PkgState.RETRYING and "next try" not in image.reason
            else ""
        ),
        next_slot=next_slot(target.slot, interval_seconds),
        alarm=image.state in ALARM_STATES,
    )


def image_alarms(site: SiteInput) -> list[ImageStatus]:
    """The failed images (every branch, as bpo's monitoring.txt lists them)."""
    return [i for i in site.plan.images if i.state in ALARM_STATES]


def quiet_alarms(site: SiteInput) -> int:
    """Failed images outside the branches being brought up (the badge's and the
    front page's count)."""
    quiet = {b.name for b in site.branches if b.ignore_errors}
    return sum(1 for i in image_alarms(site) if i.target.branch not in quiet)


def unsettled(site: SiteInput) -> bool:
    """Whether any image is still to be published (held ones are not)."""
    return any(i.state not in SETTLED_IMAGES for i in site.plan.images)


def images_data(site: SiteInput, logs: LogLinks) -> ImagesData:
    """The images page (and the front page's summary of it): failed images first,
    then by name and slot."""
    ordered = sorted(
        site.plan.images,
        key=lambda i: (i.state not in ALARM_STATES, not i.state.is_problem, i.target),
    )
    rows = tuple(image_row(i, logs, site.images_interval_seconds) for i in ordered)
    counter = Counter(i.state for i in site.plan.images)
    counts = tuple(counter[s] for s in STATES)
    seconds = site.images_interval_seconds
    days = seconds / 86400
    interval = "" if seconds <= 0 else f"{days:g} day{'s' if days != 1 else ''}"
    return ImagesData(
        rows,
        counts,
        tuple(i for i, n in enumerate(counts) if n),
        counts_line(counts).replace("no packages", "no images"),
        quiet_alarms(site),
        interval,
    )
