"""The planner's shared state and the last rungs of the publish ladder.

Pure, like plan(), which builds on this: the settings and result types, the
bookkeeping one planning run shares (actions, states, job attempts), how the
tries of an intent count (operator grants, rebuilds and dead jobs included) and,
once a repository is complete, its ladder: unsigned symlink index -> sign job ->
publish final -> prune, and the mirror.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation
from reconciler.model.names import RepoKey
from reconciler.model.observations import ObservedState, RepoObserved
from reconciler.model.packages import BranchDesired, PkgSpec
from reconciler.model.progress import PkgState, PkgStatus, RepoPhase, RepoStatus
from reconciler.operator.intents import Intents
from reconciler.plan.actions import (
    Action,
    MirrorFinal,
    PruneFinal,
    PruneWip,
    PublishFinal,
    SubmitSign,
    WriteSymlinkRepo,
)
from reconciler.plan.target import publish_target, published_from


@dataclass(frozen=True, slots=True)
class BranchOrder:
    name: str
    arches: tuple[str, ...]  # the first is native
    ignore_errors: bool = False
    origin: str = ""  # a staging branch: the configured branch it stages for


@dataclass(frozen=True, slots=True)
class PlanSettings:
    branches: tuple[BranchOrder, ...]
    splitrepos: tuple[str, ...]
    max_parallel: int
    max_tries: int
    backoff_seconds: float
    backoff_max_seconds: float
    intents: Intents = field(default_factory=Intents)
    mirror: bool = False  # a mirror is configured: published repositories go there too

    def backoff(self, failures: int) -> float:
        delay: float = self.backoff_seconds * 2.0 ** max(failures - 1, 0)
        return min(delay, self.backoff_max_seconds)


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[Action, ...]
    packages: tuple[PkgStatus, ...]
    repos: tuple[RepoStatus, ...]
    # The earliest time a scheduled retry becomes due (for the loop's sleep).
    next_wakeup: float | None = None


@dataclass(frozen=True, slots=True)
class TryState:
    """The outcome of the attempts made so far for one intent."""

    failures: int
    live: JobObservation | None
    success: JobObservation | None
    last_failure: JobObservation | None
    last_reason: str


@dataclass(slots=True)
class PlannerState:
    """What one planning run reads and accumulates; the ladder's rungs as methods."""

    desired: Mapping[str, BranchDesired]
    observed: ObservedState
    settings: PlanSettings
    now: float
    actions: list[Action] = field(default_factory=list)
    packages: list[PkgStatus] = field(default_factory=list)
    repos: list[RepoStatus] = field(default_factory=list)
    attempts: dict[JobIntent, list[JobObservation]] = field(default_factory=dict)
    slots: int = 0
    wakeups: list[float] = field(default_factory=list)
    held: dict[tuple[RepoKey, str], str | None] = field(default_factory=dict)

    def _repo(self, key: RepoKey) -> RepoObserved:
        return self.observed.repos.get(key) or RepoObserved()

    def _available(self, key: RepoKey, pkgname: str, version: str, *, final_only: bool) -> bool:
        """Listed at `version` by the repository's index(es) that builds read."""
        obs = self._repo(key)
        name = f"{pkgname}-{version}.apk"
        if obs.final_index is not None and name in obs.final_index.files:
            return True
        return not final_only and obs.wip_index is not None and name in obs.wip_index.files

    def _tries(self, intent: JobIntent) -> TryState:
        failures = 0
        live = success = last_failure = None
        reason = ""
        intents = self.settings.intents
        forgiven = intents.retried_after(intent.repo, intent.pkgname)
        rebuild = intents.rebuild_for(intent.repo, intent.pkgname, intent.version)
        if rebuild is not None and intent.kind is JobKind.BUILD:
            forgiven = max(forgiven, rebuild.after_attempt)
        for obs in self.attempts.get(intent, []):
            if obs.key.attempt <= forgiven and not obs.status.is_live:
                continue  # an operator granted fresh tries after this one
            rejected = self.observed.rejected.get(obs.key.job_id)
            dead = intents.dead(obs.key.job_id)
            if dead is not None:
                failures += 1
                last_failure = obs
                reason = f"declared dead by {dead.who}: {dead.why}"
                success = None
            elif obs.status.is_live:
                live = obs
            elif obs.status.is_failure or rejected:
                failures += 1
                last_failure = obs
                reason = rejected or obs.reason or f"job {obs.status}"
                success = None
            else:
                success = obs
        return TryState(failures, live, success, last_failure, reason)

    def _retry_or_fail(
        self, intent: JobIntent, tries: TryState
    ) -> tuple[PkgState, str, float | None]:
        """After a failure: whether another try may start now (QUEUED), later, or never."""
        n, cap = tries.failures, self.settings.max_tries
        if n >= cap:
            return PkgState.FAILED, f"failed, try {n}/{cap}: {tries.last_reason}", None
        ended = (tries.last_failure.ended_at if tries.last_failure else None) or self.now
        due = ended + self.settings.backoff(n)
        if due > self.now:
            self.wakeups.append(due)
            when = time.strftime("%H:%M:%S", time.gmtime(due))
            return (
                PkgState.RETRYING,
                f"failed, try {n}/{cap}, next try at {when} UTC: {tries.last_reason}",
                due,
            )
        return PkgState.QUEUED, f"retrying after failure {n}/{cap}: {tries.last_reason}", None

    def _rebuilt(self, key: RepoKey, specs: Mapping[str, PkgSpec], obs: RepoObserved) -> set[str]:
        """Packages of this repository whose asked-for rebuild waits in WIP to replace
        final's apk (looked up from the requests: usually there are none)."""
        rebuilt = set()
        listed = obs.final_index.files if obs.final_index is not None else {}
        for request in self.settings.intents.rebuilds:
            spec = specs.get(request.pkgname)
            if spec is None or not request.applies(key, spec.pkgname, spec.version):
                continue
            name = f"{spec.pkgname}-{spec.version}.apk"
            in_wip = obs.wip.get(name)
            replaced = self._rebuild_pending(spec, listed.get(name))
            if in_wip is not None and replaced not in (None, in_wip.checksum):
                rebuilt.add(spec.pkgname)
        return rebuilt

    def _rebuild_pending(self, spec: PkgSpec, listed: str | None) -> str | None:
        """The checksum an operator's rebuild replaces, while final still has it."""
        request = self.settings.intents.rebuild_for(spec.repo, spec.pkgname, spec.version)
        return request.replaced if request is not None and listed == request.replaced else None

    def _desired_spec(self, key: RepoKey, pkgname: str) -> PkgSpec | None:
        desired = self.desired.get(key.branch)
        return desired.repos.get(key, {}).get(pkgname) if desired else None

    # --- the publish ladder ------------------------------------------------------
    def _plan_publish(
        self,
        desired: BranchDesired,
        key: RepoKey,
        specs: Mapping[str, PkgSpec],
        obs: RepoObserved,
        states: Mapping[str, PkgStatus],
    ) -> None:
        final_index = obs.final_index
        published = published_from(final_index, desired.commit)
        if not specs and final_index is None:
            self.repos.append(RepoStatus(key, RepoPhase.EMPTY))
            return
        done_states = (PkgState.PUBLISHED, PkgState.BUILT, PkgState.HELD)
        unfinished = [s for s in states.values() if s.state not in done_states]
        if unfinished:
            bad = sorted(
                s.pkgname for s in unfinished if s.state in (PkgState.FAILED, PkgState.BROKEN)
            )
            if bad:
                phase, reason = RepoPhase.BLOCKED, "blocked by " + ", ".join(bad)
            else:
                phase, reason = RepoPhase.BUILDING, f"{len(unfinished)} package(s) still to build"
            self.repos.append(RepoStatus(key, phase, reason, *published))
            return
        held = {n for n, s in states.items() if s.state is PkgState.HELD}
        rebuilt = self._rebuilt(key, specs, obs)
        target, from_wip, from_final, conflicts = publish_target(
            desired, key, specs, obs, held, rebuilt
        )
        if conflicts:
            reason = "; ".join(conflicts)
            self.repos.append(RepoStatus(key, RepoPhase.BLOCKED, reason, *published))
            return
        if final_index is not None and final_index.files == target:
            extra = sorted(set(obs.final) - set(target))
            if extra:
                self.actions.append(PruneFinal(key, tuple(extra)))
            # Published already (the same bytes, or other bytes that final keeps).
            done = sorted(n for n in obs.wip if n in final_index.files)
            if done:
                self.actions.append(PruneWip(key, tuple(done), "published"))
            if self.settings.mirror and self.observed.mirrored.get(str(key)) != final_index.sha256:
                self.actions.append(MirrorFinal(key, final_index.sha256))
            self.repos.append(RepoStatus(key, RepoPhase.PUBLISHED, "", *published))
            return
        symlink = obs.symlink_index
        if symlink is None or symlink.files != target:
            self.actions.append(
                WriteSymlinkRepo(key, tuple(from_wip), tuple(from_final), desired.commit)
            )
            self.repos.append(
                RepoStatus(key, RepoPhase.INDEXING, "writing the index to sign", *published)
            )
            return
        intent = JobIntent(JobKind.SIGN, key, "", symlink.sha256)
        tries = self._tries(intent)
        if tries.live is not None:
            phase, reason = RepoPhase.SIGNING, "waiting for the sign job"
        elif tries.success is not None:
            replace = tuple(
                n
                for n, c in sorted(target.items())
                if n in obs.final and obs.final[n].checksum != c
            )
            self.actions.append(PublishFinal(key, tries.success, symlink.sha256, replace))
            phase, reason = RepoPhase.PUBLISHING, "publishing the signed index"
        else:
            state, why, _ = (
                self._retry_or_fail(intent, tries)
                if tries.failures
                else (PkgState.QUEUED, "", None)
            )
            if state is PkgState.QUEUED:
                attempt = max((o.key.attempt for o in self.attempts.get(intent, [])), default=0) + 1
                self.actions.append(SubmitSign(JobKey(intent, attempt)))
                phase, reason = RepoPhase.SIGNING, "submitting the sign job"
            else:
                phase, reason = RepoPhase.BLOCKED, f"sign job {why}"
        self.repos.append(RepoStatus(key, phase, reason, *published))
