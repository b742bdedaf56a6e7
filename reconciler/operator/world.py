"""What operations and pushes read of a pass: the job service's attempts, the
packages failing now, what final publishes; and which requests the world has
since fulfilled.

Pure: built by the loop from the pass's observed and desired state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.observations import ObservedState
from reconciler.model.packages import BranchDesired
from reconciler.operator.intents import Intents, RebuildRequest


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

    @classmethod
    def of(
        cls,
        observed: ObservedState,
        desired: Mapping[str, BranchDesired],
        now: float,
        stored: frozenset[str] = frozenset(),
    ) -> World:
        attempts = highest_attempts(observed.jobs)
        return cls(observed, desired, now, attempts, failing(observed.jobs, attempts), stored)

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
        job service has forgotten (kept while it cannot be asked)."""
        if not intents.rebuilds and not intents.dead_jobs:
            return intents
        rebuilds = tuple(
            r
            for r in intents.rebuilds
            if self.published(r.branch, r.pkgname).get((r.arch, r.pkgname))
            == (r.version, r.replaced)
            and not self._reproduced(r)
        )
        dead = intents.dead_jobs
        if not self.observed.job_service_error:
            known = {k.job_id for k in self.observed.jobs}
            dead = tuple(d for d in dead if d.job_id in known)
        return replace(intents, rebuilds=rebuilds, dead_jobs=dead)

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
