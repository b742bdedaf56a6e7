"""The images' part of a plan: each desired image's state and the actions that
move it on, after the packages' part has taken what it needs.

Pure. An image of the current slot is published once a date directory of its
(release, device, UI) dated on or after the slot's start holds its image file.
An operator's hold keeps it `held` (no job starts, a finished one is not
published); otherwise its jobs decide, as a package's do (`Tries`: running,
finished and to be published, failed with backoff, out of tries; an operator's
retry grant forgives the tries of its slot). A new job starts only when the
final repository of its branch and arch is published and holds every package
of the tree the image installs at its desired version, when the images
directory's file system has `min_free_bytes` free, when no package is waiting
for a job slot (package builds always go first), when no other job of its
device and UI runs or starts (they share date directories), and within both
the images' and the jobs' limits. Its date directory is the minute it starts
(the next free minute when one of that name is published already).

An operator's request to build an image now (`ImageRequest`) is the configured
image with the request's own slot, planned like the others and before them.
Published directories beyond `keep` per (release, device, UI) are pruned,
oldest first, only for what is desired: those of a device or UI no longer
configured stay until an operator removes them (`ImageRemoval`, carried out
while the configuration does not name them). Running image jobs of a device or
UI no longer configured are cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.model.images import DesiredImage, ImageTarget, slot_epoch, slot_name
from reconciler.model.jobs import JobKey, JobKind
from reconciler.model.observations import ObservedState, PublishedImage
from reconciler.model.progress import ImageStatus, PkgState, RepoPhase, RepoStatus
from reconciler.operator.intents import ImageRequest, published_date
from reconciler.plan.actions import (
    Action,
    CancelJob,
    PruneImages,
    PublishImage,
    RemoveImages,
    SubmitImage,
)
from reconciler.plan.inputs import ImageSettings, PlanSettings
from reconciler.plan.tries import Tries

Matrix = tuple[str, str, str]  # (release, device, UI): a directory of the images tree
GiB = 1024**3


@dataclass
class ImagePlan:
    """What the images' part decided."""

    actions: list[Action] = field(default_factory=list)
    statuses: list[ImageStatus] = field(default_factory=list)


def plan_images(
    observed: ObservedState,
    settings: PlanSettings,
    tries: Tries,
    repos: Iterable[RepoStatus],
    *,
    free_slots: int,
    builds_waiting: bool,
    now: float,
) -> ImagePlan:
    """Every desired image's state (this slot's, then those asked for now) and
    the actions for this pass. `free_slots`: job slots the packages left;
    `builds_waiting`: a package waits for a slot."""
    planner = _ImagePlanner(observed, settings, tries, repos, free_slots, builds_waiting, now)
    images = settings.images
    asked = [planner.image(image, request) for request, image in _requested(settings)]
    planner.result.statuses.extend(planner.image(image) for image in images.desired)
    planner.result.statuses.extend(asked)
    planner.result.actions.extend(_prune(images.desired, planner.published, images.keep))
    planner.result.actions.extend(_cancel_unconfigured(observed, images.desired))
    planner.result.actions.extend(_remove(settings, observed.images))
    return planner.result


def disk_wait(free: int | None, images: ImageSettings) -> str:
    """Why no image job may start for want of space ("" when one may, or when
    the free space is not known)."""
    if not images.min_free_bytes or free is None or free >= images.min_free_bytes:
        return ""
    where = images.root or "the images directory"
    return (
        f"waiting: {_size(free)} free on {where},"
        f" images.min_free_bytes is {_size(images.min_free_bytes)}"
    )


def _size(count: int) -> str:
    """Bytes in words: "1.4 GiB", "300 MiB", "12 KiB", "7 bytes"."""
    for unit, size in (("GiB", GiB), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= size:
            value = f"{count / size:.1f}".removesuffix(".0")
            return f"{value} {unit}"
    return f"{count} bytes"


def _requested(settings: PlanSettings) -> list[tuple[ImageRequest, DesiredImage]]:
    """The images operators asked for now, oldest request first, each the
    configured image of this slot with the request's own slot (a request whose
    image this slot does not build is left out: `world.settle` drops it)."""
    found = []
    for request in sorted(settings.intents.image_requests, key=lambda r: (r.at, r.name)):
        configured = next((i for i in settings.images.desired if request.matches(i.target)), None)
        if configured is not None:
            found.append((request, request.image(configured)))
    return found


class _ImagePlanner:
    """One pass's images: the slots left, the device/UI pairs a job of which
    runs or starts, and the actions and states so far."""

    def __init__(
        self,
        observed: ObservedState,
        settings: PlanSettings,
        tries: Tries,
        repos: Iterable[RepoStatus],
        free_slots: int,
        builds_waiting: bool,
        now: float,
    ) -> None:
        self.observed = observed
        self.settings = settings
        self.tries = tries
        self.phases = {r.repo: r for r in repos}
        self.builds_waiting = builds_waiting
        self.now = now
        self.published = _published_by_matrix(observed.images)
        self.disk = disk_wait(observed.images_free_bytes, settings.images)
        # (branch, device, UI) -> the job that runs there, or the image that starts.
        self.busy: dict[tuple[str, str, str], str] = {}
        live = 0
        for key, obs in sorted(observed.jobs.items()):
            if key.intent.kind is JobKind.IMAGE and obs.status.is_live:
                live += 1
                try:
                    target = ImageTarget.from_intent(key.intent)
                except ValueError:
                    continue
                self.busy.setdefault(_pair(target), f"job {key.job_id}")
        self.slots = min(free_slots, max(settings.images.max_parallel - live, 0))
        self.result = ImagePlan()

    def image(self, image: DesiredImage, asked: ImageRequest | None = None) -> ImageStatus:
        """Where one image stands, and the action that moves it on; `asked`: the
        operator's request it is built for."""
        cap = self.settings.max_tries

        def status(state: PkgState, reason: str = "", **kw: object) -> ImageStatus:
            if asked is not None and state is not PkgState.PUBLISHED:
                reason = f"{reason} (asked for now by {asked.who}: {asked.why})".lstrip()
            return ImageStatus(image.target, image.arch, image.release, state, reason, **kw)  # type: ignore[arg-type]

        done = published_date(image, self.published.get(_matrix(image), ()))
        hold = self.settings.intents.image_hold_for(image.target, self.now)
        if hold is not None:
            return status(PkgState.HELD, _hold_reason(hold.who, hold.since, hold.why), date=done)
        if done:
            return status(PkgState.PUBLISHED, date=done)
        intent = image.intent()
        tries = self.tries.of(intent)
        common: dict[str, object] = {"tries": tries.failures, "max_tries": cap}
        if tries.live is not None:
            why = f"try {tries.live.key.attempt} of {cap}"
            return status(PkgState.BUILDING, why, job_id=tries.live.key.job_id, **common)
        if tries.success is not None:
            self.result.actions.append(PublishImage(tries.success, image))
            self.busy.setdefault(_pair(image.target), f"image {image.target}")
            why = "image built, publishing it"
            return status(PkgState.BUILDING, why, job_id=tries.success.key.job_id, **common)
        common["job_id"] = tries.last_failure.key.job_id if tries.last_failure else None
        common["excerpt"] = tries.excerpt
        reason = ""
        if tries.failures:
            state, reason, due = self.tries.retry_or_fail(tries)
            if state is not PkgState.QUEUED:
                return status(state, reason, next_try_at=due, **common)
        state, why = self._start(image, reason)
        if state is PkgState.BUILDING:
            common["job_id"] = None
        return status(state, why, **common)

    def _start(self, image: DesiredImage, reason: str) -> tuple[PkgState, str]:
        """Start the image's next job when nothing keeps it from starting; else
        what does. `reason`: why it is tried again, after a failure."""
        missing = _missing(image, self.observed, self.phases.get(image.repo))
        if missing:
            return PkgState.WAITING, missing
        if self.observed.job_service_error:
            return PkgState.QUEUED, "ready, waiting for the job service to answer"
        paused = self.settings.paused(image.repo, self.now)
        if paused:
            return PkgState.QUEUED, f"ready; {paused}"
        if self.disk:
            return PkgState.QUEUED, self.disk
        if self.builds_waiting:
            return PkgState.QUEUED, reason or "ready; package builds go first"
        busy = self.busy.get(_pair(image.target))
        if busy is not None:
            return PkgState.QUEUED, f"ready, after {busy} (one job at a time per device and UI)"
        if self.slots <= 0:
            return PkgState.QUEUED, reason or "ready, waiting for a free slot"
        self.slots -= 1
        self.busy[_pair(image.target)] = f"image {image.target}"
        intent = image.intent()
        attempt = self.tries.next_attempt(intent)
        date_dir = _date_dir(self.now, image, self.published.get(_matrix(image), ()))
        self.result.actions.append(SubmitImage(JobKey(intent, attempt), image, date_dir))
        return PkgState.BUILDING, f"starting, try {attempt} of {self.settings.max_tries}"


def _pair(target: ImageTarget) -> tuple[str, str, str]:
    """(branch, device, UI): images that share date directories (their kernels')."""
    return (target.branch, target.device, target.ui)


def _matrix(image: DesiredImage) -> Matrix:
    return (image.release, image.target.device, image.target.ui)


def _hold_reason(who: str, since: float, why: str) -> str:
    """As a held package's (`planner._hold_reason`)."""
    return f"held by {who} since {time.strftime('%Y-%m-%d %H:%M', time.gmtime(since))} UTC: {why}"


def _date_dir(now: float, image: DesiredImage, published: Iterable[PublishedImage]) -> str:
    """The date directory of a job starting now: this minute (not before the
    image's slot), or the next minute no published directory has taken."""
    taken = {p.date for p in published}
    date = max(slot_name(now), image.target.slot)
    while date in taken:
        date = slot_name(slot_epoch(date) + 60)
    return date


def _published_by_matrix(
    images: Iterable[PublishedImage],
) -> Mapping[Matrix, tuple[PublishedImage, ...]]:
    found: dict[Matrix, list[PublishedImage]] = {}
    for image in images:
        found.setdefault((image.release, image.device, image.ui), []).append(image)
    return {k: tuple(sorted(v, key=lambda i: i.date)) for k, v in found.items()}


def _missing(image: DesiredImage, observed: ObservedState, repo: RepoStatus | None) -> str:
    """Why the image cannot be built from published packages yet ("" when it can)."""
    where = image.repo
    if repo is not None and repo.phase is RepoPhase.BLOCKED:
        return f"waiting for {where} to publish (blocked: {repo.reason})"
    if repo is None or repo.phase is not RepoPhase.PUBLISHED:
        return f"waiting for {where} to publish"
    final = observed.repos.get(where)
    listed = final.final_index.files if final and final.final_index else {}
    absent = [f"{n} {v}" for n, v in image.needs if f"{n}-{v}.apk" not in listed]
    if absent:
        return f"waiting for {where} to publish {', '.join(sorted(absent))}"
    return ""


def _prune(
    desired: Iterable[DesiredImage],
    published: Mapping[Matrix, tuple[PublishedImage, ...]],
    keep: int,
) -> list[Action]:
    """The configured (release, device, UI)s' date directories beyond the newest `keep`."""
    actions: list[Action] = []
    for matrix in sorted({_matrix(image) for image in desired}):
        dated = sorted(published.get(matrix, ()), key=lambda p: p.date)
        old = dated[: max(len(dated) - keep, 0)]
        if old:
            release, device, ui = matrix
            dates = tuple(p.date for p in old)
            job_ids = tuple(p.job_id for p in old)
            why = f"keeping the newest {keep}"
            actions.append(PruneImages(release, device, ui, dates, job_ids, why))
    return actions


def _remove(settings: PlanSettings, published: Iterable[PublishedImage]) -> list[Action]:
    """The operators' removals of what the configuration no longer names and
    something is still published of."""
    configured = {(m[1], m[2], m[3]) for m in settings.images.matrix}
    published = tuple(published)
    actions: list[Action] = []
    for removal in settings.intents.image_removals:
        if any(removal.covers(*matrix) for matrix in configured):
            continue
        found = [p for p in published if removal.covers(p.release, p.device, p.ui)]
        if found:
            job_ids = tuple(sorted({p.job_id for p in found if p.job_id}))
            why = f"removed by {removal.who}: {removal.why}"
            actions.append(RemoveImages(removal.release, removal.device, removal.ui, job_ids, why))
    return actions


def _cancel_unconfigured(observed: ObservedState, desired: Iterable[DesiredImage]) -> list[Action]:
    """Running image jobs of a (branch, device, UI, kernel) no longer configured."""
    configured = {_configured(image.target) for image in desired}
    actions: list[Action] = []
    for key, obs in sorted(observed.jobs.items()):
        if key.intent.kind is not JobKind.IMAGE or not obs.status.is_live:
            continue
        try:
            target = ImageTarget.from_intent(key.intent)
        except ValueError:
            continue
        if _configured(target) not in configured:
            actions.append(CancelJob(key, "its image is no longer configured"))
    return actions


def _configured(target: ImageTarget) -> tuple[str, str, str, str]:
    return (target.branch, target.device, target.ui, target.kernel)
