"""Benchmark: reconciler at postmarketOS and at Alpine scale (issues 6 and 20).

Generates pmaports-shaped trees (bench/tree.py, N APKBUILDs per branch, default
2,000, one tree per branch, committed as git checkouts like pmaports), fills every
final repository with real apks and signed indexes (bench/populate.py, in a
subprocess so its memory does not count), then measures, each figure the median
of R runs unless its note says otherwise:

- desired state (parse + resolve), in a process of its own (as after a
  restart, without a daemon's heap whose collections would count): for one
  branch at the first start (a new DesiredReader, nothing cached; one run),
  cold (a new DesiredReader with the APKBUILD parse cache the daemon keeps in
  its state directory) and with an unchanged tree (the same reader again); and
  **cold restart, all branches**: what a restarted daemon reads in its first
  pass (every configured branch, with the parse cache);
- **first pass after a first start**: a new Daemon on an empty state directory,
  its construction and first pass (run_pass(full=True)), with the apks it
  opened (one run: there is one first start);
- **pass, nothing changed** (Daemon.run_pass(), local job service; after an
  os.sync(), so that no pass waits for the first pass's writeback), with the
  apks it opened and the files it wrote besides the heartbeat (metrics.prom),
  and **pass, resync** (run_pass(full=True));
- **restart of a converged daemon**: after the passes above, a new process takes
  the instance lock, builds a Daemon on the same config and state directory (what
  the previous daemon wrote there stays, as with `systemctl restart`) and runs
  its first pass (run_pass(full=True), as `run_forever` does first), with the
  apks it opened, the pages it rendered and files it wrote and its peak memory
  (one run when the first took over a minute);
- APKINDEX generation for 2,000 apks: cold (read_apk of each + format_index +
  build_index_archive) and after one apk changed (RepoScanner.scan with its
  cache, then EntryCache.format_index, which formats only new apks, +
  build_index_archive, as RepoStore.reindex_wip does);
- site rendering of the daemon's own snapshot, pinned to one CPU: **full**, into
  an empty directory below --workdir (the row names its file system: ext4 here,
  the daemon's), again into tmpfs (informational, one run: CPU without file
  creation), nothing changed (an equal snapshot from another pass) and **one changed
  package**: a package of one repository that no package needs goes from
  published to failed: an operator's rebuild of it failed on every try (the
  job service lists the failed jobs), the daemon's planner makes the pass's
  plan from the daemon's desired and observed state with those (its repository
  is then blocked by it), the history gains the "failed" event, the rest is the
  daemon's last snapshot; three times after each full render, each in another
  repository. The pages rendered and files written by each change
  (SiteWriter.rendered / .written) are printed beside it, and the growth from
  the smaller size is checked against 2x;
- **peak memory**: ru_maxrss of the measuring process after the large passes
  (the first start's, the quiet and the resync passes), with the bytes per
  package state it makes;
- **bootstrap**: in a process of its own, Daemon.converge() of the bench's small
  tree (default 50 APKBUILDs, one branch, x86_64 only, builder duration 0, 2 job
  slots, local jobs): wall time per job (build and sign jobs), with this
  process's CPU per job in the CPU column (the jobs' own processes are not in
  it). It does not depend on the distribution's size.

A measured pass in which something went wrong (the site could not be written,
an action failed) stops the bench: its time would say nothing. Each row gives
wall time (median), this process's CPU time and the time spent in the garbage
collector. Targets are issue 20's, for the Alpine size on this 2-core machine
(quiet pass < 5 ms, resync < 2 s, cold restart's desired state
< 1 s, restart < 10 s, one changed package < 50 ms and within 2x of the 2,000
figure, full site render < 10 s, peak memory < 1 GB, bootstrap <= 30 ms per
job); a single-size run is judged by the same targets.

`--alpine` measures two sizes, each in a child process of its own (so that each
size's peak memory is its own): 2,000 APKBUILDs per branch (2 branches x 7
arches, as without it) and the Alpine size (15,000 APKBUILDs per branch,
3 branches x 8 arches, split repos as at 2,000), plus the bootstrap in a third,
and prints one table: each figure at both sizes, the growth (Alpine / 2,000),
the target and met/MISSED at the Alpine size; the notes of each size below. The
table goes to bench/results/<date>-alpine.txt; a single size's to
bench/results/<date>.txt (<date>-n<N>.txt for other sizes). `--profile` (single
size) runs each missed figure once more under cProfile and prints its top costs
(and, for memory, a tracemalloc report from a child process). Generated trees
and repositories are kept in --workdir (n<N>-s<seed>/, alpine-n<N>-s<seed>/) and
reused while the generator scripts, the size and the seed stay the same (the
Alpine fixture takes minutes to make; the daemon's state and site go at the
start of every run, and with --alpine at the end of each size too);
`--prepare-only` just generates and populates. A quick run takes about a
minute; the Alpine comparison (fixtures made) about 11 on a quiet 2-core
machine, up to 30 while other work keeps both cores busy:

    .venv/bin/python bench/run.py --packages 200 --runs 2
    .venv/bin/python bench/run.py --alpine [--runs R]
    .venv/bin/python bench/run.py [--packages N] [--runs R] [--small-packages M]
                                  [--workdir DIR] [--profile] [--fresh] [--prepare-only]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import hashlib
import json
import os
import platform
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from machine import describe_filesystem, one_core
from report import Figure, missed, table, two_sizes

from reconciler.config.settings import Config, load_config
from reconciler.desired.parsecache import ParseCache
from reconciler.desired.reader import DesiredReader
from reconciler.formats.apk import read_apk_bytes
from reconciler.formats.apkindex import EntryCache, build_index_archive, format_index
from reconciler.formats.apkwrite import build_apk
from reconciler.fs.apkfiles import read_apk
from reconciler.fs.instance_lock import InstanceLock
from reconciler.loop import Daemon, PassResult
from reconciler.memory.history import RECENT_EVENTS
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.layout import RepoRoots
from reconciler.model.names import RepoKey
from reconciler.model.packages import BranchDesired
from reconciler.model.progress import Event, PkgState, PkgStatus, RepoPhase
from reconciler.observed.scanner import RACY_NS, RepoScanner
from reconciler.operator.intents import RebuildRequest
from reconciler.plan import planner
from reconciler.site.model import SiteInput
from reconciler.site.writer import SiteWriter

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ARCHES = ("x86_64", "aarch64", "armv7", "riscv64", "x86", "ppc64le", "loongarch64")
BRANCHES = ("main", "v25.12")
# Alpine's aports: about 15,000 APKBUILDs, 8 arches, 3 maintained branches.
ALPINE_ARCHES = (*ARCHES, "s390x")
ALPINE_BRANCHES = ("main", "v25.12", "v25.06")
ALPINE_PACKAGES = 15_000
MARKER = ".reconciler-bench"
HEARTBEATS = ("metrics.prom",)
CHANGES_PER_WRITER = 3  # one changed package, again and again, per full render
RESTART_ONE_RUN_MS = 60_000.0  # a restart slower than this is taken once
T = TypeVar("T")


@dataclass(frozen=True)
class Shape:
    """A distribution's shape: its branches and arches (split repos come from the config)."""

    name: str
    branches: tuple[str, ...]
    arches: tuple[str, ...]
    prefix: str  # of its work directories: <prefix>n<packages>-s<seed>

    def workdir(self, base: Path, packages: int, seed: int) -> Path:
        return base / f"{self.prefix}n{packages}-s{seed}"


SHAPES = {
    "postmarketos": Shape("postmarketOS", BRANCHES, ARCHES, ""),
    "alpine": Shape("Alpine", ALPINE_BRANCHES, ALPINE_ARCHES, "alpine-"),
}


# --- measuring ---------------------------------------------------------------------
class _GcClock:
    """Wall time spent in the cyclic garbage collector (gc.callbacks)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start


GC_CLOCK = _GcClock()


def timed(action: Callable[[], T]) -> tuple[float, float, T]:
    """(wall ms, CPU ms of this process, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, result


def measure(figure: Figure, action: Callable[[], T]) -> T:
    gc_before = GC_CLOCK.total
    wall, cpu, result = timed(action)
    figure.samples.append(wall)
    figure.cpu.append(cpu)
    figure.gc.append((GC_CLOCK.total - gc_before) * 1000)
    return result


def files_state(*roots: Path) -> dict[str, tuple[int, int, int]]:
    """Every file below roots -> (mtime_ns, inode, size)."""
    state: dict[str, tuple[int, int, int]] = {}
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue
                state[path] = (st.st_mtime_ns, st.st_ino, st.st_size)
    return state


def changed_files(
    before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]
) -> list[str]:
    names = {p for p, v in after.items() if before.get(p) != v} | (before.keys() - after.keys())
    return sorted(names)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def progress(message: str) -> None:
    """A line on stderr while a long run goes on (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')} bench {os.getpid()}] {message}", file=sys.stderr)


# --- preparing the work directory ----------------------------------------------------
def run_script(*args: str) -> str:
    """Run a bench script in its own process (one heavy process at a time)."""
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


def write_config(workdir: Path, branches: tuple[str, ...], arches: tuple[str, ...]) -> Path:
    listed = "".join(
        f"  - name: {b}\n    pmaports: {workdir}/pmaports/{b}\n    arches: [{', '.join(arches)}]\n"
        for b in branches
    )
    text = textwrap.dedent(
        f"""\
        paths:
          data: {workdir}/data
          html_out: {workdir}/html
        jobs:
          max_parallel: 2
        builder: {{duration_seconds: 0}}
        loop: {{poll_interval_seconds: 1, settle_seconds: 0}}
        site:
          title: reconciler bench
        branches:
        """
    )
    path = workdir / "config.yaml"
    path.write_text(text + listed, encoding="utf-8")
    return path


def stamp(
    packages: int, seed: int, kind: str, branches: tuple[str, ...], arches: tuple[str, ...]
) -> str:
    digest = hashlib.sha256()
    for script in ("tree.py", "populate.py"):
        digest.update((BENCH / script).read_bytes())
    return (
        f"{kind} packages={packages} seed={seed} branches={','.join(branches)}"
        f" arches={','.join(arches)} scripts={digest.hexdigest()[:16]}\n"
    )


def prepare(
    workdir: Path,
    packages: int,
    seed: int,
    branches: tuple[str, ...],
    arches: tuple[str, ...],
    *,
    populated: bool,
    fresh: bool,
) -> tuple[Config, list[str]]:
    """Trees (+ populated final repos) in workdir, reused when already there."""
    marker = workdir / MARKER
    wanted = stamp(packages, seed, "populated" if populated else "tree", branches, arches)
    log: list[str] = []
    if fresh or not marker.exists() or marker.read_text(encoding="utf-8") != wanted:
        if workdir.exists():
            if any(workdir.iterdir()) and not marker.exists():
                raise SystemExit(f"{workdir} is not a bench work directory; refusing to clear it")
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        for branch in branches:
            out = str(workdir / "pmaports" / branch)
            log.append(
                run_script(
                    "bench/tree.py", "--out", out, "--packages", str(packages), "--seed", str(seed)
                )
            )
        config_path = write_config(workdir, branches, arches)
        if populated:
            log.append(run_script("bench/populate.py", "--config", str(config_path)))
        marker.write_text(wanted, encoding="utf-8")
    else:
        log.append(f"reusing {workdir} ({wanted.strip()})")
    for branch in branches:
        log += commit_tree(workdir / "pmaports" / branch)
    config = load_config(write_config(workdir, branches, arches))
    reset_daemon_state(config)
    return config, log


def commit_tree(tree: Path) -> list[str]:
    """Make a generated tree a git checkout, as pmaports always is, so the daemon
    reads its commit from .git (and trusts an unmoved HEAD between resyncs).
    Done once per tree; author, dates and message are fixed, so is the commit."""
    if (tree / ".git").exists():
        return []
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@localhost",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@localhost",
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    }
    for argv in (
        ["git", "-c", "init.defaultBranch=master", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "--no-gpg-sign", "-m", "bench tree"],
    ):
        subprocess.run(argv, cwd=tree, env=env, check=True, capture_output=True)
    return [f"{tree}: committed as a git checkout"]


def reset_daemon_state(config: Config) -> None:
    """The daemon's own state starts empty every time; final repos and keys stay."""
    for path in (
        config.paths.state,
        config.paths.jobs,
        config.paths.triggers,
        config.paths.wip_repo,
        config.paths.symlink_repo,
        config.paths.html_out,
    ):
        shutil.rmtree(path, ignore_errors=True)


def settle(final_root: Path) -> None:
    """Wait until no final directory is "racy" (modified < RACY_NS ago), as in production."""
    newest = max((os.stat(d).st_mtime_ns for d, _, _ in os.walk(final_root)), default=0)
    wait = (newest + RACY_NS - time.time_ns()) / 1e9 + 0.1
    if wait > 0:
        time.sleep(wait)


def repo_counts(final_root: Path) -> tuple[int, int, int]:
    """(repositories with an index, apks, bytes of apks) below final_root."""
    repos = apks = size = 0
    for dirpath, _, names in os.walk(final_root):
        if "APKINDEX.tar.gz" in names:
            repos += 1
        for name in names:
            if name.endswith(".apk"):
                apks += 1
                size += os.lstat(os.path.join(dirpath, name)).st_size
    return repos, apks, size


# --- the figures ------------------------------------------------------------------
class RecordingSiteWriter(SiteWriter):
    """The daemon's SiteWriter, keeping the last two snapshots it was given."""

    def __init__(self, out_dir: Path) -> None:
        super().__init__(out_dir)
        self.inputs: list[SiteInput] = []

    def render(self, site: SiteInput, now: float) -> bool:
        self.inputs = [*self.inputs[-1:], site]
        return super().render(site, now)


def bench_desired(config: Config, runs: int) -> list[Figure]:
    branch = config.branches[0]
    first = Figure(f"desired state, 1 branch, first start ({branch.name})", "ms", None)
    cold = Figure("desired state, 1 branch, cold (restart)", "ms", None)
    every = Figure("desired state, cold restart, all branches", "ms", 1000.0)
    warm = Figure("desired state, 1 branch, unchanged tree", "ms", None)
    cache_dir = config.paths.state

    def new_reader(cache: ParseCache | None) -> DesiredReader:
        # As Daemon.__init__ makes it.
        return DesiredReader(
            config.splitrepos, cache, max_apkbuild_bytes=config.inputs.max_apkbuild_bytes
        )

    def first_read() -> tuple[DesiredReader, BranchDesired]:
        reader = new_reader(None)
        return reader, reader.read_branch(branch)

    def restart_read() -> tuple[DesiredReader, BranchDesired]:
        reader = new_reader(ParseCache(cache_dir))
        return reader, reader.read_branch(branch)

    def restart_read_all() -> dict[str, BranchDesired]:
        reader = new_reader(ParseCache(cache_dir))  # as the first (full) pass of a restart
        return {b.name: reader.read_branch(b) for b in config.branches}

    measure(first, first_read)  # once: there is one first start
    restart_read_all()  # the daemon's passes wrote the cache already; make sure
    for _ in range(runs):
        measure(every, restart_read_all)
    for _ in range(runs):
        reader, desired = measure(cold, restart_read)
    for _ in range(runs):
        measure(warm, functools.partial(reader.read_branch, branch))
    specs = sum(len(s) for s in desired.repos.values())
    files = len(reader.scan_tree(branch.pmaports))
    first.note = (
        f"one run (there is one first start); {files} APKBUILDs -> {specs} package specs;"
        " no parse cache: parses every file"
    )
    cold.note = f"a new DesiredReader with the parse cache the daemon keeps in {cache_dir}"
    every.note = (
        f"{len(config.branches)} branches ({', '.join(b.name for b in config.branches)}),"
        " a new DesiredReader with the daemon's parse cache, every tree walked"
    )
    first.again = lambda: first_read()[1]
    cold.again = lambda: restart_read()[1]
    every.again = restart_read_all
    first.entry = cold.entry = warm.entry = "read_branch"
    every.entry = "restart_read_all"
    warm.again = lambda: reader.read_branch(branch)
    return [first, cold, every, warm]


def desired_child(config_path: Path, runs: int, top: int | None) -> None:
    """In a new process, as a restarted daemon reads its trees: the desired-state
    figures (and, with `top`, the profiles of those missed), as one JSON line."""
    figures = bench_desired(load_config(config_path), runs)
    profiles: list[str] = []
    if top is not None:
        for figure in figures:
            if figure.met is False:
                profiles += profile(figure, top)
    print(json.dumps({"figures": [f.to_json() for f in figures], "profiles": profiles}))


def desired_figures(
    config_path: Path, runs: int, top: int | None
) -> tuple[list[Figure], list[str]]:
    """The desired-state figures, taken in a process of their own: a restart reads
    its trees in a new process, not beside a daemon's heap of hundreds of MB (whose
    collections would be counted too). Returns them and their profiles."""
    argv = ["bench/run.py", "--desired-child", str(config_path), "--runs", str(runs)]
    if top is not None:
        argv += ["--profile", "--top", str(top)]
    data = json.loads(run_script(*argv).splitlines()[-1])
    figures = [Figure.from_json(f) for f in data["figures"]]
    for figure in figures:
        figure.note = "; ".join(filter(None, [figure.note, "a new process"]))
    return figures, [str(line) for line in data["profiles"]]


def sound(result: PassResult, what: str) -> PassResult:
    """The pass's result, when nothing went wrong in it: a pass whose site could
    not be written (or whose actions failed) did less than a daemon does, and its
    time says nothing."""
    if result.problems:
        raise SystemExit(
            f"{what} went wrong, its figures would mean nothing:\n" + "\n".join(result.problems)
        )
    return result


@dataclass
class Passes:
    figures: list[Figure]
    daemon: Daemon
    site: RecordingSiteWriter
    notes: list[str]
    states: int  # package states of the plan


def bench_passes(config: Config, runs: int) -> Passes:
    notes: list[str] = []
    first = Figure("first pass after a first start (empty state dir)", "ms", None)

    def start() -> tuple[Daemon, RecordingSiteWriter, PassResult]:
        daemon = Daemon(config)
        site = RecordingSiteWriter(config.paths.html_out)
        daemon.site = site
        return daemon, site, daemon.run_pass(full=True)

    daemon, site, result = measure(first, start)
    sound(result, "the first pass")
    first.note = (
        f"one run (there is one first start): Daemon(config) + run_pass(full=True);"
        f" {daemon.scanner.apks_opened} apks opened"
    )
    plan = result.plan
    published = sum(1 for p in plan.packages if p.state is PkgState.PUBLISHED)
    notes.append(
        f"after the first pass: {published}/{len(plan.packages)} package states published,"
        f" {len(plan.actions)} actions, repos: "
        + ", ".join(
            f"{n} {phase}"
            for phase in sorted({str(r.phase) for r in plan.repos})
            if (n := sum(1 for r in plan.repos if str(r.phase) == phase))
        )
    )
    roots = (config.paths.data, config.paths.html_out)
    before = files_state(*roots)
    os.sync()  # the first pass's writes are on disk: no quiet pass waits for their writeback
    opened = daemon.scanner.apks_opened
    quiet = Figure("pass, nothing changed", "ms", 5.0)
    actions = 0
    for _ in range(max(3 * runs, 5)):
        result = sound(measure(quiet, daemon.run_pass), "a quiet pass")
        actions += len(result.outcomes)
    written = [p for p in changed_files(before, files_state(*roots)) if not p.endswith(HEARTBEATS)]
    quiet.note = (
        f"{daemon.scanner.apks_opened - opened} apks opened, {len(written)} files written"
        f" besides the heartbeat, {actions} actions"
    )
    if written:
        notes.append("written by quiet passes: " + ", ".join(written[:10]))
    quiet.again = daemon.run_pass
    quiet.entry = "run_pass"
    resync = Figure("pass, resync (run_pass(full=True))", "ms", 2000.0)
    opened = daemon.scanner.apks_opened
    for _ in range(runs):
        sound(measure(resync, lambda: daemon.run_pass(full=True)), "a resync")
    resync.note = f"{daemon.scanner.apks_opened - opened} apks opened"
    resync.again = lambda: daemon.run_pass(full=True)
    resync.entry = "run_pass"
    # Two quiet passes more: the site figures render their snapshots. A full pass
    # changes the "last seen" time on purpose, so it is not an unchanged snapshot.
    sound(daemon.run_pass(), "a quiet pass")
    sound(daemon.run_pass(), "a quiet pass")
    return Passes([first, quiet, resync], daemon, site, notes, len(plan.packages))


def restart_child(config_path: Path) -> None:
    """In a new process, as `reconciler run` starts: the instance lock, a Daemon on
    the config and its state directory, its first pass. Prints one JSON line."""
    gc_before = GC_CLOCK.total
    wall, cpu = time.perf_counter(), time.process_time()
    config = load_config(config_path)
    lock = InstanceLock(config.paths.data)
    lock.acquire()
    try:
        daemon = Daemon(config)
        built = (time.perf_counter() - wall) * 1000
        result = sound(daemon.run_pass(full=True), "the first pass after a restart")
        wall_ms = (time.perf_counter() - wall) * 1000
        cpu_ms = (time.process_time() - cpu) * 1000
    finally:
        lock.release()
    published = sum(1 for p in result.plan.packages if p.state is PkgState.PUBLISHED)
    figures = {
        "wall_ms": wall_ms,
        "cpu_ms": cpu_ms,
        "gc_ms": (GC_CLOCK.total - gc_before) * 1000,
        "built_ms": built,
        "apks_opened": daemon.scanner.apks_opened,
        "rendered": daemon.site.rendered,
        "written": daemon.site.written,
        "actions": len(result.outcomes),
        "states": len(result.plan.packages),
        "published": published,
        "peak_mb": peak_mb(),
    }
    print(json.dumps(figures))


def bench_restart(config_path: Path, state_dir: Path, runs: int) -> Figure:
    """Restarts of the converged daemon, each a new process (`restart_child`)."""
    figure = Figure("restart of a converged daemon (start + first pass)", "ms", 10_000.0)
    seen: list[dict[str, float]] = []
    for run in range(runs):
        progress(f"restart {run + 1} of {runs} (a new process)")
        output = run_script("bench/run.py", "--restart-child", str(config_path))
        data = json.loads(output.splitlines()[-1])
        seen.append(data)
        figure.samples.append(data["wall_ms"])
        figure.cpu.append(data["cpu_ms"])
        figure.gc.append(data["gc_ms"])
        if run == 0 and runs > 1 and data["wall_ms"] > RESTART_ONE_RUN_MS:
            break
    last = seen[-1]

    def each(name: str) -> str:
        values = sorted({int(d[name]) for d in seen})
        return "/".join(str(v) for v in values)

    once = (
        f"one run (over {RESTART_ONE_RUN_MS / 1000:.0f} s: the median of more adds nothing); "
        if len(seen) < runs
        else ""
    )
    figure.note = (
        f"{once}a new process: instance lock + Daemon(config) ({last['built_ms']:.0f} ms)"
        f" + run_pass(full=True), with what the previous daemon left in {state_dir};"
        f" {each('apks_opened')} apks opened, {each('rendered')} pages rendered,"
        f" {each('written')} files written, {each('actions')} actions,"
        f" {int(last['published'])}/{int(last['states'])} published,"
        f" peak memory {each('peak_mb')} MB"
    )
    return figure


def gather_apks(final_root: Path, count: int, scratch: Path) -> list[Path]:
    """`count` apks with distinct names from the populated repos (made up when short)."""
    found: dict[str, Path] = {}
    candidates = sorted(final_root.glob(f"{BRANCHES[0]}/*/*.apk"))
    candidates.sort(key=lambda p: p.parent.name != "x86_64")  # x86_64 first, stable
    for path in candidates:
        if len(found) >= count:
            break
        found.setdefault(path.name, path)
    scratch.mkdir(parents=True, exist_ok=True)
    for i in range(count - len(found)):
        name = f"bench-extra-{i:05d}"
        data = build_apk(
            pkgname=name,
            version="1.0-r0",
            arch="x86_64",
            origin=name,
            files={f"usr/share/{name}": b"x\n"},
        )
        path = scratch / f"{name}-1.0-r0.apk"
        path.write_bytes(data)
        found[path.name] = path
    return list(found.values())


def bench_index(final_root: Path, workdir: Path, runs: int, count: int) -> tuple[Figure, Figure]:
    apks = gather_apks(final_root, count, workdir / "index-extra")
    base = workdir / "index"
    shutil.rmtree(base, ignore_errors=True)
    roots = RepoRoots(base / "wip", base / "final", base / "symlink")
    key = RepoKey("bench", "", "x86_64")
    directory = roots.wip / key.relpath
    directory.mkdir(parents=True)
    for path in apks:
        os.link(path, directory / path.name)
    paths = sorted(directory.glob("*.apk"))
    description = "reconciler WIP bench/x86_64 2026-01-01T00:00:00Z"

    def cold_index() -> bytes:
        infos = [read_apk(p) for p in paths]
        return build_index_archive(
            format_index(infos, rewrite_arch=key.arch), description=description, mtime=1
        )

    cold = Figure(f"APKINDEX of {len(paths)} apks, cold", "ms", 500.0)
    for _ in range(runs):
        measure(cold, cold_index)
    cold.again = cold_index
    cold.entry = "cold_index"

    scanner = RepoScanner(roots)
    entries = EntryCache()  # as RepoStore.reindex_wip: only changed apks are formatted

    def scanned_index() -> bytes:
        infos = scanner.scan(key).wip.values()
        text = entries.format_index("wip", infos, rewrite_arch=key.arch)
        return build_index_archive(text, description=description, mtime=1)

    scanned_index()  # fills the scanner's cache
    one = Figure(f"APKINDEX of {len(paths)} apks, one apk changed", "ms", 50.0)
    opened = scanner.apks_opened
    for run in range(runs):
        replace_apk(paths[run * 7 % len(paths)], run)
        measure(one, scanned_index)
    one.note = f"{scanner.apks_opened - opened} apks read in {runs} runs (scanner cache)"

    def again() -> bytes:
        replace_apk(paths[0], runs + 1)
        return scanned_index()

    one.again = again
    one.entry = "scanned_index"
    return cold, one


def replace_apk(path: Path, serial: int) -> None:
    """Rebuild one apk with other bytes (same name) and rename it over the old one."""
    info = read_apk(path)
    data = build_apk(
        pkgname=info.pkgname,
        version=info.version,
        arch=info.arch,
        origin=info.origin or info.pkgname,
        description=info.description,
        builddate=1_800_000_000 + serial,
        files={f"usr/share/{info.pkgname}/rebuilt": f"{serial}\n".encode()},
    )
    read_apk_bytes(data, path.name)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


EXCERPT = (
    "gcc -O2 -c -o parse.o parse.c\n"
    "parse.c:214:9: error: implicit declaration of function 'strlcpy'\n"
    "make: *** [Makefile:41: parse.o] Error 1\n"
    ">>> ERROR: build failed"
)


def leaves_to_fail(site: SiteInput, count: int) -> list[PkgStatus]:
    """`count` published packages, each of another published repository, that no
    package of their branch needs (no other package page lists them) and whose
    name is in one split repository of their branch only (an operator's rebuild
    names branch, arch and package)."""
    needed = {
        (spec.repo.branch, dep.pkgname) for spec in site.specs.values() for dep in spec.build_deps
    }
    splits: dict[tuple[str, str], set[str]] = {}
    for repo, name in site.specs:
        splits.setdefault((repo.branch, name), set()).add(repo.splitrepo)
    published = {r.repo for r in site.plan.repos if r.phase is RepoPhase.PUBLISHED}
    chosen: dict[RepoKey, PkgStatus] = {}
    for status in site.plan.packages:
        ident = (status.repo.branch, status.pkgname)
        if (
            status.state is PkgState.PUBLISHED
            and status.repo in published
            and status.repo not in chosen
            and ident not in needed
            and len(splits.get(ident, ())) == 1
        ):
            chosen[status.repo] = status
            if len(chosen) == count:
                break
    if len(chosen) < count:
        raise SystemExit(f"only {len(chosen)} published leaf packages to fail, {count} wanted")
    return list(chosen.values())


def failing(
    daemon: Daemon, site: SiteInput, leaves: list[PkgStatus], max_tries: int
) -> tuple[list[SiteInput], str]:
    """The snapshots of the passes in which each leaf in turn fails, made as the
    daemon makes them: an operator asked for a rebuild of the package (at its
    version), its build failed `max_tries` times (the job service lists the jobs),
    the daemon's own planner (reconciler.plan.planner.plan) makes the pass's plan
    from its desired and observed state with those, the history gains the event
    its memory would log (the newest RECENT_EVENTS are shown), and the rest of the
    snapshot is the daemon's last (specs and versions: the same objects, as the
    daemon keeps them while nothing they come from changed). Returns them and
    what changed in each plan, in words. Long because it is one pass's story,
    step by step, as the daemon lives it."""
    desired = daemon.read_desired(fresh=())  # git checkouts that did not move: the same
    observed = daemon.observe()
    settings = daemon.settings()
    rebuilds: list[RebuildRequest] = []
    jobs = dict(observed.jobs)
    events = list(site.events)
    now = time.time()
    snapshots: list[SiteInput] = []
    before = {(s.repo, s.pkgname): s.state for s in site.plan.packages}
    phases = {r.repo: r.phase for r in site.plan.repos}
    changes: list[str] = []
    for k, leaf in enumerate(leaves):
        when = now + 3600 * (k + 1)
        final = observed.repos[leaf.repo].final_index
        assert final is not None
        replaced = final.files[f"{leaf.pkgname}-{leaf.version}.apk"]
        rebuilds.append(
            RebuildRequest(
                leaf.repo.branch,
                leaf.repo.arch,
                leaf.pkgname,
                leaf.version,
                replaced,
                0,
                "bench",
                "a rebuild that fails",
                when - 3600,
            )
        )
        intent = JobIntent(JobKind.BUILD, leaf.repo, leaf.pkgname, leaf.version)
        for attempt in range(1, max_tries + 1):
            started = when - 600 * (max_tries + 1 - attempt)
            jobs[JobKey(intent, attempt)] = JobObservation(
                JobKey(intent, attempt),
                JobStatus.FAILED,
                submitted_at=started,
                ended_at=started + 42,
                reason="exit code 1",
                excerpt=EXCERPT,
            )
        intents = replace(settings.intents, rebuilds=tuple(rebuilds))
        made = planner.plan(
            desired,
            replace(observed, jobs=dict(jobs)),
            replace(settings, intents=intents),
            when,
        )
        status = next(s for s in made.packages if (s.repo, s.pkgname) == (leaf.repo, leaf.pkgname))
        if status.state is not PkgState.FAILED:
            raise SystemExit(f"{leaf.repo} {leaf.pkgname}: {status.state} ({status.reason})")
        events.insert(
            0,
            Event(
                when,
                str(status.repo),
                status.pkgname,
                status.version,
                "failed",
                status.reason,
                status.job_id,
            ),
        )
        del events[RECENT_EVENTS:]
        snapshots.append(replace(site, plan=made, jobs=tuple(jobs.values()), events=tuple(events)))
        states = sum(1 for s in made.packages if before.get((s.repo, s.pkgname)) != s.state)
        repos = sum(1 for r in made.repos if phases.get(r.repo) != r.phase)
        before = {(s.repo, s.pkgname): s.state for s in made.packages}
        phases = {r.repo: r.phase for r in made.repos}
        changes.append(f"{states} state{'s' * (states != 1)}, {repos} repo{'s' * (repos != 1)}")
    return snapshots, "; ".join(sorted(set(changes)))


def bench_site(passes: Passes, workdir: Path, runs: int, max_tries: int) -> list[Figure]:
    """The site figures from the daemon's own snapshots. Long because the full
    render, the unchanged one and the changed ones share each run's writer."""
    latest, earlier = passes.site.inputs[-1], passes.site.inputs[0]
    statuses = latest.plan.packages
    leaves = leaves_to_fail(latest, CHANGES_PER_WRITER)
    changes, changed_states = failing(passes.daemon, latest, leaves, max_tries)
    os.sync()  # what earlier steps wrote is on disk: no render waits for their writeback
    full = Figure("site render, full (empty dir)", "ms", 10_000.0)
    same = Figure("site render, nothing changed", "ms", None)
    one = Figure("one changed package: its pages, summaries, feeds", "ms", 50.0)
    one.growth_limit = 2.0
    base = workdir / "site"
    shutil.rmtree(base, ignore_errors=True)
    files = 0
    costs: list[tuple[tuple[int, int], ...]] = []  # each writer's (rendered, written) per change
    for run in range(runs):
        writer = SiteWriter(base / f"run-{run}")
        measure(full, functools.partial(writer.render, latest, 1.0))
        measure(same, functools.partial(writer.render, earlier, 2.0))
        cost: list[tuple[int, int]] = []
        for k, changed in enumerate(changes):
            rendered, written = writer.rendered, writer.written
            measure(one, functools.partial(writer.render, changed, 3.0 + k))
            cost.append((writer.rendered - rendered, writer.written - written))
        costs.append(tuple(cost))
        files = sum(1 for p in (base / f"run-{run}").rglob("*") if p.is_file())
    shutil.rmtree(base)  # after the runs: no deletion is flushed during a timed render
    equal = "an equal snapshot" if earlier == latest and earlier is not latest else "NOT equal"
    full.note = (
        f"{len(statuses)} package states, {files} files,"
        f" in {base.parent}: {describe_filesystem(base.parent)}"
    )
    same.note = f"the previous pass's snapshot: {equal}"
    one.note = (
        "pages rendered / files written by each change: "
        + " or ".join(", ".join(f"{p} / {w}" for p, w in cost) for cost in sorted(set(costs)))
        + f"; {CHANGES_PER_WRITER} changes after each full render, each a package that no"
        " package needs going from published to failed in another repository (an"
        f" operator's rebuild failed {max_tries} times: its jobs, the daemon's planner's"
        f" plan ({changed_states} changed), a 'failed' event)"
    )
    figures = [full, same, one]
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        # The same render into tmpfs: the CPU work without the disk's file creation.
        # Informational, and the same work as the row above: one run.
        memory = Figure("site render, full, into tmpfs (/dev/shm)", "ms", None)
        out = Path(tempfile.mkdtemp(prefix="reconciler-bench-site-", dir=shm))
        try:
            measure(memory, functools.partial(SiteWriter(out).render, latest, 1.0))
        finally:
            shutil.rmtree(out)
        memory.note = "one run (informational: the CPU's share of the row above)"
        figures.insert(1, memory)

    def again() -> object:
        shutil.rmtree(base / "profile", ignore_errors=True)
        return SiteWriter(base / "profile").render(latest, 1.0)

    prepared: list[SiteWriter] = []

    def setup_one() -> None:  # a full render first, not profiled
        shutil.rmtree(base / "profile", ignore_errors=True)
        prepared[:] = [SiteWriter(base / "profile")]
        prepared[0].render(latest, 1.0)

    full.again = again
    full.entry = one.entry = "render"
    one.setup = setup_one
    one.again = lambda: prepared[0].render(changes[0], 2.0)
    return figures


def on_one_core(action: Callable[[], list[Figure]]) -> list[Figure]:
    """The figures of `action` taken with this process pinned to one CPU (the
    issue's "on one core"), noted on each."""
    with one_core() as pinned:
        figures = action()
    for figure in figures:
        figure.note = f"{figure.note}; {pinned}" if figure.note else pinned
    return figures


def bench_bootstrap(workdir: Path, keys: Path, packages: int, seed: int, runs: int) -> Figure:
    """A full converge of the small tree with instant builds: wall time per job."""
    small = workdir / "small"
    config, _ = prepare(small, packages, seed, ("main",), ("x86_64",), populated=False, fresh=False)
    figure = Figure("bootstrap: wall per job (small tree, 2 job slots)", "ms", 30.0)
    figure.at_most = True
    figure.size_free = True
    counts = ""
    for run in range(runs):
        progress(f"bootstrap {run + 1} of {runs}")
        for path in (config.paths.data, config.paths.html_out):
            shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(keys, config.keys.wip_private.parent)
        daemon = Daemon(config)
        desired = daemon.read_desired()
        specs = sum(len(s) for d in desired.values() for s in d.repos.values())
        gc_before = GC_CLOCK.total
        wall, cpu, result = timed(functools.partial(daemon.converge, max_seconds=600))
        if not result.all_published:
            raise SystemExit(f"the small tree did not converge:\n{result}")
        jobs = daemon.jobs.list_jobs()
        builds = sum(1 for j in jobs if j.intent.kind is JobKind.BUILD)
        figure.samples.append(wall / len(jobs))
        figure.cpu.append(cpu / len(jobs))
        figure.gc.append((GC_CLOCK.total - gc_before) * 1000 / len(jobs))
        _, apks, _ = repo_counts(config.paths.final_repo)
        counts = (
            f"{specs} packages ({apks} apks), {len(jobs)} jobs ({builds} builds,"
            f" {len(jobs) - builds} other), max_parallel {config.jobs.max_parallel}, converge"
            f" {wall / 1000:.1f} s, {wall / specs:.0f} ms per package; CPU: the daemon's"
            f" own per job ({cpu / 1000:.2f} s in all), not its jobs' processes"
        )
    figure.note = counts
    return figure


def bootstrap_child(args: argparse.Namespace, out: Path) -> None:
    """In a process of its own: the bootstrap figure, as JSON into `out`. The small
    tree lives in the size's work directory, which lends it its keys (so that no
    key is generated during the converge)."""
    workdir = SHAPES[args.shape].workdir(args.workdir, args.packages, args.seed)
    keys = load_config(workdir / "config.yaml").keys.wip_private.parent
    figure = bench_bootstrap(workdir, keys, args.small_packages, args.seed, args.runs)
    out.write_text(json.dumps({"figures": [figure.to_json()]}), encoding="utf-8")


# --- one size ------------------------------------------------------------------------
@dataclass
class SizeRun:
    """What one size's measurements give: the figures, notes and counts."""

    figures: list[Figure]
    notes: list[str]
    describe: str  # the populated distribution in words
    passes: Passes | None = None  # in-process only (for --profile)
    profiles: list[str] = field(default_factory=list)  # of figures taken in children

    def to_json(self) -> dict[str, object]:
        return {
            "figures": [f.to_json() for f in self.figures],
            "notes": self.notes,
            "describe": self.describe,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SizeRun:
        figures, notes = data["figures"], data["notes"]
        assert isinstance(figures, list) and isinstance(notes, list)
        return cls(
            [Figure.from_json(f) for f in figures], [str(n) for n in notes], str(data["describe"])
        )


def measure_size(
    config: Config, workdir: Path, packages: int, runs: int, index_apks: int, top: int | None = None
) -> SizeRun:
    """Every figure of one size but the bootstrap, in this process (the restarts in
    their own)."""
    final_root = config.paths.final_repo
    repos, apks, size = repo_counts(final_root)
    settle(final_root)
    branches = config.branches
    arches = sorted({a for b in branches for a in b.arches})
    progress(f"{packages} APKBUILDs per branch: first start, quiet passes, resyncs")
    passes = bench_passes(config, runs)
    memory = Figure("peak memory (ru_maxrss) after the large passes", "MB", 1024.0)
    peak = peak_mb()
    memory.samples.append(peak)
    memory.note = (
        f"one reading: this process's high-water mark after the passes above;"
        f" {passes.states} package states, {peak * 2**20 / passes.states:,.0f} bytes each"
        " (the whole process: interpreter, modules and caches included)"
    )
    progress("restarts of the converged daemon")
    restart = bench_restart(workdir / "config.yaml", config.paths.state, runs)
    progress("desired state (a new process)")
    figures, profiles = desired_figures(workdir / "config.yaml", runs, top)
    figures += [*passes.figures, restart]
    progress("APKINDEX")
    figures += bench_index(final_root, workdir, runs, index_apks)
    progress("site")
    site = functools.partial(bench_site, passes, workdir, runs, config.retries.max_tries)
    figures += on_one_core(site)
    figures.append(memory)
    describe = (
        f"{len(branches)} branches x {len(arches)} arches x {1 + len(config.splitrepos)} split"
        f" repos: {repos} repositories with a signed index, {apks} apks, {size / 1e6:.1f} MB,"
        f" {passes.states} package states (tree: {packages} APKBUILDs per branch)"
    )
    return SizeRun(figures, passes.notes, describe, passes, profiles)


def size_child(args: argparse.Namespace, out: Path) -> None:
    """In a process of its own: one size's figures, as JSON into `out`."""
    shape = SHAPES[args.shape]
    workdir = shape.workdir(args.workdir, args.packages, args.seed)
    config, log = prepare(
        workdir, args.packages, args.seed, shape.branches, shape.arches, populated=True, fresh=False
    )
    for line in log:
        progress(line)
    run = measure_size(config, workdir, args.packages, args.runs, args.index_apks)
    out.write_text(json.dumps(run.to_json()), encoding="utf-8")
    # The daemon's state goes now rather than at the next run's start, so that
    # the next first start does not create its files among thousands just deleted
    # (see machine.py).
    run.passes = None
    progress("clearing the daemon's state and site")
    reset_daemon_state(config)


# --- profiling -----------------------------------------------------------------------
def short(filename: str) -> str:
    if "/reconciler/" in filename:
        return "reconciler/" + filename.split("/reconciler/", 1)[1]
    if "/site-packages/" in filename:
        return filename.split("/site-packages/", 1)[1]
    if "/lib/python3" in filename:
        return "stdlib/" + filename.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return filename


def _row(key: tuple[str, int, str], nc: int, tt: float, ct: float) -> str:
    file, line, func = key
    return f"   {nc:>10} {tt * 1000:9.1f} {ct * 1000:9.1f}  {short(file)}:{line} {func}"


def profile(figure: Figure, top: int) -> list[str]:
    assert figure.again is not None
    if figure.setup is not None:
        figure.setup()
    prof = cProfile.Profile()
    prof.enable()
    figure.again()
    prof.disable()
    stats = pstats.Stats(prof)
    rows = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in rows.values())
    lines = [f"-- {figure.label}: {total * 1000:.0f} ms under cProfile"]
    header = f"   {'calls':>10} {'own ms':>9} {'cum ms':>9}  function"
    lines.append(f"   top {top} by own time:")
    lines.append(header)
    for key, (_, nc, tt, ct, _) in sorted(rows.items(), key=lambda kv: -kv[1][2])[:top]:
        lines.append(_row(key, nc, tt, ct))
    if figure.entry:
        entry = sorted((k for k in rows if k[2] == figure.entry), key=lambda k: -rows[k][3])
        if entry:
            lines.append(f"   where {figure.entry}() spends its time (direct callees):")
            lines.append(header)
            callees = [
                (key, callers[entry[0]])
                for key, (_, _, _, _, callers) in rows.items()
                if entry[0] in callers
            ]
            for key, (_, nc, tt, ct) in sorted(callees, key=lambda kv: -kv[1][3])[:8]:
                lines.append(_row(key, nc, tt, ct))
    return lines


def memory_child(config_path: Path, top: int) -> None:
    """In a child process: what a Daemon holds after two passes, and a full render's peak."""
    config = load_config(config_path)
    reset_daemon_state(config)
    tracemalloc.start()
    daemon = Daemon(config)
    site = RecordingSiteWriter(config.paths.html_out)
    daemon.site = site
    daemon.run_pass(full=True)
    daemon.run_pass()
    held, peak = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot()
    print(f"-- memory: a Daemon after 2 passes holds {held / 1e6:.0f} MB of Python objects")
    print(f"   (traced peak {peak / 1e6:.0f} MB, ru_maxrss {peak_mb():.0f} MB with tracing on);")
    print(f"   top {top} allocation sites of what it holds:")
    for stat in snapshot.statistics("lineno")[:top]:
        frame = stat.traceback[0]
        where = f"{short(frame.filename)}:{frame.lineno}"
        print(f"   {stat.size / 1e6:8.1f} MB {stat.count:8} blocks  {where}")
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    out = Path(tempfile.mkdtemp(prefix="site-", dir=config.paths.data.parent))
    SiteWriter(out).render(site.inputs[-1], 1.0)
    shutil.rmtree(out)
    extra = tracemalloc.get_traced_memory()[1] - before
    print(f"   a full site render of that snapshot needs {extra / 1e6:.0f} MB more at its peak")


# --- output ----------------------------------------------------------------------------
def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def version() -> str:
    """The code measured: its commit, and whether the checkout has changes besides."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *argv], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return f"{ROOT} (not a git checkout)"
    changed = git("status", "--porcelain", "--untracked-files=no")
    return f"commit {commit}" + (" with uncommitted changes" if changed else "")


def child(kind: str, out: Path, *args: str) -> dict[str, object]:
    """Run this script as a child (`--size-child` or `--bootstrap-child`), its
    progress on our stderr, and read the JSON it wrote."""
    argv = [sys.executable, str(BENCH / "run.py"), kind, str(out), *args]
    done = subprocess.run(argv, cwd=ROOT, stdout=sys.stderr, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed with exit code {done.returncode}")
    data = json.loads(out.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def results_file(started: float, suffix: str) -> Path:
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    return results / f"{time.strftime('%Y-%m-%d', time.localtime(started))}{suffix}.txt"


def run_alpine(args: argparse.Namespace) -> None:
    """Both sizes, each in a child process, and the bootstrap in a third: one table.
    Long because of the children's arguments and the table's header."""
    started = time.time()
    load = os.getloadavg()
    runs = args.runs or 3
    common = ["--runs", str(runs), "--seed", str(args.seed), "--workdir", str(args.workdir)]
    sizes = (("2,000", "postmarketos", 2000), ("Alpine", "alpine", ALPINE_PACKAGES))
    reports: list[SizeRun] = []
    took: list[str] = []
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as scratch:
        for name, shape, packages in sizes:
            progress(f"size {name}: a child process")
            begun = time.time()
            data = child(
                "--size-child",
                Path(scratch) / f"{shape}.json",
                "--shape",
                shape,
                "--packages",
                str(packages),
                "--index-apks",
                str(args.index_apks),
                *common,
            )
            reports.append(SizeRun.from_json(data))
            took.append(f"{name} {time.time() - begun:.0f} s")
        progress("bootstrap: a child process")
        begun = time.time()
        data = child(
            "--bootstrap-child",
            Path(scratch) / "bootstrap.json",
            "--shape",
            "postmarketos",
            "--packages",
            "2000",
            "--small-packages",
            str(args.small_packages),
            *common,
        )
        took.append(f"bootstrap {time.time() - begun:.0f} s")
    figures_of = data["figures"]
    assert isinstance(figures_of, list)
    bootstrap = [Figure.from_json(f) for f in figures_of]
    small, large = reports
    header = [
        f"reconciler bench, two sizes, {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))},"
        f" {machine()}",
        f"command: .venv/bin/python bench/run.py --alpine --runs {runs}"
        f" --small-packages {args.small_packages}; code: {version()}",
        f"2,000:  {small.describe}",
        f"Alpine: {large.describe}",
        f"each figure: median of {runs} runs (wall) unless its note says otherwise; growth ="
        " Alpine / 2,000; targets (issue 20) judged at the Alpine size; CPU = the measuring"
        " process's CPU time (user + system); each size measured in a process of its own;"
        f" load average at start {load[0]:.2f}, at end {os.getloadavg()[0]:.2f}",
        "",
    ]
    lines = header + two_sizes(("2,000", "Alpine"), small.figures, large.figures + bootstrap)
    lines += ["", *(f"2,000: {n}" for n in small.notes), *(f"Alpine: {n}" for n in large.notes)]
    misses = missed(large.figures + bootstrap, small.figures)
    lines.append("missed: " + ("; ".join(misses) if misses else "none"))
    lines.append(f"time taken: {time.time() - started:.0f} s ({', '.join(took)})")
    print("\n".join(lines))
    out = results_file(started, "-alpine")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwritten to {out.relative_to(ROOT)}")


def run_single(args: argparse.Namespace) -> None:
    """One size (--packages N, 2 branches x 7 arches) in this process; the
    restarts and the bootstrap in processes of their own. Long because of the
    header and --profile."""
    started = time.time()
    load = os.getloadavg()
    runs = args.runs or 5
    shape = SHAPES["postmarketos"]
    workdir = shape.workdir(args.workdir, args.packages, args.seed)
    config, log = prepare(
        workdir,
        args.packages,
        args.seed,
        shape.branches,
        shape.arches,
        populated=True,
        fresh=args.fresh,
    )
    for line in log:
        print(line)
    if args.prepare_only:
        return
    top = args.top if args.profile else None
    run = measure_size(config, workdir, args.packages, runs, args.index_apks, top)
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as scratch:
        data = child(
            "--bootstrap-child",
            Path(scratch) / "bootstrap.json",
            "--shape",
            "postmarketos",
            "--packages",
            str(args.packages),
            "--small-packages",
            str(args.small_packages),
            "--runs",
            str(runs),
            "--seed",
            str(args.seed),
            "--workdir",
            str(args.workdir),
        )
    figures_of = data["figures"]
    assert isinstance(figures_of, list)
    figures = run.figures + [Figure.from_json(f) for f in figures_of]
    header = [
        f"reconciler bench, {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))},"
        f" {machine()}",
        f"command: .venv/bin/python bench/run.py --packages {args.packages} --runs {runs}"
        f" --small-packages {args.small_packages}; code: {version()}",
        f"populated: {run.describe}",
        f"each figure: median of {runs} runs (wall) unless its note says otherwise;"
        " CPU = this process's CPU time (user + system); GC = time in the garbage collector;"
        " targets: issue 20's (for the Alpine size);"
        f" load average at start {load[0]:.2f}, at end {os.getloadavg()[0]:.2f}",
        "",
    ]
    lines = header + table(figures) + ["", *run.notes]
    lines.append(f"peak memory at the end of the run: {peak_mb():.0f} MB")
    misses = [f for f in figures if f.met is False]
    lines.append("missed: " + (", ".join(f.label for f in misses) if misses else "none"))
    print("\n".join(lines))
    if args.profile:
        print("\n".join(run.profiles))
        lines += run.profiles
        for figure in misses:
            if figure.again is not None:
                profiled = profile(figure, args.top)
                print("\n".join(profiled))
                lines += profiled
        memory = next(f for f in figures if f.unit == "MB")
        if memory.met is False:
            run.passes = None  # the child process needs the memory more
            report = run_script(
                "bench/run.py",
                "--memory-child",
                str(workdir / "config.yaml"),
                "--top",
                str(args.top),
            )
            print(report)
            lines += report.splitlines()
    out = results_file(started, "" if args.packages == 2000 else f"-n{args.packages}")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwritten to {out.relative_to(ROOT)} ({time.time() - started:.0f} s in all)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--packages", type=int, default=2000, help="APKBUILDs per tree")
    parser.add_argument("--alpine", action="store_true", help="2,000 and the Alpine size")
    parser.add_argument(
        "--runs", type=int, help="runs per figure (median; default 5, with --alpine 3)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--index-apks", type=int, default=2000)
    parser.add_argument("--small-packages", type=int, default=50, help="bootstrap tree")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "reconciler-bench"
    )
    parser.add_argument("--fresh", action="store_true", help="regenerate trees and repos")
    parser.add_argument("--profile", action="store_true", help="profile missed figures")
    parser.add_argument("--prepare-only", action="store_true", help="generate, populate, stop")
    parser.add_argument("--top", type=int, default=5, help="functions per profile")
    parser.add_argument(
        "--shape", choices=sorted(SHAPES), default="postmarketos", help=argparse.SUPPRESS
    )
    parser.add_argument("--size-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--restart-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--desired-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.top)
    elif args.restart_child:
        restart_child(args.restart_child)
    elif args.desired_child:
        desired_child(args.desired_child, args.runs or 5, args.top if args.profile else None)
    elif args.size_child:
        size_child(args, args.size_child)
    elif args.bootstrap_child:
        bootstrap_child(args, args.bootstrap_child)
    elif args.alpine:
        if args.profile or args.fresh or args.prepare_only:
            parser.error("--alpine takes none of --profile, --fresh, --prepare-only")
        run_alpine(args)
    else:
        run_single(args)


if __name__ == "__main__":
    main()
