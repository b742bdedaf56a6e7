"""One changed package costs the same whatever the distribution's size: the site
writer renders and writes the same pages and files after one package's state
changes in a generated tree and in one ten times larger (counts, not times;
bench/run.py measures the times), its branch grid cut into pages at both sizes.
Every file a change rewrites is one that shows the package or counts it."""

from __future__ import annotations

import errno
import re
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.model.names import RepoKey
from reconciler.model.packages import DepRef, PkgSpec
from reconciler.model.progress import PkgState, PkgStatus, RepoPhase, RepoStatus
from reconciler.plan.planner import Plan
from reconciler.site import writer as writer_module
from reconciler.site.metrics import MetricsFormatter, PassFigures, pass_metrics, plan_metrics
from reconciler.site.model import BranchInfo, SiteInput
from reconciler.site.writer import SiteWriter

ARCHES = ("x86_64", "aarch64", "armv7")
BRANCHES = ("main", "v25.12")
NOW = 1_800_000_000.0
GRID_ROWS = 8  # rows per grid page: both sizes are cut into pages


def generated(packages: int, start: int = 0) -> SiteInput:
    """Every package in every branch and arch, each depending on the two before it:
    the last one is a leaf (nothing needs it), whatever the size."""
    names = [f"pkg-{i:05d}" for i in range(start, start + packages)]
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


def site_files(out: Path) -> dict[str, bytes]:
    """Every file's bytes but the manifest's, the footers' times read as one."""
    return {
        str(p.relative_to(out)): re.sub(rb"\d{4}-\d\d-\d\dT[\d:]+Z", b"T", p.read_bytes())
        for p in out.rglob("*")
        if p.is_file() and not p.name.endswith(".gz")
    }


def files_of(out: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every file: an atomic rewrite always changes the inode."""
    return {
        str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in out.rglob("*")
        if p.is_file()
    }


def cost_of_one_change(
    tmp_path: Path, packages: int, grid_rows: int = GRID_ROWS
) -> tuple[int, int, set[str]]:
    """(pages rendered, files written, the files rewritten with the package's name and
    its grid page's written as <pkg> and <page>, no .gz twins) by the pass after the
    leaf fails in main/x86_64."""
    site = generated(packages)
    out = tmp_path / f"site-{packages}"
    writer = SiteWriter(out, grid_rows=grid_rows)
    writer.render(site, NOW)
    rendered, written = writer.rendered, writer.written
    before = files_of(out)
    leaf = f"pkg-{packages - 1:05d}"
    changed = tuple(
        replace(s, state=PkgState.FAILED, reason="exit code 1", tries=3, max_tries=3)
        if s.pkgname == leaf and s.repo == RepoKey("main", "", "x86_64")
        else s
        for s in site.plan.packages
    )
    assert writer.render(replace(site, plan=replace(site.plan, packages=changed)), NOW + 60)
    after = files_of(out)
    assert set(after) == set(before), "a state's change adds or removes no file"
    # .gz twins left out: a page has one above a size, which the larger tree's pages reach
    rewritten = {p for p in after if before[p] != after[p] and not p.endswith(".gz")}
    grid_page = re.compile(r"(branch|status)/main/[^/.]+\.")
    shown = {grid_page.sub(r"\1/main/<page>.", p.replace(leaf, "<pkg>")) for p in rewritten}
    return writer.rendered - rendered, writer.written - written, shown


@pytest.mark.parametrize("small", [20, 27])
def test_one_changed_package_costs_the_same_at_ten_times_the_size(
    tmp_path: Path, small: int
) -> None:
    at_small = cost_of_one_change(tmp_path, small)
    at_large = cost_of_one_change(tmp_path, 10 * small)
    assert at_small == at_large
    pages, files, shown = at_small
    assert 0 < pages <= 8 and 0 < files <= 12, at_small
    # The package's page, its row's grid page and package document, the branch page
    # (counts), the pages and documents that count or list failures: nothing else.
    assert shown == {
        "package/main/<pkg>.html",
        "branch/main/<page>.html",
        "status/main/<page>.json",
        "branch/main.html",
        "index.html",
        "failures.html",
        "monitoring.txt",
        "badge.svg",
        "status.json",
        "status/main.json",
        "status/v25.12.json",  # the badge, which every status document has
    }


def test_a_branch_on_one_page_costs_the_same_too(tmp_path: Path) -> None:
    """Below a page's rows the branch page is the grid: the same change rewrites it,
    and no grid page, whatever the size."""
    small = cost_of_one_change(tmp_path, 20, grid_rows=1000)
    large = cost_of_one_change(tmp_path, 200, grid_rows=1000)
    assert small[:2] == large[:2]
    assert "branch/main/<page>.html" not in small[2] | large[2]
    assert {"branch/main.html", "status/main/<page>.json"} <= small[2] & large[2]


def test_the_heartbeat_counts_only_what_changed_and_counts_it_right() -> None:
    """The metrics' packages per repository and state, kept from plan to plan, are
    those a fresh count makes: packages changing state, appearing and going."""
    formatter = MetricsFormatter()
    figures = PassFigures(NOW, 0.1, 0, True, 0, 0, 0, 0)
    site = generated(30)
    statuses = list(site.plan.packages)
    for step in range(6):
        statuses[step * 7] = replace(statuses[step * 7], state=list(PkgState)[step])
        if step == 3:
            del statuses[10:20]
        if step == 4:
            statuses += [replace(s, pkgname=s.pkgname + "-new") for s in statuses[:5]]
        plan = replace(site.plan, packages=tuple(statuses))
        assert formatter.format(plan, figures) == plan_metrics(plan) + pass_metrics(figures)


def test_what_a_failed_render_did_not_write_the_next_one_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A render whose files cannot be written (a full disk) moves the kept model on
    all the same: the next render writes its pages too, and the site is then the
    one a new writer makes of the last snapshot."""
    site = generated(30)
    out = tmp_path / "site"
    writer = SiteWriter(out, grid_rows=GRID_ROWS)
    writer.render(site, NOW)

    def fail(first: int, last: int) -> SiteInput:
        """Packages first..last-1 failed in main/x86_64."""
        return replace(
            site,
            plan=replace(
                site.plan,
                packages=tuple(
                    replace(s, state=PkgState.FAILED, reason="exit code 1")
                    if s.repo == RepoKey("main", "", "x86_64")
                    and first <= int(s.pkgname[4:]) < last
                    else s
                    for s in site.plan.packages
                ),
            ),
        )

    real = writer_module.write_batch

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module, "write_batch", full_disk)
    with pytest.raises(OSError):
        writer.render(fail(10, 20), NOW + 60)
    monkeypatch.setattr(writer_module, "write_batch", real)
    last = fail(5, 20)  # those stay failed, more fail meanwhile
    writer.render(last, NOW + 120)
    fresh = tmp_path / "fresh"
    SiteWriter(fresh, grid_rows=GRID_ROWS).render(last, NOW + 120)
    assert site_files(out) == site_files(fresh)
