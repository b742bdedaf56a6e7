"""What operators' requests leave standing: holds, retry grants, rebuild requests,
jobs declared dead and paused branches; for device images holds, retry grants,
requests to build one now and removals of published directories; and
`Intents`, the durable set of them that plan() obeys.

Frozen dataclasses only. Operations (`operations`) make them, the store keeps them
(`store`: one list per field of `Intents`, so a new kind needs no other change),
the plan reads them, `world.settle` drops the requests that are done.
`BranchRemoval` is the one request that is not kept: it is carried out in the
pass that asks for it.

An image is named as bpo does, `branch:device:ui[:kernel]`, without its slot:
a hold holds it in every slot. `published_date` answers, for the plan and for
`world.settle` alike, whether a date directory holds an image.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from reconciler.model.images import DesiredImage, ImageTarget, image_file_name, is_current
from reconciler.model.jobs import JobIntent, JobKind
from reconciler.model.names import RepoKey
from reconciler.model.observations import PublishedImage


@dataclass(frozen=True, slots=True)
class Hold:
    """An operator holds a package: it is not built and keeps what is published."""

    branch: str
    arch: str  # "" for every arch
    pkgname: str
    who: str
    why: str
    since: float
    expires: float | None = None

    def applies(self, repo: RepoKey, pkgname: str, now: float) -> bool:
        return (
            self.branch == repo.branch
            and self.arch in ("", repo.arch)
            and self.pkgname == pkgname
            and (self.expires is None or now < self.expires)
        )


@dataclass(frozen=True, slots=True)
class RetryGrant:
    """An operator gives a failed package fresh tries: attempts up to
    `after_attempt` no longer count, and the next one may start at once."""

    branch: str
    arch: str  # "" for every arch
    pkgname: str
    after_attempt: int
    who: str
    why: str
    at: float

    def applies(self, repo: RepoKey, pkgname: str) -> bool:
        return (
            self.branch == repo.branch and self.arch in ("", repo.arch) and self.pkgname == pkgname
        )


@dataclass(frozen=True, slots=True)
class RebuildRequest:
    """An operator asks for a package to be built again at the same version.

    Pending while final still holds the bytes it had when asked (`replaced`, the
    checksum of the package's own apk); attempts up to `after_attempt` of its
    build intent no longer count, so a new build starts."""

    branch: str
    arch: str
    pkgname: str
    version: str
    replaced: str
    after_attempt: int
    who: str
    why: str
    at: float

    def applies(self, repo: RepoKey, pkgname: str, version: str) -> bool:
        return (self.branch, self.arch, self.pkgname, self.version) == (
            repo.branch,
            repo.arch,
            pkgname,
            version,
        )


@dataclass(frozen=True, slots=True)
class DeadJob:
    """An operator declares a job dead: it is cancelled and counts as a failed try."""

    job_id: str
    who: str
    why: str
    at: float


@dataclass(frozen=True, slots=True)
class Pause:
    """An operator pauses a branch (or one arch of it): no new job starts there;
    running jobs finish and what they built is collected and published."""

    branch: str
    arch: str  # "" for every arch
    who: str
    why: str
    since: float
    expires: float | None = None

    def applies(self, repo: RepoKey, now: float) -> bool:
        return (
            self.branch == repo.branch
            and self.arch in ("", repo.arch)
            and (self.expires is None or now < self.expires)
        )


# --- images ---------------------------------------------------------------------


def image_name(branch: str, device: str, ui: str, kernel: str = "") -> str:
    """bpo's `branch:device:ui`, with `:kernel` when one is named."""
    return f"{branch}:{device}:{ui}" + (f":{kernel}" if kernel else "")


def _same_image(target: ImageTarget, branch: str, device: str, ui: str, kernel: str) -> bool:
    """The target is this image; kernel "" matches every kernel."""
    return (target.branch, target.device, target.ui) == (branch, device, ui) and kernel in (
        "",
        target.kernel,
    )


@dataclass(frozen=True, slots=True)
class ImageHold:
    """An operator holds an image (every kernel when `kernel` is ""), in every
    slot: no job of it starts, a finished one is not published, what is
    published stays."""

    branch: str
    device: str
    ui: str
    kernel: str  # "" for every kernel
    who: str
    why: str
    since: float
    expires: float | None = None

    @property
    def name(self) -> str:
        return image_name(self.branch, self.device, self.ui, self.kernel)

    def applies(self, target: ImageTarget, now: float) -> bool:
        return _same_image(target, self.branch, self.device, self.ui, self.kernel) and (
            self.expires is None or now < self.expires
        )


@dataclass(frozen=True, slots=True)
class ImageRetry:
    """An operator gives a failed image fresh tries: the attempts of its jobs of
    this very slot up to `after_attempt` no longer count (a later slot's jobs,
    which count from 1 again, are not forgiven)."""

    branch: str
    device: str
    ui: str
    kernel: str
    slot: str
    after_attempt: int
    who: str
    why: str
    at: float

    def applies(self, target: ImageTarget) -> bool:
        return target == ImageTarget(self.branch, self.device, self.ui, self.kernel, self.slot)


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """An operator asks for an image now, outside its slot: the plan wants the
    configured image as if a slot started at `slot` (a `YYYYMMDD-HHMM` after
    the current slot's start and every published date directory of it, so its
    job's identity and date directory are its own). Done once a date directory
    on or after `slot` holds it."""

    branch: str
    device: str
    ui: str
    kernel: str
    slot: str
    who: str
    why: str
    at: float

    @property
    def name(self) -> str:
        return image_name(self.branch, self.device, self.ui, self.kernel)

    def matches(self, target: ImageTarget) -> bool:
        """The configured image this request builds (whatever the slot)."""
        return (target.branch, target.device, target.ui, target.kernel) == (
            self.branch,
            self.device,
            self.ui,
            self.kernel,
        )

    def image(self, configured: DesiredImage) -> DesiredImage:
        """The configured image of the current slot, made this request's."""
        return replace(configured, target=replace(configured.target, slot=self.slot))


@dataclass(frozen=True, slots=True)
class ImageRemoval:
    """An operator asks for the published date directories of a (release,
    device, UI) no longer configured to be removed (every UI when `ui` is "").
    Kept until nothing of it is published, or it is configured again."""

    release: str
    device: str
    ui: str  # "" for every UI of the device
    who: str
    why: str
    at: float

    @property
    def path(self) -> str:
        """Its directory below the images root."""
        return "/".join(p for p in (self.release, self.device, self.ui) if p)

    def covers(self, release: str, device: str, ui: str) -> bool:
        return (self.release, self.device) == (release, device) and self.ui in ("", ui)


def published_date(image: DesiredImage, published: Iterable[PublishedImage]) -> str:
    """The newest date directory of the image's (release, device, UI), dated on
    or after its slot's start, that holds its image file (its kernel's); ""
    when there is none."""
    key = (image.release, image.target.device, image.target.ui)
    dates = sorted(
        (p for p in published if (p.release, p.device, p.ui) == key),
        key=lambda p: p.date,
        reverse=True,
    )
    for found in dates:
        if not is_current(found.date, image.target.slot):
            break
        name = image_file_name(found.date, image)
        if any(f.name == name for f in found.files):
            return found.date
    return ""


@dataclass(frozen=True, slots=True)
class Intents:
    """What operators asked for; durable, never derived."""

    holds: tuple[Hold, ...] = ()
    retries: tuple[RetryGrant, ...] = ()
    rebuilds: tuple[RebuildRequest, ...] = ()
    dead_jobs: tuple[DeadJob, ...] = ()
    pauses: tuple[Pause, ...] = ()
    image_holds: tuple[ImageHold, ...] = ()
    image_retries: tuple[ImageRetry, ...] = ()
    image_requests: tuple[ImageRequest, ...] = ()
    image_removals: tuple[ImageRemoval, ...] = ()

    def image_hold_for(self, target: ImageTarget, now: float) -> ImageHold | None:
        return next((h for h in self.image_holds if h.applies(target, now)), None)

    def image_retried_after(self, intent: JobIntent) -> int:
        """An image job's attempts up to this number do not count (0: none granted)."""
        if intent.kind is not JobKind.IMAGE or not self.image_retries:
            return 0
        try:
            target = ImageTarget.from_intent(intent)
        except ValueError:
            return 0
        return max((r.after_attempt for r in self.image_retries if r.applies(target)), default=0)

    def rebuild_for(self, repo: RepoKey, pkgname: str, version: str) -> RebuildRequest | None:
        return next((r for r in self.rebuilds if r.applies(repo, pkgname, version)), None)

    def dead(self, job_id: str) -> DeadJob | None:
        return next((d for d in self.dead_jobs if d.job_id == job_id), None)

    def hold_for(self, repo: RepoKey, pkgname: str, now: float) -> Hold | None:
        return next((h for h in self.holds if h.applies(repo, pkgname, now)), None)

    def pause_for(self, repo: RepoKey, now: float) -> Pause | None:
        return next((p for p in self.pauses if p.applies(repo, now)), None)

    def retried_after(self, repo: RepoKey, pkgname: str) -> int:
        """Attempts up to this number do not count any more (0: none granted)."""
        return max((r.after_attempt for r in self.retries if r.applies(repo, pkgname)), default=0)


@dataclass(frozen=True, slots=True)
class BranchRemoval:
    """A request, made in this pass, to delete what a branch published."""

    branch: str
    why: str
    checkout: str = ""  # the daemon's checkout of it, deleted too ("" when none)
