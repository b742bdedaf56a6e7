"""Wiring and the loop: one pass is desired -> observed -> plan -> execute -> site.

`Daemon.run_pass` is a single level-triggered pass; `converge` repeats passes
until nothing more can happen (for `run --once` and tests); `run_forever` sleeps
between passes until a trigger file, a job's wake-up, the poll interval (while
jobs run) or the resync interval. The clock is injected, so tests control time.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace

from reconciler.config.settings import BranchConfig, Config
from reconciler.desired.checkouts import Checkouts
from reconciler.desired.parsecache import ParseCache
from reconciler.desired.reader import DesiredReader
from reconciler.execute.executor import Executor, repo_keys
from reconciler.execute.repos import RepoStore, SigningKeys, remove_branch_data
from reconciler.formats.keys import (
    generate_private_key,
    load_private_key,
    load_public_key,
    write_private_key,
    write_public_key,
)
from reconciler.jobs.factory import make_job_service
from reconciler.jobs.service import JobService
from reconciler.memory.store import StateStore
from reconciler.model.names import RepoKey
from reconciler.model.observations import ObservedState, RepoObserved
from reconciler.model.packages import BranchDesired, PkgSpec
from reconciler.model.progress import Event, PkgState
from reconciler.observed.scanner import RepoRoots, RepoScanner, observe
from reconciler.operator.interventions import Pushes, apply_operations, apply_pushes, settle
from reconciler.operator.operations import OPERATIONS, load_intents, save_intents
from reconciler.operator.triggers import Trigger, TriggerDir
from reconciler.plan.actions import CancelJob, Outcome, SubmitBuild, SubmitSign
from reconciler.plan.memo import PlanMemo, same_items
from reconciler.plan.planner import BranchOrder, Plan, PlanSettings
from reconciler.site.metrics import MetricsFormatter, PassFigures
from reconciler.site.model import BranchInfo, SiteInput, versions_from
from reconciler.site.writer import SiteWriter

log = logging.getLogger(__name__)

SpecTable = dict[tuple[RepoKey, str], PkgSpec]
Versions = dict[tuple[RepoKey, str], tuple[str, str]]


@dataclass(frozen=True, slots=True)
class PassResult:
    plan: Plan
    outcomes: list[Outcome]
    live_jobs: int
    job_service_error: str = ""

    @property
    def progressed(self) -> bool:
        """Something changed on disk or in the job service. A cancel request alone
        does not count: the job may take its time to stop (or ignore it)."""
        return any(o.ok and not isinstance(o.action, CancelJob) for o in self.outcomes)

    @property
    def all_published(self) -> bool:
        return all(p.state is PkgState.PUBLISHED for p in self.plan.packages) and all(
            r.phase in ("published", "empty") for r in self.plan.repos
        )


def ensure_keys(config: Config) -> None:
    """Create the WIP key pair (and, for local use, the final one) when missing."""
    keys = config.keys
    pairs = [(keys.wip_private, keys.wip_public)]
    if keys.generate_missing:
        pairs.append((keys.final_private, keys.final_public))
    for private, public in pairs:
        if private.exists():
            continue
        log.info("generating RSA key %s", private)
        key = generate_private_key(2048)
        write_private_key(private, key)
        write_public_key(public, key)


@dataclass
class Daemon:
    config: Config
    clock: Callable[[], float] = time.time
    jobs: JobService | None = None
    triggers: TriggerDir = field(init=False)
    desired_reader: DesiredReader = field(init=False)
    scanner: RepoScanner = field(init=False)
    store: RepoStore = field(init=False)
    state: StateStore = field(init=False)
    site: SiteWriter = field(init=False)
    executor: Executor = field(init=False)
    passes: int = 0

    def __post_init__(self) -> None:
        cfg = self.config
        for directory in (cfg.paths.data, cfg.paths.html_out):
            directory.mkdir(parents=True, exist_ok=True)
        ensure_keys(cfg)
        os.chmod(cfg.keys.wip_private, 0o600)
        self.triggers = TriggerDir(cfg.paths.triggers)
        if self.jobs is None:
            self.jobs = make_job_service(cfg, self.clock)
        parses = ParseCache(cfg.paths.state)  # a restart parses nothing again
        self.desired_reader = DesiredReader(cfg.splitrepos, parses)
        roots = RepoRoots(cfg.paths.wip_repo, cfg.paths.final_repo, cfg.paths.symlink_repo)
        self.scanner = RepoScanner(roots)
        keys = SigningKeys(
            wip_private=load_private_key(cfg.keys.wip_private),
            wip_name=cfg.keys.wip_public.name,
            final_public=load_public_key(cfg.keys.final_public),
            final_name=cfg.keys.final_name,
        )
        self.store = RepoStore(roots, self.scanner, keys)
        self.state = StateStore(cfg.paths.state)
        self.plans = PlanMemo()  # a pass whose inputs did not change reuses the last plan
        self.metrics = MetricsFormatter()
        self._transitions_of: Plan | None = None  # the plan whose states the state holds
        self._versions: tuple[tuple[tuple[RepoKey, RepoObserved], ...], Versions] = ((), {})
        self.intents = load_intents(self.state.intents_path)
        self._unreachable_since: float | None = None
        self._site_error = ""
        # (ids of the desired states, their specs, the states: kept so ids stay theirs)
        self._specs_cache: tuple[
            tuple[int, ...], dict[tuple[RepoKey, str], PkgSpec], list[BranchDesired]
        ] = ((), {}, [])
        self.checkouts = Checkouts(
            cfg.branches, cfg.paths.data / "staging-pmaports", roots, cfg.splitrepos
        )
        self.site = SiteWriter(cfg.paths.html_out)
        self.executor = Executor(cfg, self.jobs, self.store, self.state, self.clock, {})
        self.settings = PlanSettings(
            branches=(),
            splitrepos=cfg.splitrepos,
            max_parallel=cfg.jobs.max_parallel,
            max_tries=cfg.retries.max_tries,
            backoff_seconds=cfg.retries.backoff_seconds,
            backoff_max_seconds=cfg.retries.backoff_max_seconds,
            mirror=cfg.mirror.enabled,
        )

    def read_desired(self, fresh: Collection[str] | None = None) -> dict[str, BranchDesired]:
        """Every branch's desired state. Trees are walked again when they are plain
        directories, named in `fresh`, or `fresh` is None (all); a git checkout whose
        HEAD and index did not move is not."""
        return {
            b.name: self.desired_reader.read_branch(
                b, trust_git=fresh is not None and b.name not in fresh
            )
            for b in self.branches()
        }

    def branches(self) -> tuple[BranchConfig, ...]:
        """The configured branches, then the staging branches found on their remotes."""
        return (*self.config.branches, *self.checkouts.staging)

    def run_pass(self, *, full: bool = False) -> PassResult:
        """One level-triggered pass."""
        assert self.jobs is not None
        self.passes += 1
        started = time.monotonic()
        triggers = self.triggers.drain()
        pushed = {str(t.data["branch"]) for t in triggers if t.type == "push"}
        pushes, found = self.checkouts.sync(pushed, full, self.clock())
        self.state.append_events(found)
        branches = self.branches()
        desired = self.read_desired(None if full else pushed)
        self.executor.commits = {name: d.commit for name, d in desired.items()}
        self.executor.checkouts = {b.name: b.pmaports for b in self.checkouts.staging}
        observed = observe(
            self.scanner,
            repo_keys(self.config, self.checkouts.staging),
            self.jobs,
            self.state.rejected,
            full=full,
            mirrored=self.state.mirrored,
        )
        now = self.clock()
        self._intervene(triggers, pushes, observed, desired, now)
        settings = replace(
            self.settings,
            branches=tuple(
                BranchOrder(b.name, b.arches, b.ignore_errors, b.origin) for b in branches
            ),
            intents=self.intents,
        )
        result = self.plans.plan(desired, observed, settings, now)
        actions = list(result.actions)
        if observed.job_service_error:  # never submit blind: the service may hold the job
            actions = [a for a in actions if not isinstance(a, SubmitBuild | SubmitSign)]
        outcomes = self.executor.apply(actions)
        problems = [o.message for o in outcomes if not o.ok]
        try:
            events = []
            if result is not self._transitions_of:  # the same plan: no state changed
                events = self.state.transitions(result.packages, result.repos, now)
                self.state.save()
                self._transitions_of = result
        except OSError as exc:  # a full disk: the state is a cache, carry on
            log.error("cannot write the state: %s", exc)
            events = []
            problems.append(f"cannot write the state: {exc}")
        for event in events:
            log.info("%s %s %s: %s", event.repo, event.pkgname, event.kind, event.message)
        if self._site_error:
            problems.append(self._site_error)
        site = self.config.site
        site_input = SiteInput(
            title=site.title,
            url=site.url,
            branches=tuple(
                BranchInfo(b.name, b.arches, b.ignore_errors, desired[b.name].commit)
                for b in branches
            ),
            plan=result,
            specs=self._specs(desired),
            versions=self._versions_of(observed),
            jobs=tuple(observed.jobs.values()),
            events=self.state.recent_events(),
            max_parallel=self.config.jobs.max_parallel,
            job_service_error=self._unreachable(observed.job_service_error, now),
            monitoring_max=site.monitoring_max_failures,
            monitoring_footer=site.monitoring_footer,
            problems=tuple(problems),
        )
        try:
            self.site.copy_logs([o for o in observed.jobs.values() if not o.status.is_live])
            self.site.render(site_input, now)
            self._site_error = ""
        except OSError as exc:  # the previous pages stay; say so on the next good render
            stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
            self._site_error = f"the site could not be written at {stamp}: {exc}"
            log.error("%s", self._site_error)
        live = sum(1 for o in observed.jobs.values() if o.status.is_live) + sum(
            1 for a in actions if isinstance(a, SubmitBuild | SubmitSign)
        )
        figures = PassFigures(
            now=self.clock(),
            duration_seconds=time.monotonic() - started,
            live_jobs=live,
            job_service_up=not observed.job_service_error,
            actions=len(outcomes),
            failed_actions=sum(1 for o in outcomes if not o.ok),
            site_files_written=self.site.written,
            site_ok=not self._site_error,
            apks_opened=self.scanner.apks_opened,
        )
        try:
            self.site.write_metrics(self.metrics.format(result, figures))
        except OSError as exc:
            log.error("cannot write metrics: %s", exc)
        if full and not gc.get_freeze_count():
            # The caches the first full pass built live as long as the daemon: keep
            # them out of the collector's scans. Only once: whatever is frozen is
            # never collected, so later passes' garbage must stay collectable.
            gc.freeze()
        return PassResult(result, outcomes, live, observed.job_service_error)

    def _versions_of(self, observed: ObservedState) -> Versions:
        """versions_from(observed), made again only when a repository's observation
        is another object (the scanner keeps the object while nothing changed)."""
        if not same_items(self._versions[0], observed.repos):
            self._versions = (tuple(observed.repos.items()), versions_from(observed))
        return self._versions[1]

    def _specs(self, desired: dict[str, BranchDesired]) -> SpecTable:
        """Every spec by (repo, name); rebuilt only when a branch's desired state is
        a new object (the reader returns the same one for an unchanged tree)."""
        identity = tuple(id(d) for d in desired.values())
        if self._specs_cache[0] != identity:
            specs = {
                (k, n): s
                for d in desired.values()
                for k, r in d.repos.items()
                for n, s in r.items()
            }
            self._specs_cache = (identity, specs, list(desired.values()))
        return self._specs_cache[1]

    def _unreachable(self, error: str, now: float) -> str:
        """ "since T: error" while the job service cannot be asked, "" otherwise."""
        if not error:
            self._unreachable_since = None
            return ""
        if self._unreachable_since is None:
            self._unreachable_since = now
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self._unreachable_since))
        return f"since {since}: {error}"

    def _intervene(
        self,
        triggers: list[Trigger],
        pushes: Pushes,
        observed: ObservedState,
        desired: dict[str, BranchDesired],
        now: float,
    ) -> None:
        """Pushes and operator operations change the durable intents; finished
        requests leave them; branch data an operator removes is deleted."""
        before = self.intents
        events: list[Event] = []
        operations = [t.data for t in triggers if t.type in OPERATIONS]
        if operations:
            done = apply_operations(self.intents, operations, observed, desired, now)
            self.intents, events = done.intents, done.events
            for branch in done.remove_branches:
                remove_branch_data(self.scanner.roots, branch, self.config.splitrepos)
        if pushes:
            done = apply_pushes(self.intents, pushes, desired, observed.jobs, now)
            self.intents, events = done.intents, events + done.events
        self.intents = settle(self.intents, observed, desired)
        if self.intents != before:
            save_intents(self.state.intents_path, self.intents)
        if events:
            self.state.append_events(events)

    def converge(self, max_seconds: float | None = None) -> PassResult:
        """Run passes until nothing more can happen (no actions, no live jobs, no retry due)."""
        self.triggers.start()
        try:
            return self._converge(max_seconds)
        finally:
            self.triggers.stop()

    def _converge(self, max_seconds: float | None) -> PassResult:
        start = self.clock()
        failed_before: set[str] = set()
        result = self.run_pass(full=True)
        while True:
            if max_seconds is not None and self.clock() - start > max_seconds:
                return result
            failed_now = {repr(o.action) for o in result.outcomes if not o.ok}
            stuck = bool(failed_now) and failed_now == failed_before and not result.progressed
            failed_before = failed_now
            if (result.progressed or failed_now) and not stuck:
                result = self.run_pass()
                continue
            if result.live_jobs:
                self.triggers.wait(self.config.loop.poll_interval_seconds)
            elif result.plan.next_wakeup is not None and not stuck:
                self._sleep_until(result.plan.next_wakeup)
            else:
                return result
            result = self.run_pass()

    def _sleep_until(self, deadline: float) -> None:
        self.triggers.wait(max(deadline - self.clock(), 0) + 0.01)

    def run_forever(self) -> None:
        self.triggers.start()
        last_full = self.clock()
        result = self.run_pass(full=True)
        try:
            while True:
                if result.progressed:
                    result = self.run_pass()
                    continue
                loop = self.config.loop
                timeout = loop.resync_interval_seconds - (self.clock() - last_full)
                if result.live_jobs:
                    timeout = min(timeout, loop.poll_interval_seconds)
                if result.plan.next_wakeup is not None:
                    timeout = min(timeout, result.plan.next_wakeup - self.clock())
                if self.triggers.wait(max(timeout, 0)):
                    self.triggers.wait(loop.settle_seconds)
                full = self.clock() - last_full >= loop.resync_interval_seconds
                if full:
                    last_full = self.clock()
                try:
                    result = self.run_pass(full=full)
                except Exception:  # the per-pass boundary: log, wait, try again
                    log.exception("pass failed")
                    self.triggers.wait(loop.poll_interval_seconds)
        finally:
            self.triggers.stop()
