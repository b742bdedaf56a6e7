"""One changed package costs the same whatever the distribution's size: the site
writer renders and writes the same number of pages and files after one package's
state changes in a generated tree and in one ten times larger (counts, not times;
bench/run.py measures the times)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.model.names import RepoKey
from reconciler.model.packages import DepRef, PkgSpec
from reconciler.model.progress import PkgState, PkgStatus, RepoPhase, RepoStatus
from reconciler.plan.planner import Plan
from reconciler.site.model import BranchInfo, SiteInput
from reconciler.site.writer import SiteWriter

ARCHES = ("x86_64", "aarch64", "armv7")
BRANCHES = ("main", "v25.12")
NOW = 1_800_000_000.0


def generated(packages: int) -> SiteInput:
    """Every package in every branch and arch, each depending on the two before it:
    the last one is a leaf (nothing needs it), whatever the size."""
    names = [f"pkg-{i:05d}" for i in range(packages)]
    statuses: list[PkgStatus] = []
    specs: dict[tuple[RepoKey, str], PkgSpec] = {}
    repos: list[RepoStatus] = []
    for branch in BRANCHES:
        for arch in ARCHES:
            key = RepoKey(branch, "", arch)
            repos.append(RepoStatus(key, RepoPhase.PUBLISHED, "", "c0ffee", "2026-11-24"))
            for i, name in enumerate(names):
                deps = tuple(DepRef(key, names[d]) for d in (i - 1, i - 2) if d >= 0)
                statuses.append(PkgStatus(key, name, "1.0-r0", PkgState.PUBLISHED))
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
        title="reconciler",
        url="https://build.example.org/",
        branches=tuple(BranchInfo(b, ARCHES, False, "c0ffee") for b in BRANCHES),
        plan=Plan((), tuple(statuses), tuple(repos)),
        specs=specs,
        versions={},
        jobs=(),
        events=(),
        max_parallel=2,
    )


def cost_of_one_change(tmp_path: Path, packages: int) -> tuple[int, int]:
    """(pages rendered, files written) by the pass after the leaf fails in main/x86_64."""
    site = generated(packages)
    writer = SiteWriter(tmp_path / f"site-{packages}")
    writer.render(site, NOW)
    rendered, written = writer.rendered, writer.written
    leaf = f"pkg-{packages - 1:05d}"
    changed = tuple(
        replace(s, state=PkgState.FAILED, reason="exit code 1", tries=3, max_tries=3)
        if s.pkgname == leaf and s.repo == RepoKey("main", "", "x86_64")
        else s
        for s in site.plan.packages
    )
    assert writer.render(replace(site, plan=replace(site.plan, packages=changed)), NOW + 60)
    return writer.rendered - rendered, writer.written - written


@pytest.mark.parametrize("small", [20])
def test_one_changed_package_costs_the_same_at_ten_times_the_size(
    tmp_path: Path, small: int
) -> None:
    at_small = cost_of_one_change(tmp_path, small)
    at_large = cost_of_one_change(tmp_path, 10 * small)
    assert at_small == at_large
    pages, files = at_small
    assert 0 < pages <= 8 and 0 < files <= 10, at_small
