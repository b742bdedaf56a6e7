"""plan(): desired + observed + now -> the next actions and every package's state.

Pure: no I/O, no clock, no randomness; the same inputs always give the same plan.
Per repository (branch, splitrepo, arch), in configured order with the native arch
first, it walks the ladder: build what is missing (dependencies first, retries
with backoff, a global cap on running builds) -> WIP complete -> the publish
rungs (`publishing`). It also decides what nothing else may: which running jobs
to cancel, which branch data to remove, and that nothing is submitted while the
job service cannot be asked (it may hold the job already).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from reconciler.model.jobs import JobIntent, JobKey, JobKind
from reconciler.model.names import RepoKey
from reconciler.model.observations import ObservedState, RepoObserved
from reconciler.model.packages import BranchDesired, PkgSpec
from reconciler.model.progress import (
    ImageStatus,
    PkgState,
    PkgStatus,
    RepoPhase,
    RepoStatus,
    need_blocks,
)
from reconciler.plan.actions import (
    Action,
    BuildIndex,
    CancelJob,
    CollectBuild,
    PruneWip,
    ReindexWip,
    RemoveBranch,
    SeedFromOrigin,
    SubmitBuild,
)
from reconciler.plan.cycles import find_cycles
from reconciler.plan.images import plan_images
from reconciler.plan.inputs import BranchOrder, PlanSettings
from reconciler.plan.next_publish import has_origin, published_from, rebuild_pending
from reconciler.plan.publishing import PublishLadder
from reconciler.plan.staging import origin_gate, origin_repo, seed_files
from reconciler.plan.tries import Tries


@dataclass(frozen=True, slots=True)
class _Ready:
    """A package that can start now: since when, and where the walk met it."""

    since: float
    order: int
    spec: PkgSpec
    branch: BranchOrder
    status: PkgStatus  # queued; it becomes "starting" if a slot takes it


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[Action, ...]
    packages: tuple[PkgStatus, ...]
    repos: tuple[RepoStatus, ...]
    # The earliest time a scheduled retry becomes due (for the loop's sleep).
    next_wakeup: float | None = None
    # The packages ready to build but waiting for a job slot, in the order the
    # plan submits them as slots free.
    queue: tuple[PkgStatus, ...] = ()
    # Every desired image: the current slot's, and those an operator asked for now.
    images: tuple[ImageStatus, ...] = ()


def plan(
    desired: Mapping[str, BranchDesired],
    observed: ObservedState,
    settings: PlanSettings,
    now: float,
) -> Plan:
    """The next actions and every package's state. Pure."""
    return Planner(desired, observed, settings, now).run()


class Planner:
    """One planning run: walks every repository once and collects the result."""

    def __init__(
        self,
        desired: Mapping[str, BranchDesired],
        observed: ObservedState,
        settings: PlanSettings,
        now: float,
    ) -> None:
        self.desired = desired
        self.observed = observed
        self.settings = settings
        self.now = now
        self.tries = Tries(observed, settings, now)
        self.ladder = PublishLadder(observed, settings, self.tries, now)
        self.actions: list[Action] = []
        self.packages: list[PkgStatus] = []
        self.repos: list[RepoStatus] = []
        self.held: dict[tuple[RepoKey, str], str | None] = {}
        # Every package state planned so far (repositories are planned native arch
        # first, the main repository before split ones), and those that can never
        # build as things stand (waiting on failed or broken packages).
        self.states: dict[tuple[RepoKey, str], PkgStatus] = {}
        self.stuck: set[tuple[RepoKey, str]] = set()
        # The packages ready to build, in the order the walk met them.
        self.ready: list[_Ready] = []
        live_builds = sum(  # image jobs take job slots too
            1
            for k, o in observed.jobs.items()
            if k.intent.kind in (JobKind.BUILD, JobKind.IMAGE) and o.status.is_live
        )
        self.slots = max(settings.max_parallel - live_builds, 0)

    def run(self) -> Plan:
        self._remove_branches()
        for branch in self.settings.branches:
            desired = self.desired.get(branch.name)
            if desired is None:
                continue
            for arch in branch.arches:
                for splitrepo in ("", *self.settings.splitrepos):
                    self._plan_repo(desired, RepoKey(branch.name, splitrepo, arch), branch)
        queue = self._start_ready()
        self._cancel_superseded()
        images = plan_images(
            self.observed,
            self.settings,
            self.tries,
            self.repos,
            free_slots=max(self.slots - len(self.ready), 0),
            builds_waiting=bool(queue),
            now=self.now,
        )
        self.actions.extend(images.actions)
        wakeups = self.tries.wakeups
        return Plan(
            tuple(self.actions),
            tuple(sorted(self.packages, key=lambda s: (s.repo, s.pkgname))),
            tuple(self.repos),
            min(wakeups) if wakeups else None,
            queue,
            tuple(images.statuses),
        )

    def _start_ready(self) -> tuple[PkgStatus, ...]:
        """Start the ready packages the free slots allow, first come first served:
        the longest ready first (since its last dependency was built, its native
        ones published, or its next try fell due), in walk order (branches as
        configured, native arch first, main repository first, by name) among
        equals. What is left is the queue, in the order it will start: a package
        that becomes ready later only ever joins its end. The repositories'
        phases do not change: a queued package and a starting one are both
        still to build."""
        ordered = sorted(self.ready, key=lambda r: (r.since, r.order))
        cap = self.settings.max_tries
        started: dict[tuple[RepoKey, str], PkgStatus] = {}
        for ready in ordered[: self.slots]:
            spec = ready.spec
            intent = JobIntent(JobKind.BUILD, spec.repo, spec.pkgname, spec.version)
            attempt = self.tries.next_attempt(intent)
            self.actions.append(self._submit(spec, JobKey(intent, attempt), ready.branch))
            why = f"starting, try {attempt} of {cap}"
            started[(spec.repo, spec.pkgname)] = replace(
                ready.status, state=PkgState.BUILDING, reason=why, job_id=None
            )
        if started:
            self.packages = [started.get((s.repo, s.pkgname), s) for s in self.packages]
        return tuple(r.status for r in ordered[self.slots :])

    def _ready_since(self, spec: PkgSpec, branch: BranchOrder) -> float:
        """Since when a package with everything it needs has been ready, as far as
        the jobs tell: when the last build of a dependency ended, or the publish of
        a native one (0 when none of them was built by a job known here)."""
        since = 0.0
        for dep in spec.build_deps:
            dep_spec = self._desired_spec(dep.repo, dep.pkgname)
            if dep_spec is not None:
                intent = JobIntent(JobKind.BUILD, dep.repo, dep.pkgname, dep_spec.version)
                since = max(since, self.tries.succeeded_at(intent))
        native = RepoKey(spec.repo.branch, "", branch.arches[0])
        for name in spec.native_deps:
            dep_spec = self._desired_spec(native, name)
            if dep_spec is not None:
                intent = JobIntent(JobKind.BUILD, native, name, dep_spec.version)
                built = self.tries.succeeded_at(intent)
                published = self.tries.signed_after(native, built) if built else 0.0
                since = max(since, built, published)
        return since

    def _remove_branches(self) -> None:
        """What operators or the remote asked to remove, unless the branch is built."""
        built = {b.name for b in self.settings.branches}
        for removal in self.settings.removals:
            if removal.branch not in built:
                self.actions.append(
                    RemoveBranch(
                        removal.branch, self.settings.splitrepos, removal.checkout, removal.why
                    )
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
    def _repo(self, key: RepoKey) -> RepoObserved:
        return self.observed.repos.get(key) or RepoObserved()

    def _plan_repo(self, desired: BranchDesired, key: RepoKey, branch: BranchOrder) -> None:
        specs = desired.repos.get(key, {})
        obs = self._repo(key)
        self._tidy_wip(key, specs, obs)
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
        states: dict[str, PkgStatus] = {}
        waiting: dict[str, list[tuple[RepoKey, str]]] = {}
        for name, spec in sorted(specs.items()):
            if name in seeds:
                why = f"copying the build published in {branch.origin}"
                states[name] = PkgStatus(key, name, spec.version, PkgState.BUILDING, why)
                continue
            states[name] = self._plan_package(spec, obs, branch, waiting)
        local = {p: [d for r, d in ds if r == key and d in waiting] for p, ds in waiting.items()}
        for cycle in find_cycles(local):
            text = " → ".join([*cycle, cycle[0]])
            for name in cycle:
                old = states[name]
                states[name] = PkgStatus(key, name, old.version, PkgState.BROKEN, f"cycle: {text}")
        for broken in desired.broken:
            if broken.pkgname not in states and _splitrepo_of(broken.path) == key.splitrepo:
                states[broken.pkgname] = PkgStatus(
                    key, broken.pkgname, broken.version, PkgState.BROKEN, broken.reason
                )
        self.states.update({(key, n): s for n, s in states.items()})
        stuck = self._stuck(key, states, waiting)
        self.stuck.update((key, n) for n in stuck)
        # Now that every package here has a state, say what each waits for again:
        # one planned before a dependency that then failed, broke or got stuck
        # reads "blocked by …", not "needs …".
        for name in waiting:
            if states[name].state is PkgState.WAITING:
                needs = tuple(p for _, _, p in self._missing_deps(specs[name], branch))
                states[name] = replace(states[name], reason=_needs_reason(needs), needs=needs)
                self.states[(key, name)] = states[name]
        self.packages.extend(states.values())
        actions, status = self.ladder.rungs(desired, key, specs, obs, states, waiting, stuck)
        self.actions.extend(actions)
        self.repos.append(status)

    def _stuck(
        self,
        key: RepoKey,
        states: Mapping[str, PkgStatus],
        waiting: Mapping[str, list[tuple[RepoKey, str]]],
    ) -> set[str]:
        """The waiting packages of `key` that can never build as things stand: each
        needs, directly or through other waiting packages, something failed or
        broken (one whose APKBUILD is unusable has no status of its own here
        when it is in another repository: it counts as broken)."""
        dead = (PkgState.FAILED, PkgState.BROKEN)

        def is_dead(repo: RepoKey, name: str) -> bool:
            found = self.states.get((repo, name))
            if found is None:
                return self._desired_spec(repo, name) is None  # broken, or gone
            return found.state in dead or (repo, name) in stuck_keys

        stuck_keys: set[tuple[RepoKey, str]] = set(self.stuck)
        changed = True
        while changed:
            changed = False
            for name, needs in waiting.items():
                if (key, name) in stuck_keys or states[name].state is not PkgState.WAITING:
                    continue
                if needs and all(is_dead(repo, dep) for repo, dep in needs):
                    stuck_keys.add((key, name))
                    changed = True
        return {n for r, n in stuck_keys if r == key}

    def _tidy_wip(self, key: RepoKey, specs: Mapping[str, PkgSpec], obs: RepoObserved) -> None:
        """Index WIP again when its index does not list exactly its apks; remove
        apks of versions no longer desired and unreadable files."""
        if (obs.wip_index is None and obs.wip) or (
            obs.wip_index is not None
            and obs.wip_index.files != {n: i.checksum for n, i in obs.wip.items()}
        ):
            self.actions.append(ReindexWip(key, tuple(obs.wip.values())))
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

    # --- one package -------------------------------------------------------------
    def _plan_package(
        self,
        spec: PkgSpec,
        obs: RepoObserved,
        branch: BranchOrder,
        waiting: dict[str, list[tuple[RepoKey, str]]],
    ) -> PkgStatus:
        """Where one package stands, and the action that moves it on (collect its
        build, or start one when its dependencies are there and a slot is free).
        Long because it is the build ladder's one decision, rung by rung."""
        key = spec.repo
        filename = f"{spec.pkgname}-{spec.version}.apk"

        def status(state: PkgState, reason: str = "", **kw: object) -> PkgStatus:
            return PkgStatus(key, spec.pkgname, spec.version, state, reason, **kw)  # type: ignore[arg-type]

        listed = obs.final_index.files.get(filename) if obs.final_index is not None else None
        replaced = rebuild_pending(self.settings.intents, spec, listed)
        hold = self.settings.intents.hold_for(key, spec.pkgname, self.now)
        if hold is not None:  # an operator's hold shows whatever final publishes
            return status(PkgState.HELD, _hold_reason(hold.who, hold.since, hold.why))
        if listed is not None and replaced is None:
            return status(PkgState.PUBLISHED)
        held = self._held(key, spec.pkgname, ())
        if held is not None:
            return status(PkgState.HELD, held)
        in_wip = obs.wip.get(filename)
        if has_origin(in_wip, spec.pkgname) and (in_wip and in_wip.checksum) != replaced:
            return status(PkgState.BUILT, "in WIP, waiting for the repository to publish")
        intent = JobIntent(JobKind.BUILD, key, spec.pkgname, spec.version)
        tries = self.tries.of(intent)
        cap = self.settings.max_tries
        common: dict[str, object] = {"tries": tries.failures, "max_tries": cap}
        if tries.live is not None:
            return status(
                PkgState.BUILDING,
                f"try {tries.live.key.attempt} of {cap}",
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
        common["excerpt"] = tries.excerpt
        reason = ""
        ready_since = 0.0
        if tries.failures:
            state, reason, due = self.tries.retry_or_fail(tries)
            if state is not PkgState.QUEUED:
                return status(state, reason, job_id=last_job, next_try_at=due, **common)
            ready_since = due or 0.0
        missing = self._missing_deps(spec, branch)
        if missing:
            waiting[spec.pkgname] = [(repo, name) for repo, name, _ in missing]
            needs = tuple(phrase for _, _, phrase in missing)
            return status(
                PkgState.WAITING, _needs_reason(needs), job_id=last_job, needs=needs, **common
            )
        if self.observed.job_service_error:  # never submit blind: it may hold the job
            why = "ready, waiting for the job service to answer"
            return status(PkgState.QUEUED, why, job_id=last_job, **common)
        paused = self.settings.paused(key, self.now)
        if paused:
            return status(PkgState.QUEUED, f"ready; {paused}", job_id=last_job, **common)
        queued = status(
            PkgState.QUEUED,
            reason or "ready, waiting for a free job slot",
            job_id=last_job,
            **common,
        )
        ready_since = max(ready_since, self._ready_since(spec, branch))
        self.ready.append(_Ready(ready_since, len(self.ready), spec, branch, queued))
        return queued

    def _held(self, key: RepoKey, pkgname: str, path: tuple[str, ...]) -> str | None:
        """Why a package is held: by an operator, or because it needs (at a version
        not yet available) a package that is held. None when it is not held."""
        memo_key = (key, pkgname)
        if memo_key in self.held:
            return self.held[memo_key]
        reason = None
        hold = self.settings.intents.hold_for(key, pkgname, self.now)
        if hold is not None:
            reason = _hold_reason(hold.who, hold.since, hold.why)
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

    def _desired_spec(self, key: RepoKey, pkgname: str) -> PkgSpec | None:
        desired = self.desired.get(key.branch)
        return desired.repos.get(key, {}).get(pkgname) if desired else None

    def _available(self, key: RepoKey, pkgname: str, version: str, *, final_only: bool) -> bool:
        """Listed at `version` by the repository's index(es) that builds read."""
        obs = self._repo(key)
        name = f"{pkgname}-{version}.apk"
        if obs.final_index is not None and name in obs.final_index.files:
            return True
        return not final_only and obs.wip_index is not None and name in obs.wip_index.files

    def _missing_deps(self, spec: PkgSpec, branch: BranchOrder) -> list[tuple[RepoKey, str, str]]:
        """What a package waits for: (repository, name, requirement) per dependency
        not yet available at its desired version. A requirement names a package
        that is on its way ("foo"), one that never builds as things stand ("foo
        (failed)", "foo (broken)", "foo (blocked)" when it waits for such a one,
        "foo (its APKBUILD is broken)"), or a cross build's native package ("foo
        published for x86_64")."""
        missing: list[tuple[RepoKey, str, str]] = []
        desired = self.desired.get(spec.repo.branch)
        broken = {b.pkgname for b in desired.broken} if desired else set()
        for dep in spec.build_deps:
            dep_spec = self._desired_spec(dep.repo, dep.pkgname)
            if dep_spec is None:
                if dep.pkgname in broken:
                    phrase = f"{dep.pkgname} (its APKBUILD is broken)"
                    missing.append((dep.repo, dep.pkgname, phrase))
            elif not self._available(dep.repo, dep.pkgname, dep_spec.version, final_only=False):
                missing.append((dep.repo, dep.pkgname, self._requirement(dep.repo, dep.pkgname)))
        native = RepoKey(spec.repo.branch, "", branch.arches[0])
        for name in spec.native_deps:
            dep_spec = self._desired_spec(native, name)
            if dep_spec is not None and not self._available(
                native, name, dep_spec.version, final_only=True
            ):
                missing.append((native, name, f"{name} published for {native.arch}"))
        return missing

    def _requirement(self, repo: RepoKey, name: str) -> str:
        """A dependency not yet there, with why it never comes when it doesn't."""
        found = self.states.get((repo, name))
        if found is not None and found.state in (PkgState.FAILED, PkgState.BROKEN):
            return f"{name} ({found.state})"
        if (repo, name) in self.stuck:
            return f"{name} (blocked)"
        return name

    def _submit(self, spec: PkgSpec, job: JobKey, branch: BranchOrder) -> SubmitBuild:
        """The build with everything its job needs: the indexes it may read (the
        package's repository, then those of its dependencies, then native final
        for what a cross build needs), the versions it must find there, and the
        commit and checkout it builds from."""
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
        indexes: list[BuildIndex] = []
        for repo in repos:
            obs = self._repo(repo)
            for final, index in ((False, obs.wip_index), (True, obs.final_index)):
                present = index is not None
                indexes.append(BuildIndex(repo, final, present, index.signer if index else ""))
        commit = self.desired[spec.repo.branch].commit
        return SubmitBuild(job, spec, tuple(indexes), tuple(required), commit, branch.pmaports)


def _needs_reason(needs: tuple[str, ...]) -> str:
    """A waiting package's reason: what blocks it for good first ("blocked by foo
    (failed)"), then what it needs that is on its way ("needs bar, baz")."""
    never = [n for n in needs if need_blocks(n)]
    coming = [n for n in needs if not need_blocks(n)]
    parts = []
    if never:
        parts.append("blocked by " + ", ".join(never))
    if coming:
        parts.append("needs " + ", ".join(coming))
    return "; ".join(parts)


def _hold_reason(who: str, since: float, why: str) -> str:
    return f"held by {who} since {time.strftime('%Y-%m-%d %H:%M', time.gmtime(since))} UTC: {why}"


def _splitrepo_of(path: str) -> str:
    """The split repository a pmaports directory publishes into ("" for the main one)."""
    parts = path.split("/")
    return parts[1] if parts[0] == "extra-repos" and len(parts) >= 3 else ""
