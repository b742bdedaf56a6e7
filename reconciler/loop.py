"""Wiring and the loop: one pass is look -> intervene -> plan -> execute -> record -> show.

`Daemon` builds every part once from the configuration. `run_pass` is one
level-triggered pass; `converge` repeats passes until nothing more can happen
(for `run --once` and tests); `run_forever` sleeps between passes until a trigger
file, a job's wake-up, the poll interval (while jobs run) or the resync
interval (waiting `loop.settle_seconds` more after a request, not after a job's
end). In both, a pass that another follows soon may leave its show to that one:
the site and the heartbeat are written once per settled world, and about once a
poll interval while jobs come and go, not for every step of every job (see
`run_pass`). The clock is injected, so tests control time. Data flows one way:
nothing a later step does changes what an earlier step of the same pass saw.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.collector import collector_paused
from reconciler.config.branches import BranchConfig
from reconciler.config.settings import Config
from reconciler.desired.checkouts import Checkouts, Synced
from reconciler.desired.images import desired_images, next_slot_start, slot_start
from reconciler.desired.parsecache import ParseCache
from reconciler.desired.reader import DesiredReader
from reconciler.execute.executor import Executor
from reconciler.execute.images import ImageStore
from reconciler.execute.repos import RepoStore, SigningKeys
from reconciler.formats.keys import KeyFileError, generate_private_key
from reconciler.fs.atomicfile import is_no_space
from reconciler.fs.durable import adopt_legacy
from reconciler.fs.keyfiles import (
    load_private_key,
    load_public_key,
    write_private_key,
    write_public_key,
)
from reconciler.hooks.tokens import STORE_FILE_NAME as TOKENS_FILE
from reconciler.jobs.factory import make_job_service
from reconciler.jobs.runner import WAKE_PREFIX
from reconciler.jobs.service import JobService
from reconciler.memory.cache import Memory, image_events
from reconciler.memory.history import EventLog
from reconciler.model.images import DesiredImage
from reconciler.model.layout import RepoRoots
from reconciler.model.names import RepoKey
from reconciler.model.observations import ObservedState, RepoObserved
from reconciler.model.packages import BranchDesired, PkgSpec
from reconciler.model.progress import Event, OperationRecord, PkgState
from reconciler.observed.images import ImageScanner
from reconciler.observed.scancache import SCAN_CACHE_DIR, ScanCache
from reconciler.observed.scanner import RepoScanner, stored_branches
from reconciler.observed.snapshot import observe
from reconciler.operator.intents import BranchRemoval, Intents
from reconciler.operator.operations import RemoveBranch
from reconciler.operator.pushes import apply_pushes
from reconciler.operator.records import OperationLog
from reconciler.operator.store import INTENTS_FILE, load_intents, save_intents
from reconciler.operator.trigger_dir import TriggerDir
from reconciler.operator.triggers import Trigger
from reconciler.operator.world import World
from reconciler.plan.actions import CancelJob, Outcome, SubmitBuild, SubmitImage, SubmitSign
from reconciler.plan.inputs import BranchOrder, ImageSettings, PlanSettings
from reconciler.plan.memo import PlanMemo, same_items
from reconciler.plan.planner import Plan
from reconciler.site.images_writer import ImagesWriter
from reconciler.site.imagetree import ImageTree, build_tree
from reconciler.site.metrics import MetricsFormatter, PassFigures
from reconciler.site.model import BranchInfo, SiteInput, versions_from
from reconciler.site.writer import SiteWriter

log = logging.getLogger(__name__)

# The current slot's desired images, and the problems of the configured matrix.
DesiredImages = tuple[tuple[DesiredImage, ...], tuple[str, ...]]
# Those of one slot (its start) and the branches' trees they were made from.
ImagesMemo = tuple[float | None, tuple[BranchDesired, ...], DesiredImages]

SpecTable = dict[tuple[RepoKey, str], PkgSpec]
Versions = dict[tuple[RepoKey, str], tuple[str, str]]
STAGING_CHECKOUTS = "staging-pmaports"  # below paths.data
# What paths.state held before paths.durable existed, moved there at start.
DURABLE_FILES = (INTENTS_FILE, TOKENS_FILE)


@dataclass(frozen=True, slots=True)
class PassResult:
    plan: Plan
    outcomes: list[Outcome]
    live_jobs: int
    job_service_error: str = ""
    problems: tuple[str, ...] = ()  # what went wrong in the pass, one line each

    @property
    def progressed(self) -> bool:
        """Something changed on disk or in the job service. A cancel request alone
        does not count: the job may take its time to stop (or ignore it)."""
        return progressed(self.outcomes)

    @property
    def all_published(self) -> bool:
        return all(p.state is PkgState.PUBLISHED for p in self.plan.packages) and all(
            r.phase in ("published", "empty") for r in self.plan.repos
        )


def progressed(outcomes: list[Outcome]) -> bool:
    """Whether a pass with these outcomes changed something (see PassResult.progressed)."""
    return any(o.ok and not isinstance(o.action, CancelJob) for o in outcomes)


def _live_jobs(observed: ObservedState, outcomes: list[Outcome]) -> int:
    """Jobs running after a pass: those it saw running and those it started."""
    started = (SubmitBuild, SubmitSign, SubmitImage)
    return sum(1 for o in observed.jobs.values() if o.status.is_live) + sum(
        1 for o in outcomes if o.ok and isinstance(o.action, started)
    )


def event_line(event: Event) -> str:
    """An event as the daemon's log says it: where, what, and why when the message
    says more than the kind ("main/x86_64 foo failed: exit code 1", not
    "main/x86_64 foo published: published")."""
    subject = " ".join(part for part in (event.repo, event.pkgname) if part)
    if event.message and event.message not in (event.kind, f"repository {event.kind}"):
        return f"{subject} {event.kind}: {event.message}"
    return f"{subject} {event.kind}"


def ensure_keys(config: Config) -> None:
    """Make the WIP key pair when missing (the daemon's own), and the final pair
    only when `keys.generate_missing` (local jobs) and neither half exists. An
    existing final public key is never replaced: it is what every client trusts.
    Without one the daemon cannot check a signature and does not start."""
    keys = config.keys
    if not keys.wip_private.exists():
        _generate(keys.wip_private, keys.wip_public)
    if keys.generate_missing and not keys.final_public.exists():
        if keys.final_private.exists():  # the public half can be derived
            log.info("writing the public half of %s to %s", keys.final_private, keys.final_public)
            write_public_key(keys.final_public, load_private_key(keys.final_private))
        else:
            _generate(keys.final_private, keys.final_public)
    if not keys.final_public.exists():
        raise KeyFileError(
            f"{keys.final_public}: the final public key (keys.final_public) is missing;"
            " install the public half of the signer's key there"
        )
    if keys.generate_missing and not keys.final_private.exists():
        log.warning("%s is missing: sign jobs will fail", keys.final_private)


def _generate(private: Path, public: Path) -> None:
    log.info("generating RSA key %s", private)
    key = generate_private_key(2048)
    write_private_key(private, key)
    write_public_key(public, key)


def plan_settings(
    config: Config,
    branches: tuple[BranchConfig, ...],
    intents: Intents,
    removals: tuple[BranchRemoval, ...] = (),
    images: tuple[DesiredImage, ...] = (),
) -> PlanSettings:
    """What the plan is told besides desired and observed state."""
    return PlanSettings(
        branches=tuple(
            BranchOrder(b.name, b.arches, b.ignore_errors, b.origin, str(b.pmaports))
            for b in branches
        ),
        splitrepos=config.splitrepos,
        max_parallel=config.jobs.max_parallel,
        max_tries=config.retries.max_tries,
        backoff_seconds=config.retries.backoff_seconds,
        backoff_max_seconds=config.retries.backoff_max_seconds,
        intents=intents,
        mirror=config.mirror.enabled,
        mirror_retry_seconds=config.mirror.retry_seconds,
        removals=removals,
        images=ImageSettings(
            images,
            config.images.keep,
            config.images.max_parallel,
            config.images.min_free_bytes,
            str(config.paths.images),
            frozenset(config.images.matrix()),
        ),
    )


class Daemon:
    """Every part of the daemon, built once; passes run through them in one direction."""

    # When the site and the heartbeat were last written, and the writing a pass left
    # to a later one (see run_pass): set by passes, None before the first.
    _shown_at: float | None = None
    _pending_show: Callable[[], None] | None = None

    def __init__(
        self,
        config: Config,
        clock: Callable[[], float] = time.time,
        jobs: JobService | None = None,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        """`clock` and `wait` (sleep up to so many seconds; True when a trigger file
        arrived) are injected so that tests run on a fake clock; `jobs` defaults to
        the configured job service."""
        self.config = config
        self.clock = clock
        paths = config.paths
        for directory in (paths.data, paths.html_out):
            directory.mkdir(parents=True, exist_ok=True)
        adopt_legacy(paths.durable, paths.state, DURABLE_FILES)
        ensure_keys(config)
        self.triggers = TriggerDir(paths.triggers)
        self.wait = wait if wait is not None else self.triggers.wait
        self.jobs: JobService = jobs if jobs is not None else make_job_service(config, clock)
        # A restart parses no APKBUILD again that did not change.
        self.desired_reader = DesiredReader(
            config.splitrepos,
            ParseCache(paths.state),
            max_apkbuild_bytes=config.inputs.max_apkbuild_bytes,
        )
        self.checkouts = Checkouts(config.branches, paths.data / STAGING_CHECKOUTS)
        roots = RepoRoots(paths.wip_repo, paths.final_repo, paths.symlink_repo)
        # A restart opens only the apks and indexes that changed since.
        self.scanner = RepoScanner(roots, ScanCache(paths.state / SCAN_CACHE_DIR))
        self.image_scanner = ImageScanner(paths.images)
        self._images_memo: ImagesMemo | None = None
        wip_private = load_private_key(config.keys.wip_private)
        os.chmod(config.keys.wip_private, 0o600)  # a key, now known: readable by us only
        signing = SigningKeys(
            wip_private=wip_private,
            wip_name=config.keys.wip_public.name,
            final_public=load_public_key(config.keys.final_public),
            final_name=config.keys.final_name,
        )
        self.store = RepoStore(roots, signing)
        self.memory = Memory(paths.state)
        self.history = EventLog(paths.state)
        self.intents_path = paths.durable / INTENTS_FILE
        self.intents = load_intents(self.intents_path)
        self.operations = OperationLog(paths.durable)
        self.plans = PlanMemo()  # a pass whose inputs did not change reuses the last plan
        images = ImageStore(paths.images, paths.html_out / "logs")
        self.executor = Executor(config, self.jobs, self.store, self.memory, clock, images)
        self.site = SiteWriter(paths.html_out)
        self.images_site = ImagesWriter(paths.images, self.site.render_template)
        self.metrics = MetricsFormatter()
        self._transitions_of: Plan | None = None  # the plan whose states memory holds
        self._unreachable_since: float | None = None
        self._site_error = ""
        self._no_space: list[str] = []  # this pass's writes that found a full disk
        self._last_full_pass: float | None = None
        # Site inputs made again only when what they come from is another object.
        self._versions: tuple[tuple[tuple[RepoKey, RepoObserved], ...], Versions] = ((), {})
        self._specs: tuple[tuple[int, ...], SpecTable, list[BranchDesired]] = ((), {}, [])

    def branches(self) -> tuple[BranchConfig, ...]:
        """The configured branches, then the staging branches found on their remotes."""
        return (*self.config.branches, *self.checkouts.staging)

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

    def observe(self, *, full: bool = False) -> ObservedState:
        repos = self.config.repositories(self.checkouts.staging)
        # The tree is looked at with no device configured too: what is left of
        # removed devices stays visible (for remove-images).
        images = self.image_scanner
        return observe(self.scanner, repos, self.jobs, self.memory, full=full, images=images)

    def settings(
        self, removals: tuple[BranchRemoval, ...] = (), images: tuple[DesiredImage, ...] = ()
    ) -> PlanSettings:
        """What the plan is told besides desired and observed state."""
        return plan_settings(self.config, self.branches(), self.intents, removals, images)

    def desired_images(self, desired: Mapping[str, BranchDesired], now: float) -> DesiredImages:
        """The current slot's images and the matrix's problems; made again only when
        the slot or a branch's tree changed."""
        images = self.config.images
        if not images.enabled:
            return (), ()
        start = slot_start(images, now)
        trees = tuple(desired[name] for name in sorted(desired))
        memo = self._images_memo
        if (
            memo is not None
            and memo[0] == start
            and len(memo[1]) == len(trees)
            and all(a is b for a, b in zip(memo[1], trees, strict=True))
        ):
            return memo[2]
        made = desired_images(images, desired, now)
        self._images_memo = (start, trees, made)
        return made

    # --- one pass ----------------------------------------------------------------
    def run_pass(self, *, full: bool = False, followed: bool = False) -> PassResult:
        """One level-triggered pass (see `_run_pass`), with the cyclic collector
        paused: a pass makes many objects and no cycles worth a walk of the heap
        (the first pass after a start reads every repository: at Alpine size the
        collector took a fifth of it)."""
        with collector_paused():
            return self._run_pass(full=full, followed=followed)

    def _run_pass(self, *, full: bool, followed: bool) -> PassResult:
        """One level-triggered pass. `followed`: the caller runs the next pass at
        once when this one progresses, and within the poll interval while jobs run
        (converge, run_forever). Such a pass may leave the site and the heartbeat
        to a later pass, which shows all it did (its events are recorded now): see
        `_can_defer_show`. The site then changes about once a poll interval while
        jobs come and go, not once per step of every job."""
        started = time.monotonic()
        self._no_space = []
        if full:  # the site's "last seen": changes once per resync, not every pass
            self._last_full_pass = self.clock()
        # What arrives from here on wakes the next wait; what arrived before, this
        # pass reads (a job's wake-up comes after its status).
        self.triggers.wake.clear()
        triggers = self.triggers.drain()
        pushed = {str(t.data["branch"]) for t in triggers if t.type == "push"}
        synced = self.checkouts.sync(pushed, full, self.clock())
        self._append_events(list(synced.events))
        desired = self.read_desired(None if full else pushed)
        observed = self.observe(full=full)
        now = self.clock()
        images, image_problems = self.desired_images(desired, now)
        removals = self._intervene(triggers, synced, observed, desired, images, now)
        result = self.plans.plan(desired, observed, self.settings(removals, images), now)
        outcomes = self.executor.apply(result.actions)
        self._no_space += [
            f"{type(o.action).__name__}: {o.message}" for o in outcomes if o.no_space
        ]
        problems = [
            *image_problems,
            *(o.message for o in outcomes if not (o.ok or o.no_space)),
            *self._record(result, now),
        ]
        live = _live_jobs(observed, outcomes)
        defer = followed and self._can_defer_show(triggers, outcomes, live, problems, now)
        self._show_pass(
            defer, desired, observed, result, problems, now, images, outcomes, live, started
        )
        if full:
            try:
                self._prune(now, observed)
            except OSError as exc:  # pruning is housekeeping: the next full pass tries again
                if not is_no_space(exc):
                    raise
                self._no_space.append(f"pruning: {exc}")
        if no_space := self.scanner.persist():  # what it read, kept for a restart
            self._no_space.append(no_space)
        problems = [*self._space_problem(), *problems]
        if self._no_space:  # once per pass, however many writes failed
            log.error("%s", problems[0])
        if full and not gc.get_freeze_count():
            # The caches the first full pass built live as long as the daemon: keep
            # them out of the collector's scans. Only once: whatever is frozen is
            # never collected, so later passes' garbage must stay collectable.
            gc.freeze()
        return PassResult(result, outcomes, live, observed.job_service_error, tuple(problems))

    def _show_pass(
        self,
        defer: bool,
        desired: dict[str, BranchDesired],
        observed: ObservedState,
        result: Plan,
        problems: list[str],
        now: float,
        images: tuple[DesiredImage, ...],
        outcomes: list[Outcome],
        live: int,
        started: float,
    ) -> None:
        """Write a pass's site and heartbeat, or (`defer`) keep them for a later pass."""
        if defer:
            kept = (desired, observed, result, problems, now, images, outcomes, live, started)
            self._pending_show = functools.partial(self._show_pass, False, *kept)
            return
        self._pending_show = None
        self._show(desired, observed, result, [*self._space_problem(), *problems], now, images)
        self._heartbeat(result, outcomes, observed, live, started)
        self._shown_at = now

    def _can_defer_show(
        self,
        triggers: list[Trigger],
        outcomes: list[Outcome],
        live: int,
        problems: list[str],
        now: float,
    ) -> bool:
        """Whether a followed pass may leave the site and the heartbeat to a later
        one: that pass comes soon (this one progressed: at once; jobs run: within
        the poll interval), this one has nothing to show at once (a problem, an
        operator's request, a push), and they were written less than a poll
        interval ago. A settled world is always shown at once."""
        return (
            (progressed(outcomes) or live > 0)
            and not problems
            and all(t.type == "wake" for t in triggers)
            and not self._no_space
            and self._shown_at is not None
            and now - self._shown_at < self.config.loop.poll_interval_seconds
        )

    def _space_problem(self) -> list[str]:
        """The pass's writes that found a full file system, as one line."""
        if not self._no_space:
            return []
        more = f" (and {len(self._no_space) - 1} more)" if len(self._no_space) > 1 else ""
        return [f"cannot write, a file system is full: {self._no_space[0]}{more}"]

    def _append_events(self, events: list[Event]) -> None:
        """The event history is a record, not a decision: a full disk loses the
        lines, never the pass."""
        try:
            self.history.append(events)
        except OSError as exc:
            if not is_no_space(exc):
                raise
            self._no_space.append(f"events: {exc}")

    def _prune(self, now: float, observed: ObservedState) -> None:
        """Keep history on disk within the retention limits (on full passes)."""
        keep = self.config.retention
        day = 86400.0
        self.history.prune(now, keep.event_days * day, keep.event_max_bytes)
        wall = time.time()  # files are dated by the file system's clock
        self.triggers.prune(wall, keep.trigger_days * day, keep.trigger_max_files)
        shown = {k.job_id for k in observed.jobs}
        self.site.prune_logs(wall, keep.log_days * day, keep.log_max_bytes, shown)

    def _intervene(
        self,
        triggers: list[Trigger],
        synced: Synced,
        observed: ObservedState,
        desired: dict[str, BranchDesired],
        images: tuple[DesiredImage, ...],
        now: float,
    ) -> tuple[BranchRemoval, ...]:
        """Operations and pushes change the durable intents; requests that are done
        leave them. Returns the branch removals asked for in this pass."""
        before = self.intents
        removing = any(isinstance(t.operation, RemoveBranch) for t in triggers)
        stored = stored_branches(self.scanner.roots) if removing else frozenset()
        matrix = frozenset(self.config.images.matrix())
        world = World.of(observed, desired, now, stored, images=images, matrix=matrix)
        events: list[Event] = []
        records: list[OperationRecord] = []
        removals = list(synced.removals)
        for trigger in triggers:
            if trigger.operation is not None:
                applied = trigger.operation.apply(self.intents, world)
                self.intents = applied.intents
                events += applied.events
                removals += applied.removals
                records += [applied.record] if applied.record is not None else []
        for record in records:
            log.info(
                "%s %s by %s (%s): %s, %s",
                record.operation,
                record.target,
                record.who,
                record.why,
                record.outcome,
                record.effect,
            )
        if synced.changes:
            applied = apply_pushes(self.intents, synced.changes, world)
            self.intents = applied.intents
            events += applied.events
        self.intents = world.settle(self.intents)
        try:
            # The record first: a pass that dies after it applies the trigger
            # again (recorded twice), never leaves an operation unrecorded.
            self.operations.append(records)
            if self.intents != before:
                save_intents(self.intents_path, self.intents)
        except OSError as exc:
            # Not saved, so not applied: the triggers stay and are read again
            # next pass; nothing an operator asked is lost.
            self.intents = before
            if not is_no_space(exc):
                raise
            self._no_space.append(f"intents: {exc}")
            return ()
        self.triggers.settle(triggers)
        self._append_events(events)
        return tuple(removals)

    def _record(self, result: Plan, now: float) -> list[str]:
        """Remember every package's state and log the transitions as events (the
        same plan as last time changed no state). Returns what went wrong."""
        if result is self._transitions_of:
            return []
        try:
            events = self.memory.transitions(result.packages, result.repos, now)
            events += image_events(self.memory, result.images, now)
            self.history.append(events)
            self.memory.save()
            self._transitions_of = result
        except OSError as exc:  # the memory is a cache, carry on
            if is_no_space(exc):
                self._no_space.append(f"state: {exc}")
                return []
            log.error("cannot write the state: %s", exc)
            return [f"cannot write the state: {exc}"]
        for event in events:
            log.info("%s", event_line(event))
        return []

    def _show(
        self,
        desired: dict[str, BranchDesired],
        observed: ObservedState,
        result: Plan,
        problems: list[str],
        now: float,
        desired_images: tuple[DesiredImage, ...] = (),
    ) -> None:
        """Bring the status site (and the images tree's pages) up to date; on
        failure the previous pages stay, and the next good render says what happened."""
        if self._site_error:
            problems = [*problems, self._site_error]
        site = self.config.site
        site_input = SiteInput(
            title=site.title,
            url=site.url,
            branches=tuple(
                BranchInfo(
                    b.name, b.arches, b.ignore_errors, desired[b.name].commit, site.commit_url
                )
                for b in self.branches()
            ),
            plan=result,
            specs=self._spec_table(desired),
            versions=self._versions_of(observed),
            jobs=tuple(observed.jobs.values()),
            events=self.history.recent(),
            max_parallel=self.config.jobs.max_parallel,
            job_service_error=self._unreachable(observed.job_service_error, now),
            monitoring_max=site.monitoring_max_failures,
            monitoring_footer=site.monitoring_footer,
            problems=tuple(problems),
            operations=self.operations.recent(),
            holds=tuple(h for h in self.intents.holds if h.expires is None or now < h.expires),
            pauses=tuple(p for p in self.intents.pauses if p.expires is None or now < p.expires),
            last_pass_at=self._last_full_pass,
            stale_after_seconds=2 * self.config.loop.resync_interval_seconds,
            images_interval_seconds=self.config.images.interval_seconds,
        )
        try:
            self.site.copy_logs([o for o in observed.jobs.values() if not o.status.is_live])
            self.site.render(site_input, now)
            self._show_images(observed, desired_images)
            self._site_error = ""
        except Exception as exc:  # a page that cannot be made must not stop the pass
            stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
            self._site_error = f"the site could not be written at {stamp}: {exc}"
            if is_no_space(exc):
                self._no_space.append(f"site: {exc}")
            elif isinstance(exc, OSError):
                log.error("%s", self._site_error)
            else:  # a bug: its traceback
                log.exception("%s", self._site_error)

    def _show_images(self, observed: ObservedState, desired: tuple[DesiredImage, ...]) -> None:
        """The images tree's pages and index.json, in the site's templates and look."""
        images = self.config.images
        if not images.enabled and not observed.images:
            return
        names = {d.target.device: d.device_pretty for d in desired}

        def tree() -> ImageTree:
            job_ids = {(i.release, i.device, i.ui, i.date): i.job_id for i in observed.images}
            return build_tree(
                observed.images,
                images,
                self.config.branches,
                job_ids,
                site_url=self.config.site.url,
                site_title=self.config.site.title,
                device_names=names,
            )

        source = (observed.images, tuple(sorted(names.items())))
        self.images_site.update(source, tree, style=self.site.style)

    def _heartbeat(
        self,
        result: Plan,
        outcomes: list[Outcome],
        observed: ObservedState,
        live: int,
        started: float,
    ) -> None:
        """The metrics file, written every pass: the daemon's heartbeat."""
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
            if is_no_space(exc):
                self._no_space.append(f"metrics: {exc}")
            else:
                log.error("cannot write metrics: %s", exc)

    def _versions_of(self, observed: ObservedState) -> Versions:
        """versions_from(observed), made again only when a repository's observation
        is another object (the scanner keeps the object while nothing changed)."""
        if not same_items(self._versions[0], observed.repos):
            self._versions = (tuple(observed.repos.items()), versions_from(observed))
        return self._versions[1]

    def _spec_table(self, desired: dict[str, BranchDesired]) -> SpecTable:
        """Every spec by (repo, name); rebuilt only when a branch's desired state is
        a new object (the reader returns the same one for an unchanged tree). The
        states are kept with it so that their ids stay theirs."""
        identity = tuple(id(d) for d in desired.values())
        if self._specs[0] != identity:
            specs = {
                (k, n): s
                for d in desired.values()
                for k, r in d.repos.items()
                for n, s in r.items()
            }
            self._specs = (identity, specs, list(desired.values()))
        return self._specs[1]

    def _unreachable(self, error: str, now: float) -> str:
        """ "since T: error" while the job service cannot be asked, "" otherwise."""
        if not error:
            self._unreachable_since = None
            return ""
        if self._unreachable_since is None:
            self._unreachable_since = now
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self._unreachable_since))
        return f"since {since}: {error}"

    # --- passes over time ----------------------------------------------------------
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
        result = self.run_pass(full=True, followed=True)
        while True:
            if max_seconds is not None and self.clock() - start > max_seconds:
                if self._pending_show is not None:  # no next pass will show it
                    self._pending_show()
                return result
            failed_now = {repr(o.action) for o in result.outcomes if not o.ok}
            stuck = bool(failed_now) and failed_now == failed_before and not result.progressed
            failed_before = failed_now
            if (result.progressed or failed_now) and not stuck:
                result = self.run_pass(followed=True)
                continue
            if result.live_jobs:
                self.wait(self.config.loop.poll_interval_seconds)
            elif result.plan.next_wakeup is not None and not stuck:
                self.wait(max(result.plan.next_wakeup - self.clock(), 0) + 0.01)
            else:
                return result
            result = self.run_pass(followed=True)

    def _burst_may_follow(self) -> bool:
        """Whether what woke the loop is worth `loop.settle_seconds` of waiting for
        more of its kind (pushes, operations): not when only jobs' wake-ups are
        there, since a pass reads the end of every job anyway."""
        try:
            names = os.listdir(self.triggers.directory)
        except OSError:
            return True
        kept = (self.triggers.processed.name, self.triggers.rejected.name)
        return any(not name.startswith((WAKE_PREFIX, ".")) and name not in kept for name in names)

    def run_forever(self) -> None:
        """Passes until interrupted. Every pass, the first included, runs inside
        the same boundary: an error is logged, and a full pass is tried again
        after the poll interval."""
        self.triggers.start()
        loop = self.config.loop
        last_full = self.clock()
        full = True
        try:
            while True:
                try:
                    result = self.run_pass(full=full, followed=True)
                except Exception:  # the per-pass boundary: log, wait, try again
                    log.exception("pass failed")
                    self.wait(loop.poll_interval_seconds)
                    full = full or self.clock() - last_full >= loop.resync_interval_seconds
                    continue
                if result.progressed:
                    full = False
                    continue
                timeout = loop.resync_interval_seconds - (self.clock() - last_full)
                if result.live_jobs:
                    timeout = min(timeout, loop.poll_interval_seconds)
                if result.plan.next_wakeup is not None:
                    timeout = min(timeout, result.plan.next_wakeup - self.clock())
                if self.config.images.enabled:  # the next slot's images
                    timeout = min(
                        timeout, next_slot_start(self.config.images, self.clock()) - self.clock()
                    )
                if self.wait(max(timeout, 0)) and self._burst_may_follow():
                    self.wait(loop.settle_seconds)
                full = self.clock() - last_full >= loop.resync_interval_seconds
                if full:
                    last_full = self.clock()
        finally:
            self.triggers.stop()
