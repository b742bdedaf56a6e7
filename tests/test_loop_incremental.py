"""One changed APKBUILD costs the daemon the same whatever the tree's size: from the
push to the published package, the real loop (in-memory jobs, fake clock) renders
the same number of pages and writes the same number of files in a generated tree
and in one ten times larger. Counts, not times: bench/run.py measures the times."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

from reconciler.config.settings import Config, load_config
from reconciler.loop import Daemon
from reconciler.model.progress import PkgState

from .conftest import set_field
from .fake_clock import FakeClock
from .fake_daemon import fake_daemon
from .memory_jobs import JobTable

BASES = 3  # packages everything else builds against
HEARTBEAT = "metrics.prom"  # written by every pass on purpose


def write_tree(root: Path, packages: int) -> None:
    """`packages` APKBUILDs: a few bases, the rest leaves that build against them,
    committed as a git checkout as pmaports always is."""
    for i in range(packages):
        name = f"base-{i}" if i < BASES else f"leaf-{i:05d}"
        makedepends = "" if i < BASES else " ".join(f"base-{b}" for b in range(BASES))
        directory = root / "main" / name
        directory.mkdir(parents=True)
        (directory / "APKBUILD").write_text(
            textwrap.dedent(
                f"""\
                pkgname={name}
                pkgver=1.0
                pkgrel=0
                pkgdesc="generated package {i}"
                url="https://example.org/"
                arch="all"
                license="MIT"
                makedepends="{makedepends}"
                """
            ),
            encoding="utf-8",
        )
    git(root, "init", "-q", "-b", "master")
    commit_all(root, "generated tree")


def git(root: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@localhost",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@localhost",
    }
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--no-gpg-sign", "-m", message)


def config_for(base: Path, tree: Path, key_files: Path) -> Config:
    path = base / "config.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            paths: {{data: {base}/data, html_out: {base}/html}}
            jobs: {{max_parallel: 1000}}
            builder: {{duration_seconds: 0}}
            loop: {{poll_interval_seconds: 0.5, settle_seconds: 0}}
            branches:
              - name: main
                pmaports: {tree}
                arches: [x86_64, aarch64]
            """
        ),
        encoding="utf-8",
    )
    config = load_config(path)
    shutil.copytree(key_files, config.keys.wip_private.parent)
    return config


def files_state(*roots: Path) -> dict[str, tuple[int, int, int]]:
    """Every file below roots -> (mtime_ns, inode, size)."""
    found = {}
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                stat = os.lstat(os.path.join(directory, name))
                found[os.path.join(directory, name)] = (stat.st_mtime_ns, stat.st_ino, stat.st_size)
    return found


def written_between(
    before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]], base: Path
) -> list[str]:
    """Files made, changed or removed, relative to base, without the heartbeat."""
    changed = {p for p, v in after.items() if before.get(p) != v} | (before.keys() - after.keys())
    return sorted(os.path.relpath(p, base) for p in changed if not p.endswith(HEARTBEAT))


def settle(daemon: Daemon) -> int:
    """Passes until nothing runs and nothing happens; how many it took."""
    for count in range(1, 100):
        result = daemon.run_pass()
        if not result.live_jobs and not result.progressed:
            return count
    raise AssertionError("the daemon did not settle")


def rebuild(daemon: Daemon, clock: FakeClock, tree: Path, name: str) -> None:
    """A push that raises `name`'s pkgrel, and the passes until it is published."""
    set_field(tree / "main" / name / "APKBUILD", "pkgrel", "1")
    commit_all(tree, f"{name}: rebuild")
    daemon.run_pass(full=True)  # what a push does: walk the tree again
    clock.advance(1)
    settle(daemon)
    last = daemon.run_pass()
    assert {(str(p.repo), p.state, p.version) for p in last.plan.packages if p.pkgname == name} == {
        ("main/x86_64", PkgState.PUBLISHED, "1.0-r1"),
        ("main/aarch64", PkgState.PUBLISHED, "1.0-r1"),
    }


def cost_of_one_change(base: Path, packages: int, key_files: Path) -> tuple[int, int, list[str]]:
    """(pages rendered, files written, what was written) from a leaf's new pkgrel to
    its publication, on a converged daemon over a tree of `packages` APKBUILDs that
    has lived through one such change already (the first publish after a bootstrap
    links every apk of the symlink repository to final instead of WIP, once)."""
    tree = base / "pmaports"
    write_tree(tree, packages)
    config = config_for(base, tree, key_files)
    clock = FakeClock()
    daemon = fake_daemon(config, clock, JobTable(base / "data" / "jobs" / "memory"))
    assert daemon.converge(max_seconds=3600).all_published
    settle(daemon)
    rebuild(daemon, clock, tree, f"leaf-{packages - 2:05d}")
    site = daemon.site
    rendered = site.rendered
    roots = (config.paths.data, config.paths.html_out)
    before = files_state(*roots)
    rebuild(daemon, clock, tree, f"leaf-{packages - 1:05d}")
    files = written_between(before, files_state(*roots), base)
    return site.rendered - rendered, len(files), files


def test_one_changed_apkbuild_costs_the_same_at_ten_times_the_size(
    tmp_path: Path, key_files: Path
) -> None:
    small = cost_of_one_change(tmp_path / "small", 20, key_files)
    large = cost_of_one_change(tmp_path / "large", 200, key_files)
    assert small[:2] == large[:2], (small, large)
    pages, files, _ = small
    # About six passes from the push to the publication, each rendering the
    # package's page, the branch's grid, the summaries and feeds it changes: a
    # handful a pass, not one per package. Files: those pages, the two new apks, the
    # indexes, the jobs' files and logs, the state and the scanner's cache of each
    # changed directory: none per package.
    assert 0 < pages < 40, small
    assert 0 < files < 80, small
