"""The images' part of a plan: each desired image's state and the actions that
move it on, after the packages' part has taken what it needs.

Pure. An image of the current slot is published once a date directory of its
(release, device, UI) dated on or after the slot's start holds its image file.
Otherwise its jobs decide, as a package's do (`Tries`: running, finished and to
be published, failed with backoff, out of tries). A new job starts only when
the final repository of its branch and arch is published and holds every
package of the tree the image installs at its desired version, when no package
is waiting for a job slot (package builds always go first), and within both the
images' and the jobs' limits. Published directories beyond `keep` per
(release, device, UI) are pruned, oldest first, only for what is configured:
those of a device or UI no longer configured stay until an operator removes
them. Running image jobs of a device or UI no longer configured are cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.model.images import (
    DesiredImage,
    ImageTarget,
    image_file_name,
    is_current,
    slot_name,
)
from reconciler.model.jobs import JobKey, JobKind
from reconciler.model.observations import ObservedState, PublishedImage
from reconciler.model.progress import ImageStatus, PkgState, RepoPhase, RepoStatus
from reconciler.plan.actions import Action, CancelJob, PruneImages, PublishImage, SubmitImage
from reconciler.plan.inputs import PlanSettings
from reconciler.plan.tries import Tries


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
    """Every desired image's state and the actions for this pass. `free_slots`: job
    slots the packages left; `builds_waiting`: a package waits for a slot."""
    planner = _ImagePlanner(observed, settings, tries, repos, free_slots, builds_waiting, now)
    for image in settings.images.desired:
        planner.result.statuses.append(planner.image(image))
    desired = settings.images.desired
    planner.result.actions.extend(_prune(desired, planner.published, settings.images.keep))
    planner.result.actions.extend(_cancel_unconfigured(observed, desired))
    return planner.result


class _ImagePlanner:
    """One pass's images: the slots left, and the actions and states so far."""

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
        live = sum(
            1
            for k, o in observed.jobs.items()
            if k.intent.kind is JobKind.IMAGE and o.status.is_live
        )
        self.slots = min(free_slots, max(settings.images.max_parallel - live, 0))
        self.result = ImagePlan()

    def image(self, image: DesiredImage) -> ImageStatus:
        """Where one image stands, and the action that moves it on."""
        cap = self.settings.max_tries

        def status(state: PkgState, reason: str = "", **kw: object) -> ImageStatus:
            return ImageStatus(image.target, image.arch, image.release, state, reason, **kw)  # type: ignore[arg-type]

        done = _current_date(self.published.get(_matrix(image), ()), image)
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
            why = "image built, publishing it"
            return status(PkgState.BUILDING, why, job_id=tries.success.key.job_id, **common)
        common["job_id"] = tries.last_failure.key.job_id if tries.last_failure else None
        common["excerpt"] = tries.excerpt
        reason = ""
        if tries.failures:
            state, reason, due = self.tries.retry_or_fail(tries)
            if state is not PkgState.QUEUED:
                return status(state, reason, next_try_at=due, **common)
        missing = _missing(image, self.observed, self.phases.get(image.repo))
        if missing:
            return status(PkgState.WAITING, missing, **common)
        if self.observed.job_service_error:
            return status(PkgState.QUEUED, "ready, waiting for the job service to answer", **common)
        paused = self.settings.paused(image.repo, self.now)
        if paused:
            return status(PkgState.QUEUED, f"ready; {paused}", **common)
        if self.builds_waiting:
            return status(PkgState.QUEUED, reason or "ready; package builds go first", **common)
        if self.slots <= 0:
            return status(PkgState.QUEUED, reason or "ready, waiting for a free slot", **common)
        self.slots -= 1
        attempt = self.tries.next_attempt(intent)
        self.result.actions.append(SubmitImage(JobKey(intent, attempt), image, slot_name(self.now)))
        common["job_id"] = None
        return status(PkgState.BUILDING, f"starting, try {attempt} of {cap}", **common)


def _matrix(image: DesiredImage) -> tuple[str, str, str]:
    return (image.release, image.target.device, image.target.ui)


def _published_by_matrix(
    images: Iterable[PublishedImage],
) -> Mapping[tuple[str, str, str], tuple[PublishedImage, ...]]:
    found: dict[tuple[str, str, str], list[PublishedImage]] = {}
    for image in images:
        found.setdefault((image.release, image.device, image.ui), []).append(image)
    return {k: tuple(sorted(v, key=lambda i: i.date)) for k, v in found.items()}


def _current_date(dates: Iterable[PublishedImage], image: DesiredImage) -> str:
    """The newest date directory of the image's slot or later that holds its image
    file (its kernel's); "" when there is none."""
    for published in sorted(dates, key=lambda i: i.date, reverse=True):
        if not is_current(published.date, image.target.slot):
            break
        name = image_file_name(published.date, image)
        if any(f.name == name for f in published.files):
            return published.date
    return ""


def _missing(image: DesiredImage, observed: ObservedState, repo: RepoStatus | None) -> str:
    """Why the image cannot be built from published packages yet ("" when it can)."""
    where = image.repo
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
    published: Mapping[tuple[str, str, str], tuple[PublishedImage, ...]],
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
