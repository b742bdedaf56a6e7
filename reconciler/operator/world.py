"""What operations and pushes read of a pass: the job service's attempts, the
packages failing now, what final publishes, this slot's desired images and the
configured image matrix; and which requests the world has since fulfilled.

Pure: built by the loop from the pass's observed and desired state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from reconciler.model.images import DesiredImage, ImageTarget
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.observations import ObservedState, PublishedImage
from reconciler.model.packages import BranchDesired
from reconciler.operator.intents import (
    ImageRemoval,
    ImageRequest,
    Intents,
    RebuildRequest,
    published_date,
)

# One image the configuration asks for, whatever the tree holds:
# (branch, release, device, UI, kernel), kernel "" for the device's only one.
MatrixEntry = tuple[str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class World:
    observed: ObservedState
    desired: Mapping[str, BranchDesired]
    now: float
    attempts: Mapping[JobIntent, int]  # the highest attempt per intent
    failing: tuple[tuple[str, str, str], ...]  # (branch, arch, pkgname) whose last try failed
    # Branches with repositories on disk (WIP, symlink or final); only looked for
    # in a pass that carries a removal request.
    stored: frozenset[str] = frozenset()
    images: tuple[DesiredImage, ...] = ()  # this slot's desired images
    matrix: frozenset[MatrixEntry] = frozenset()  # every image the configuration names

    @classmethod
    def of(
        cls,
        observed: ObservedState,
        desired: Mapping[str, BranchDesired],
        now: float,
        stored: frozenset[str] = frozenset(),
        *,
        images: tuple[DesiredImage, ...] = (),
        matrix: frozenset[MatrixEntry] = frozenset(),
    ) -> World:
        attempts = highest_attempts(observed.jobs)
        return cls(
            observed,
            desired,
            now,
            attempts,
            failing(observed.jobs, attempts),
            stored,
            images,
            matrix,
        )

    def highest(self, branch: str, arch: str, pkgname: str, version: str | None = None) -> int:
        """The highest build attempt of a package on a branch ("" arch: any arch)."""
        return max(
            (
                n
                for i, n in self.attempts.items()
                if i.repo.branch == branch
                and i.pkgname == pkgname
                and arch in ("", i.repo.arch)
                and version in (None, i.version)
            ),
            default=0,
        )

    def published(self, branch: str, pkgname: str) -> dict[tuple[str, str], tuple[str, str]]:
        """(arch, pkgname) -> (version, checksum) of the desired version final publishes."""
        found: dict[tuple[str, str], tuple[str, str]] = {}
        desired = self.desired.get(branch)
        if desired is None:
            return found
        for key, specs in desired.repos.items():
            spec = specs.get(pkgname)
            obs = self.observed.repos.get(key)
            if spec is None or obs is None or obs.final_index is None:
                continue
            checksum = obs.final_index.files.get(f"{pkgname}-{spec.version}.apk")
            if checksum is not None:
                found[(key.arch, pkgname)] = (spec.version, checksum)
        return found

    def settle(self, intents: Intents) -> Intents:
        """The intents without the requests that are done: rebuilds whose old bytes
        final no longer lists at a still desired version or that made those very
        bytes again (a reproducible build: nothing to replace), and dead jobs the
        job service has forgotten (kept while it cannot be asked); for images,
        retry grants whose jobs the job service has forgotten, requests whose
        image is published (or no longer among the images built) and removals
        with nothing left to remove (or configured again)."""
        if not (
            intents.rebuilds
            or intents.dead_jobs
            or intents.image_retries
            or intents.image_requests
            or intents.image_removals
        ):
            return intents
        rebuilds = tuple(
            r
            for r in intents.rebuilds
            if self.published(r.branch, r.pkgname).get((r.arch, r.pkgname))
            == (r.version, r.replaced)
            and not self._reproduced(r)
        )
        dead = intents.dead_jobs
        retries = intents.image_retries
        if not self.observed.job_service_error:
            known = {k.job_id for k in self.observed.jobs}
            dead = tuple(d for d in dead if d.job_id in known)
            if retries:
                tried = self.image_targets()
                retries = tuple(r for r in retries if any(r.applies(t) for t in tried))
        return replace(
            intents,
            rebuilds=rebuilds,
            dead_jobs=dead,
            image_retries=retries,
            image_requests=tuple(r for r in intents.image_requests if self._pending(r)),
            image_removals=tuple(r for r in intents.image_removals if self._removable(r)),
        )

    # --- images ----------------------------------------------------------------
    def image_targets(self) -> set[ImageTarget]:
        """The images the job service holds jobs of."""
        found: set[ImageTarget] = set()
        for intent in self.attempts:
            if intent.kind is JobKind.IMAGE:
                try:
                    found.add(ImageTarget.from_intent(intent))
                except ValueError:
                    continue
        return found

    def desired_images(self, branch: str, device: str, ui: str, kernel: str) -> list[DesiredImage]:
        """This slot's desired images of branch:device:ui (every kernel for "")."""
        return [
            i
            for i in self.images
            if (i.target.branch, i.target.device, i.target.ui) == (branch, device, ui)
            and kernel in ("", i.target.kernel)
        ]

    def configures(self, release: str, device: str, ui: str) -> list[MatrixEntry]:
        """The configured images published under release/device/ui (every UI for "")."""
        return sorted(
            m for m in self.matrix if (m[1], m[2]) == (release, device) and ui in ("", m[3])
        )

    def published_images(self, release: str, device: str, ui: str) -> list[PublishedImage]:
        """The published date directories of release/device/ui (every UI for "")."""
        return [
            p
            for p in self.observed.images
            if (p.release, p.device) == (release, device) and ui in ("", p.ui)
        ]

    def _pending(self, request: ImageRequest) -> bool:
        configured = [i for i in self.images if request.matches(i.target)]
        return bool(configured) and not published_date(
            request.image(configured[0]), self.observed.images
        )

    def _removable(self, removal: ImageRemoval) -> bool:
        return not self.configures(removal.release, removal.device, removal.ui) and bool(
            self.published_images(removal.release, removal.device, removal.ui)
        )

    def _reproduced(self, request: RebuildRequest) -> bool:
        """A build asked for by the request succeeded and WIP holds the bytes final
        already has under that name."""
        rebuilt = any(
            key.intent.kind is JobKind.BUILD
            and (key.intent.repo.branch, key.intent.repo.arch) == (request.branch, request.arch)
            and (key.intent.pkgname, key.intent.version) == (request.pkgname, request.version)
            and key.attempt > request.after_attempt
            and obs.status is JobStatus.SUCCESS
            for key, obs in self.observed.jobs.items()
        )
        if not rebuilt:
            return False
        name = f"{request.pkgname}-{request.version}.apk"
        for key, obs in self.observed.repos.items():
            if (key.branch, key.arch) == (request.branch, request.arch) and name in obs.wip:
                return obs.wip[name].checksum == request.replaced
        return False


def highest_attempts(jobs: Mapping[JobKey, object]) -> dict[JobIntent, int]:
    result: dict[JobIntent, int] = {}
    for key in jobs:
        result[key.intent] = max(result.get(key.intent, 0), key.attempt)
    return result


def failing(
    jobs: Mapping[JobKey, JobObservation], attempts: Mapping[JobIntent, int]
) -> tuple[tuple[str, str, str], ...]:
    """(branch, arch, pkgname) whose last try failed, read from the job service."""
    return tuple(
        sorted(
            {
                (k.intent.repo.branch, k.intent.repo.arch, k.intent.pkgname)
                for k, o in jobs.items()
                if k.intent.kind is JobKind.BUILD
                and o.status.is_failure
                and k.attempt == attempts[k.intent]
            }
        )
    )
