"""plan(): desired + observed + now -> the next actions and every package's state.

Pure: no I/O, no clock, no randomness; the same inputs always give the same plan.
Per repository (branch, splitrepo, arch), in configured order with the native arch
first, it walks the publish ladder: build what is missing (dependencies first,
retries with backoff, a global cap on running builds) -> WIP complete -> unsigned
symlink index -> sign job -> publish final -> prune. Each rung is read from disk by
`observed`, so a restart resumes from wherever things stand.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.model.jobs import JobIntent, JobKey, JobKind
from reconciler.model.names import RepoKey
from reconciler.model.observations import ObservedState, RepoObserved
from reconciler.model.packages import BranchDesired, PkgSpec
from reconciler.model.progress import PkgState, PkgStatus, RepoPhase, RepoStatus
from reconciler.plan.actions import (
    CancelJob,
    CollectBuild,
    PruneWip,
    ReindexWip,
    SeedFromOrigin,
    SubmitBuild,
)
from reconciler.plan.cycles import find_cycles
from reconciler.plan.ladder import BranchOrder, Plan, PlannerState, PlanSettings
from reconciler.plan.staging import origin_gate, origin_repo, seed_files
from reconciler.plan.target import has_origin, published_from

__all__ = ["BranchOrder", "Plan", "PlanSettings", "plan"]


@dataclass(slots=True)
class _Planner(PlannerState):
    def run(self) -> Plan:
        for key, obs in sorted(self.observed.jobs.items()):
            self.attempts.setdefault(key.intent, []).append(obs)
        live_builds = sum(
            1
            for k, o in self.observed.jobs.items()
            if k.intent.kind == JobKind.BUILD and o.status.is_live
        )
        self.slots = max(self.settings.max_parallel - live_builds, 0)
        for branch in self.settings.branches:
            desired = self.desired.get(branch.name)
            if desired is None:
                continue
            for arch in branch.arches:
                for splitrepo in ("", *self.settings.splitrepos):
                    self._plan_repo(desired, RepoKey(branch.name, splitrepo, arch), branch)
        self._cancel_superseded()
        return Plan(
            tuple(self.actions),
            tuple(sorted(self.packages, key=lambda s: (s.repo, s.pkgname))),
            tuple(self.repos),
            min(self.wakeups) if self.wakeups else None,
        )

    def _cancel_superseded(self) -> None:
        """Running builds of versions (or packages) no longer desired are cancelled."""
        for key, obs in sorted(self.observed.jobs.items()):
            intent = key.intent
            if not obs.status.is_live:
                continue
            dead = self.settings.intents.dead(key.job_id)
            if dead is not None:
                self.actions.append(CancelJob(key, f"declared dead by {dead.who}: {dead.why}"))
                continue
            if intent.kind is not JobKind.BUILD:
                continue
            if self.settings.branches and intent.repo.branch not in {
                b.name for b in self.settings.branches
            }:
                continue
            spec = self._desired_spec(intent.repo, intent.pkgname)
            if spec is None:
                self.actions.append(CancelJob(key, "no longer in pmaports"))
            elif spec.version != intent.version:
                self.actions.append(CancelJob(key, f"superseded by {spec.version}"))

    # --- one repository --------------------------------------------------------
    def _plan_repo(self, desired: BranchDesired, key: RepoKey, branch: BranchOrder) -> None:
        specs = desired.repos.get(key, {})
        obs = self._repo(key)
        if (obs.wip_index is None and obs.wip) or (
            obs.wip_index is not None
            and obs.wip_index.files != {n: i.checksum for n, i in obs.wip.items()}
        ):
            self.actions.append(ReindexWip(key))
        stale = sorted(
            name
            for name, info in obs.wip.items()
            if (spec := specs.get(info.origin or info.pkgname)) is None
            or spec.version != info.version
        )
        if stale or obs.bad_wip:
            self.actions.append(
                PruneWip(key, tuple(stale + sorted(obs.bad_wip)), "no longer desired")
            )
        states: dict[str, PkgStatus] = {}
        waiting: dict[str, list[str]] = {}
        seeds: dict[str, tuple[str, ...]] = {}
        if branch.origin:
            origin = origin_repo(key, branch.origin)
            gate = origin_gate(origin, next((r for r in self.repos if r.repo == origin), None))
            if gate is not None:
                self._hold_back(key, specs, obs, gate)
                return
            seeds = seed_files(specs, obs, self._repo(origin))
            if seeds:
                files = tuple(sorted(f for names in seeds.values() for f in names))
                self.actions.append(SeedFromOrigin(key, origin, files))
        for name, spec in sorted(specs.items()):
            if name in seeds:
                why = f"copying the build published in {branch.origin}"
                states[name] = PkgStatus(key, name, spec.version, PkgState.BUILDING, why)
                continue
            states[name] = self._plan_package(spec, obs, branch, waiting)
        for cycle in find_cycles({p: [d for d in ds if d in waiting] for p, ds in waiting.items()}):
            text = " → ".join([*cycle, cycle[0]])
            for name in cycle:
                old = states[name]
                states[name] = PkgStatus(key, name, old.version, PkgState.BROKEN, f"cycle: {text}")
        self.packages.extend(states.values())
        self._plan_publish(desired, key, specs, obs, states)

    def _hold_back(
        self, key: RepoKey, specs: Mapping[str, PkgSpec], obs: RepoObserved, why: str
    ) -> None:
        """A staging repository waits, untouched, while its origin is unpublished."""
        listed = obs.final_index.files if obs.final_index is not None else {}
        for name, spec in sorted(specs.items()):
            done = f"{name}-{spec.version}.apk" in listed
            state = PkgState.PUBLISHED if done else PkgState.WAITING
            self.packages.append(PkgStatus(key, name, spec.version, state, "" if done else why))
        published = published_from(obs.final_index, "")
        self.repos.append(RepoStatus(key, RepoPhase.BUILDING, why, *published))

    def _plan_package(
        self, spec: PkgSpec, obs: RepoObserved, branch: BranchOrder, waiting: dict[str, list[str]]
    ) -> PkgStatus:
        key = spec.repo
        filename = f"{spec.pkgname}-{spec.version}.apk"

        def status(state: PkgState, reason: str = "", **kw: object) -> PkgStatus:
            return PkgStatus(key, spec.pkgname, spec.version, state, reason, **kw)  # type: ignore[arg-type]

        listed = obs.final_index.files.get(filename) if obs.final_index is not None else None
        replaced = self._rebuild_pending(spec, listed)
        if listed is not None and replaced is None:
            return status(PkgState.PUBLISHED)
        held = self._held(key, spec.pkgname, ())
        if held is not None:
            return status(PkgState.HELD, held)
        in_wip = obs.wip.get(filename)
        if has_origin(in_wip, spec.pkgname) and (in_wip and in_wip.checksum) != replaced:
            return status(PkgState.BUILT, "in WIP, waiting for the repository to publish")
        intent = JobIntent(JobKind.BUILD, key, spec.pkgname, spec.version)
        tries = self._tries(intent)
        cap = self.settings.max_tries
        common = {"tries": tries.failures, "max_tries": cap}
        if tries.live is not None:
            return status(
                PkgState.BUILDING,
                f"building, try {tries.live.key.attempt}/{cap}",
                job_id=tries.live.key.job_id,
                **common,
            )
        if tries.success is not None:
            self.actions.append(CollectBuild(tries.success, spec))
            return status(
                PkgState.BUILDING,
                "build finished, collecting its packages",
                job_id=tries.success.key.job_id,
                **common,
            )
        last_job = tries.last_failure.key.job_id if tries.last_failure else None
        reason = ""
        if tries.failures:
            state, reason, due = self._retry_or_fail(intent, tries)
            if state is not PkgState.QUEUED:
                return status(state, reason, job_id=last_job, next_try_at=due, **common)
        missing = self._missing_deps(spec, branch)
        if missing:
            waiting[spec.pkgname] = [m.split(" ")[0] for m in missing]
            return status(
                PkgState.WAITING, "waiting for " + ", ".join(missing), job_id=last_job, **common
            )
        if self.slots <= 0:
            return status(
                PkgState.QUEUED,
                reason or "ready, waiting for a free job slot",
                job_id=last_job,
                **common,
            )
        self.slots -= 1
        attempt = max((o.key.attempt for o in self.attempts.get(intent, [])), default=0) + 1
        self.actions.append(self._submit(spec, JobKey(intent, attempt), branch))
        return status(PkgState.BUILDING, f"starting, try {attempt}/{cap}", **common)

    def _held(self, key: RepoKey, pkgname: str, path: tuple[str, ...]) -> str | None:
        """Why a package is held: by an operator, or because it needs (at a version
        not yet available) a package that is held. None when it is not held."""
        memo_key = (key, pkgname)
        if memo_key in self.held:
            return self.held[memo_key]
        reason = None
        hold = self.settings.intents.hold_for(key, pkgname, self.now)
        if hold is not None:
            since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(hold.since))
            reason = f"held by {hold.who} since {since} UTC: {hold.why}"
        spec = self._desired_spec(key, pkgname)
        if reason is None and spec is not None and pkgname not in path:
            for dep in spec.build_deps:
                dep_spec = self._desired_spec(dep.repo, dep.pkgname)
                if dep_spec is None or self._available(
                    dep.repo, dep.pkgname, dep_spec.version, final_only=False
                ):
                    continue
                if self._held(dep.repo, dep.pkgname, (*path, pkgname)) is not None:
                    reason = f"held: needs {dep.pkgname}, which is held"
                    break
        self.held[memo_key] = reason
        return reason

    def _missing_deps(self, spec: PkgSpec, branch: BranchOrder) -> list[str]:
        missing: list[str] = []
        desired = self.desired.get(spec.repo.branch)
        broken = {b.pkgname for b in desired.broken} if desired else set()
        for dep in spec.build_deps:
            dep_spec = self._desired_spec(dep.repo, dep.pkgname)
            if dep_spec is None:
                if dep.pkgname in broken:
                    missing.append(f"{dep.pkgname} (its APKBUILD is broken)")
            elif not self._available(dep.repo, dep.pkgname, dep_spec.version, final_only=False):
                missing.append(dep.pkgname)
        native = RepoKey(spec.repo.branch, "", branch.arches[0])
        for name in spec.native_deps:
            dep_spec = self._desired_spec(native, name)
            if dep_spec is not None and not self._available(
                native, name, dep_spec.version, final_only=True
            ):
                missing.append(f"{name} (published for {native.arch})")
        return missing

    def _submit(self, spec: PkgSpec, job: JobKey, branch: BranchOrder) -> SubmitBuild:
        repos = [spec.repo, *sorted({d.repo for d in spec.build_deps if d.repo != spec.repo})]
        required: list[tuple[str, str]] = []
        for dep in spec.build_deps:
            dep_spec = self._desired_spec(dep.repo, dep.pkgname)
            if dep_spec is not None:
                required.append((dep.pkgname, dep_spec.version))
        native = RepoKey(spec.repo.branch, "", branch.arches[0])
        for name in spec.native_deps:
            dep_spec = self._desired_spec(native, name)
            if dep_spec is not None:
                required.append((name, dep_spec.version))
                if native not in repos:
                    repos.append(native)
        return SubmitBuild(job, spec, tuple(repos), tuple(required))


def plan(
    desired: Mapping[str, BranchDesired],
    observed: ObservedState,
    settings: PlanSettings,
    now: float,
) -> Plan:
    """The next actions and every package's state. Pure."""
    return _Planner(desired, observed, settings, now).run()
