"""Benchmark: reconciler at postmarketOS scale (issue 6), printed as one table.

Generates pmaports-shaped trees (bench/tree.py, N packages, default 2,000, one
tree per branch, committed as git checkouts like pmaports), fills every final
repository of 2 branches x 7 arches with real apks and signed indexes
(bench/populate.py, in a subprocess so its memory does not count), then
measures in this process, each figure the median of R runs (default 5):

- desired state for one branch (parse + resolve): at the first start (a new
  DesiredReader, nothing cached), cold (a restart: a new DesiredReader with the
  APKBUILD parse cache the daemon keeps in its state directory) and with an
  unchanged tree (the same reader again);
- a full Daemon.run_pass() where nothing changed (local job service, after one
  warm-up pass), with the apks it opened and the files it wrote besides the
  heartbeat (metrics.prom); the resync pass (run_pass(full=True)) beside it;
- APKINDEX generation for 2,000 apks: cold (read_apk of each + format_index +
  build_index_archive) and after one apk changed (RepoScanner.scan with its
  cache, then EntryCache.format_index, which formats only new apks, +
  build_index_archive, as RepoStore.reindex_wip does);
- site rendering of the daemon's own snapshot, pinned to one CPU: full (empty
  directory, whose file system the row names; again into tmpfs, to tell CPU
  from file creation), nothing changed (an equal snapshot from another pass)
  and one package changed;
- orchestration overhead per package from trigger to publish with instant
  synthetic builds: Daemon.converge() on a small tree (default 50 APKBUILDs, one
  branch, x86_64 only, builder duration 0, local jobs), wall time / packages;
- peak memory: ru_maxrss of this process after the large passes.

Each row gives wall time (median, min), this process's CPU time and the time
spent in the garbage collector. Targets are the issue's (2-core machine); each
row says met or missed. The table also goes to bench/results/<date>.txt
(<date>-n<N>.txt for other sizes). `--profile` runs each missed figure once more
under cProfile and prints its top costs (and, for memory, a tracemalloc report
from a child process). Generated trees and repositories are kept in --workdir and
reused while the generator scripts, the size and the seed stay the same;
`--prepare-only` just generates and populates. A quick run takes about a minute:

    .venv/bin/python bench/run.py --packages 200 --runs 2
    .venv/bin/python bench/run.py [--packages N] [--runs R] [--small-packages M]
                                  [--workdir DIR] [--profile] [--fresh] [--prepare-only]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import hashlib
import os
import platform
import pstats
import resource
import shutil
import statistics
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

from reconciler.config.settings import Config, load_config
from reconciler.desired.parsecache import ParseCache
from reconciler.desired.reader import DesiredReader
from reconciler.formats.apk import read_apk_bytes
from reconciler.formats.apkindex import EntryCache, build_index_archive, format_index
from reconciler.formats.apkwrite import build_apk
from reconciler.fs.apkfiles import read_apk
from reconciler.loop import Daemon
from reconciler.model.layout import RepoRoots
from reconciler.model.names import RepoKey
from reconciler.model.packages import BranchDesired
from reconciler.model.progress import PkgState
from reconciler.observed.scanner import RACY_NS, RepoScanner
from reconciler.site.model import SiteInput
from reconciler.site.writer import SiteWriter

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ARCHES = ("x86_64", "aarch64", "armv7", "riscv64", "x86", "ppc64le", "loongarch64")
BRANCHES = ("main", "v25.12")
MARKER = ".reconciler-bench"
HEARTBEATS = ("metrics.prom",)
T = TypeVar("T")


# --- measuring ---------------------------------------------------------------------
@dataclass
class Figure:
    label: str
    unit: str  # "ms" or "MB"
    target: float | None  # in `unit`; None: informational
    samples: list[float] = field(default_factory=list)  # wall, in `unit`
    cpu: list[float] = field(default_factory=list)  # CPU ms of this process
    gc: list[float] = field(default_factory=list)  # ms in the garbage collector
    note: str = ""
    again: Callable[[], object] | None = None  # one more run, for --profile
    entry: str = ""  # function whose direct callees the profile breaks down

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.median < self.target


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


def stamp(packages: int, seed: int, kind: str) -> str:
    digest = hashlib.sha256()
    for script in ("tree.py", "populate.py"):
        digest.update((BENCH / script).read_bytes())
    return f"{kind} packages={packages} seed={seed} scripts={digest.hexdigest()[:16]}\n"


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
    wanted = stamp(packages, seed, "populated" if populated else "tree")
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


def bench_desired(config: Config, runs: int) -> tuple[Figure, Figure, Figure]:
    branch = config.branches[0]
    first = Figure(f"desired state, 1 branch, first start ({branch.name})", "ms", None)
    cold = Figure("desired state, 1 branch, cold (restart)", "ms", 300.0)
    warm = Figure("desired state, 1 branch, unchanged tree", "ms", None)
    cache_dir = config.paths.state

    def first_read() -> tuple[DesiredReader, BranchDesired]:
        reader = DesiredReader(config.splitrepos)
        return reader, reader.read_branch(branch)

    def restart_read() -> tuple[DesiredReader, BranchDesired]:
        reader = DesiredReader(config.splitrepos, ParseCache(cache_dir))
        return reader, reader.read_branch(branch)

    for _ in range(runs):
        measure(first, first_read)
    restart_read()  # the daemon's passes wrote the cache already; make sure
    for _ in range(runs):
        reader, desired = measure(cold, restart_read)
    for _ in range(runs):
        measure(warm, functools.partial(reader.read_branch, branch))
    specs = sum(len(s) for s in desired.repos.values())
    files = len(reader.scan_tree(branch.pmaports))
    first.note = f"{files} APKBUILDs -> {specs} package specs; no parse cache: parses every file"
    cold.note = f"a new DesiredReader with the parse cache the daemon keeps in {cache_dir}"
    first.again = lambda: first_read()[1]
    cold.again = lambda: restart_read()[1]
    first.entry = cold.entry = warm.entry = "read_branch"
    warm.again = lambda: reader.read_branch(branch)
    return first, cold, warm


def bench_passes(config: Config, runs: int) -> tuple[list[Figure], Daemon, list[str]]:
    daemon = Daemon(config)
    site = RecordingSiteWriter(config.paths.html_out)
    daemon.site = site
    notes: list[str] = []
    first = Figure("first pass after start (reads every apk)", "ms", None)
    result = measure(first, lambda: daemon.run_pass(full=True))
    first.note = f"{daemon.scanner.apks_opened} apks opened"
    plan = result.plan
    published = sum(1 for p in plan.packages if p.state is PkgState.PUBLISHED)
    notes.append(
        f"warm-up pass: {published}/{len(plan.packages)} package states published,"
        f" {len(plan.actions)} actions, repos: "
        + ", ".join(
            f"{n} {phase}"
            for phase in sorted({str(r.phase) for r in plan.repos})
            if (n := sum(1 for r in plan.repos if str(r.phase) == phase))
        )
    )
    roots = (config.paths.data, config.paths.html_out)
    before = files_state(*roots)
    opened = daemon.scanner.apks_opened
    quiet = Figure("pass, nothing changed", "ms", 50.0)
    actions = 0
    for _ in range(runs):
        result = measure(quiet, daemon.run_pass)
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
    resync = Figure("pass, nothing changed, resync (full=True)", "ms", None)
    opened = daemon.scanner.apks_opened
    for _ in range(runs):
        measure(resync, lambda: daemon.run_pass(full=True))
    resync.note = f"{daemon.scanner.apks_opened - opened} apks opened"
    # Two quiet passes more: the site figures render their snapshots. A full pass
    # changes the "last seen" time on purpose, so it is not an unchanged snapshot.
    daemon.run_pass()
    daemon.run_pass()
    return [first, quiet, resync], daemon, notes


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


def bench_site(site: RecordingSiteWriter, workdir: Path, runs: int) -> list[Figure]:
    latest, earlier = site.inputs[-1], site.inputs[0]
    statuses = latest.plan.packages
    changed_plan = replace(
        latest.plan,
        packages=(replace(statuses[0], state=PkgState.BUILDING, reason="building"), *statuses[1:]),
    )
    changed = replace(latest, plan=changed_plan)
    full = Figure("site render, full (empty dir)", "ms", 1000.0)
    same = Figure("site render, nothing changed", "ms", None)
    one = Figure("site render, one package changed", "ms", None)
    base = workdir / "site"
    shutil.rmtree(base, ignore_errors=True)
    files = 0
    for run in range(runs):
        writer = SiteWriter(base / f"run-{run}")
        measure(full, functools.partial(writer.render, latest, 1.0))
        measure(same, functools.partial(writer.render, earlier, 2.0))
        measure(one, functools.partial(writer.render, changed, 3.0))
        files = sum(1 for p in (base / f"run-{run}").rglob("*") if p.is_file())
    shutil.rmtree(base)  # after the runs: no deletion is flushed during a timed render
    equal = "an equal snapshot" if earlier == latest and earlier is not latest else "NOT equal"
    full.note = (
        f"{len(statuses)} package states, {files} files,"
        f" in {base.parent}: {describe_filesystem(base.parent)}"
    )
    same.note = f"the previous pass's snapshot: {equal}"
    figures = [full, same, one]
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        # The same render into tmpfs: the CPU work without the disk's file creation.
        memory = Figure("site render, full, into tmpfs (/dev/shm)", "ms", None)
        for _ in range(runs):
            out = Path(tempfile.mkdtemp(prefix="reconciler-bench-site-", dir=shm))
            try:
                measure(memory, functools.partial(SiteWriter(out).render, latest, 1.0))
            finally:
                shutil.rmtree(out)
        figures.insert(1, memory)

    def again() -> object:
        shutil.rmtree(base / "profile", ignore_errors=True)
        return SiteWriter(base / "profile").render(latest, 1.0)

    full.again = again
    full.entry = "render"
    return figures


def on_one_core(action: Callable[[], list[Figure]]) -> list[Figure]:
    """The figures of `action` taken with this process pinned to one CPU (the
    issue's "on one core"), noted on each."""
    with one_core() as pinned:
        figures = action()
    for figure in figures:
        figure.note = f"{figure.note}; {pinned}" if figure.note else pinned
    return figures


def bench_orchestration(workdir: Path, keys: Path, packages: int, seed: int, runs: int) -> Figure:
    small = workdir / "small"
    config, _ = prepare(small, packages, seed, ("main",), ("x86_64",), populated=False, fresh=False)
    figure = Figure("orchestration overhead per package", "ms", None)
    counts = ""
    for _ in range(runs):
        for path in (config.paths.data, config.paths.html_out):
            shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(keys, config.keys.wip_private.parent)
        daemon = Daemon(config)
        desired = daemon.read_desired()
        specs = sum(len(s) for d in desired.values() for s in d.repos.values())
        wall, cpu, result = timed(functools.partial(daemon.converge, max_seconds=600))
        if not result.all_published:
            raise SystemExit(f"the small tree did not converge:\n{result}")
        jobs = len(daemon.jobs.list_jobs()) if daemon.jobs is not None else 0
        figure.samples.append(wall / specs)
        figure.cpu.append(cpu / specs)
        _, apks, _ = repo_counts(config.paths.final_repo)
        counts = (
            f"{specs} packages ({apks} apks), {jobs} jobs, converge {wall / 1000:.1f} s;"
            " CPU column: this process only"
        )
    figure.note = counts
    return figure


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
def fmt(value: float, unit: str) -> str:
    if unit == "ms" and value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"


def table(figures: list[Figure]) -> list[str]:
    lines = [
        f"{'figure':48} {'median':>9} {'min':>9} {'CPU med':>9} {'GC med':>8} {'target':>9}"
        "  result",
        "-" * 101,
    ]
    for f in figures:
        target = "-" if f.target is None else "< " + fmt(f.target, f.unit)
        result = {None: "", True: "met", False: "MISSED"}[f.met]
        cpu = fmt(statistics.median(f.cpu), "ms") if f.cpu else "-"
        collector = fmt(statistics.median(f.gc), "ms") if f.gc else "-"
        lines.append(
            f"{f.label:48} {fmt(f.median, f.unit):>9} {fmt(min(f.samples), f.unit):>9}"
            f" {cpu:>9} {collector:>8} {target:>9}  {result}"
        )
        if f.note:
            lines.append(f"{'':4}{f.note}")
    return lines


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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--packages", type=int, default=2000, help="APKBUILDs per tree")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--index-apks", type=int, default=2000)
    parser.add_argument("--small-packages", type=int, default=50, help="orchestration tree")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "reconciler-bench"
    )
    parser.add_argument("--fresh", action="store_true", help="regenerate trees and repos")
    parser.add_argument("--profile", action="store_true", help="profile missed figures")
    parser.add_argument("--prepare-only", action="store_true", help="generate, populate, stop")
    parser.add_argument("--top", type=int, default=5, help="functions per profile")
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.top)
        return
    started = time.time()
    load = os.getloadavg()
    workdir = args.workdir / f"n{args.packages}-s{args.seed}"
    config, log = prepare(
        workdir, args.packages, args.seed, BRANCHES, ARCHES, populated=True, fresh=args.fresh
    )
    for line in log:
        print(line)
    if args.prepare_only:
        return
    final_root = config.paths.final_repo
    repos, apks, size = repo_counts(final_root)
    settle(final_root)
    figures: list[Figure] = []
    # The daemon's passes first, so that the memory reading is the daemon's alone.
    passes, daemon, notes = bench_passes(config, args.runs)
    memory = Figure("peak memory (ru_maxrss) after the large passes", "MB", 200.0)
    memory.samples.append(peak_mb())
    memory.note = "one reading: this process's high-water mark after the passes above"
    figures += bench_desired(config, args.runs)
    figures += passes
    assert isinstance(daemon.site, RecordingSiteWriter)
    figures += bench_index(final_root, workdir, args.runs, args.index_apks)
    figures += on_one_core(functools.partial(bench_site, daemon.site, workdir, args.runs))
    figures.append(
        bench_orchestration(
            workdir, config.keys.wip_private.parent, args.small_packages, args.seed, args.runs
        )
    )
    figures.append(memory)
    header = [
        f"reconciler bench, {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))},"
        f" {machine()}",
        f"command: .venv/bin/python bench/run.py --packages {args.packages} --runs {args.runs}"
        f" --small-packages {args.small_packages}",
        f"populated: {len(BRANCHES)} branches x {len(ARCHES)} arches x"
        f" {1 + len(config.splitrepos)} split repos: {repos} repositories with a signed index,"
        f" {apks} apks, {size / 1e6:.1f} MB (tree: {args.packages} APKBUILDs per branch)",
        f"each figure: median of {args.runs} runs (wall); CPU = this process's CPU time"
        " (user + system); GC = time in the garbage collector;"
        f" load average at start {load[0]:.2f}, at end {os.getloadavg()[0]:.2f}",
        "",
    ]
    lines = header + table(figures) + ["", *notes]
    lines.append(f"peak memory at the end of the run: {peak_mb():.0f} MB")
    missed = [f for f in figures if f.met is False]
    lines.append("missed: " + (", ".join(f.label for f in missed) if missed else "none"))
    print("\n".join(lines))
    if args.profile:
        for figure in missed:
            if figure.again is not None:
                profiled = profile(figure, args.top)
                print("\n".join(profiled))
                lines += profiled
        if memory.met is False:
            del daemon  # the child process needs the memory more
            report = run_script(
                "bench/run.py",
                "--memory-child",
                str(workdir / "config.yaml"),
                "--top",
                str(args.top),
            )
            print(report)
            lines += report.splitlines()
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    suffix = "" if args.packages == 2000 else f"-n{args.packages}"
    out = results / f"{time.strftime('%Y-%m-%d', time.localtime(started))}{suffix}.txt"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwritten to {out.relative_to(ROOT)} ({time.time() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
