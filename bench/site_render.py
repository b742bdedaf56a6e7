"""Benchmark: rendering the status site at postmarketOS scale, on one core.

Builds a synthetic snapshot of N packages x B branches x A arches (default
2,000 x 2 x 7), then times, each as the median of several runs with this process
pinned to one CPU: a full render into an empty directory, a pass whose snapshot
did not change, and a pass after one package changed. To tell the renderer's own
work from the file system's, it also times the full render into tmpfs (/dev/shm,
when there is one) and just writing the same files with the same helper
(atomicfile.write_new_tree) into an empty directory: the floor any renderer pays
for creating that many files there. It names the file system it wrote to, since
that floor differs between them by several times (bench/machine.py). Prints a
table; asserts nothing.

    .venv/bin/python bench/site_render.py [--packages N] [--runs R] [--dir DIR]
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from machine import describe_filesystem, one_core

from reconciler.fs.atomicfile import write_new_tree
from reconciler.model.names import RepoKey
from reconciler.model.packages import DepRef, PkgSpec
from reconciler.model.progress import PkgState, PkgStatus, RepoPhase, RepoStatus
from reconciler.plan.planner import Plan
from reconciler.site.model import BranchInfo, SiteInput
from reconciler.site.writer import SiteWriter

ARCHES = ("x86_64", "aarch64", "armv7", "riscv64", "x86", "ppc64le", "loongarch64")


def snapshot(packages: int, branches: int, seed: int = 1) -> SiteInput:
    rng = random.Random(seed)
    names = [f"pkg-{i:04d}" for i in range(packages)]
    statuses: list[PkgStatus] = []
    specs: dict[tuple[RepoKey, str], PkgSpec] = {}
    repos: list[RepoStatus] = []
    states = list(PkgState)
    dep_indices = [rng.sample(range(i), min(i, 3)) for i in range(packages)]
    for b in range(branches):
        branch = "main" if b == 0 else f"v2{b}.06"
        for arch in ARCHES:
            key = RepoKey(branch, "", arch)
            repos.append(RepoStatus(key, RepoPhase.PUBLISHED, "", "c0ffee" * 6, "2026-11-24"))
            for i, name in enumerate(names):
                deps = tuple(DepRef(key, names[d]) for d in dep_indices[i])
                state = PkgState.PUBLISHED if rng.random() < 0.97 else rng.choice(states)
                statuses.append(PkgStatus(key, name, "1.0-r0", state, f"reason {i}", 1, 3, None))
                specs[(key, name)] = PkgSpec(
                    key,
                    name,
                    "1.0-r0",
                    f"main/{name}",
                    arch,
                    f"the {name} package",
                    build_deps=deps,
                )
    return SiteInput(
        title="bench",
        url="https://build.example.org/",
        branches=tuple(
            BranchInfo("main" if b == 0 else f"v2{b}.06", ARCHES, False, "c0ffee" * 6)
            for b in range(branches)
        ),
        plan=Plan((), tuple(statuses), tuple(repos)),
        specs=specs,
        versions={},
        jobs=(),
        events=(),
        max_parallel=4,
    )


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    with one_core() as pinned:
        run(pinned)


def run(pinned: str) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=2000)
    parser.add_argument("--branches", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to write (default: the system temp dir)")
    args = parser.parse_args()
    site = snapshot(args.packages, args.branches)
    statuses = site.plan.packages
    changed_statuses = (
        replace(statuses[0], state=PkgState.BUILDING, reason="building"),
        *statuses[1:],
    )
    changed = replace(site, plan=replace(site.plan, packages=changed_statuses))
    base = Path(args.dir or tempfile.gettempdir())
    shm = Path("/dev/shm")
    use_shm = shm.is_dir() and os.access(shm, os.W_OK)
    cases: dict[str, list[tuple[float, float]]] = {
        "full render (empty dir)": [],
        "full render into tmpfs (/dev/shm)": [],
        "nothing changed": [],
        "one package changed": [],
        "writing the same files only": [],
    }
    if not use_shm:
        del cases["full render into tmpfs (/dev/shm)"]
    files: list[tuple[str, bytes]] = []
    made: list[Path] = []  # deleted after all runs: see bench/machine.py on ext4
    # The cases take turns within each run, so that a slow minute of this machine
    # slows every case alike instead of one.
    for _ in range(args.runs):
        out = Path(tempfile.mkdtemp(prefix="site-bench-", dir=base))
        made.append(out)
        writer = SiteWriter(out)
        cases["full render (empty dir)"].append(timed(functools.partial(writer.render, site, 1.0)))
        cases["nothing changed"].append(timed(functools.partial(writer.render, site, 2.0)))
        cases["one package changed"].append(timed(functools.partial(writer.render, changed, 3.0)))
        if not files:
            found = sorted(p for p in out.rglob("*") if p.is_file())
            files = [(str(p.relative_to(out)), p.read_bytes()) for p in found]
        if use_shm:
            out = Path(tempfile.mkdtemp(prefix="site-bench-", dir=shm))
            made.append(out)
            cases["full render into tmpfs (/dev/shm)"].append(
                timed(functools.partial(SiteWriter(out).render, site, 1.0))
            )
        out = Path(tempfile.mkdtemp(prefix="site-bench-files-", dir=base))
        made.append(out)
        write = functools.partial(write_new_tree, str(out), files)
        cases["writing the same files only"].append(timed(write))
    for out in made:
        shutil.rmtree(out)
    size = sum(len(data) for _, data in files)
    print(
        f"site render: {args.packages} packages x {args.branches} branches x {len(ARCHES)} arches"
        f" = {len(statuses)} package states, {len(files)} files, {size / 1e6:.1f} MB"
    )
    print(f"{pinned}; median of {args.runs} runs, the cases taking turns in each run")
    print(f"written under {base}: {describe_filesystem(base)}")
    if use_shm:
        print(f"tmpfs row under {shm}: {describe_filesystem(shm)}")
    print(f"{'case':34} {'wall median':>12} {'wall min':>10} {'CPU median':>11}")
    for label, values in cases.items():
        walls = [w for w, _ in values]
        cpus = [c for _, c in values]
        print(
            f"{label:34} {statistics.median(walls) * 1000:10.1f}ms {min(walls) * 1000:8.1f}ms"
            f" {statistics.median(cpus) * 1000:9.1f}ms"
        )


if __name__ == "__main__":
    main()
