"""Passes that reuse what did not change (the desired state of an unmoved git
checkout, unchanged repository observations, the last plan) still react to
every kind of change: a retry coming due on the clock, an operator trigger, a
new apk in a repository, a commit."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import reconciler.desired.reader
from reconciler.config.branches import BranchConfig
from reconciler.desired.reader import DesiredReader
from reconciler.loop import PassResult
from reconciler.model.progress import PkgState
from reconciler.plan.actions import PruneWip, ReindexWip, SubmitBuild

from .conftest import ConfigFactory, DaemonFactory, git, set_field
from .fake_clock import FakeClock


def state(result: PassResult, repo: str, pkgname: str) -> PkgState:
    return next(
        p.state for p in result.plan.packages if str(p.repo) == repo and p.pkgname == pkgname
    )


def test_cached_passes_react_to_the_clock_triggers_and_new_apks(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, clock: FakeClock
) -> None:
    config = make_config(
        builder='duration_seconds: 0, fail: ["main/x86_64/hello-x86"]',
        retries="max_tries: 3, backoff_seconds: 1000, backoff_max_seconds: 1000",
    )
    daemon = fake_daemon(config)
    results = [daemon.run_pass(full=True)]

    def settle() -> None:
        """Passes until nothing runs and nothing happens (the jobs take no time)."""
        for _ in range(200):
            results.append(daemon.run_pass())
            if not results[-1].live_jobs and not results[-1].progressed:
                return
        raise AssertionError("the daemon did not settle")

    settle()
    assert state(results[-1], "main/x86_64", "hello-x86") is PkgState.RETRYING
    # Idle: the same plan object again, no actions.
    hits = daemon.plans.hits
    idle = daemon.run_pass()
    assert daemon.plans.hits == hits + 1 and idle.plan is results[-1].plan
    assert idle.outcomes == []

    # The clock passes the retry deadline: the next pass starts try 2.
    clock.advance(2000)
    due = daemon.run_pass()
    assert due.plan is not idle.plan
    submitted = [o.action for o in due.outcomes if isinstance(o.action, SubmitBuild)]
    assert [a.key.intent.pkgname for a in submitted] == ["hello-x86"]
    assert submitted[0].key.attempt == 2
    settle()

    # An operator's trigger: the package is held.
    trigger = {"type": "hold", "branch": "main", "pkgname": "hello-x86", "who": "a", "why": "w"}
    (config.paths.triggers / ".hold.tmp").write_text(json.dumps(trigger))
    os.rename(config.paths.triggers / ".hold.tmp", config.paths.triggers / "hold.json")
    held = daemon.run_pass()
    assert state(held, "main/x86_64", "hello-x86") is PkgState.HELD

    settle()

    # A new apk appears in a WIP directory: it is indexed and pruned (published).
    final = config.paths.final_repo / "main/x86_64"
    apk = sorted(final.glob("*.apk"))[0]
    wip = config.paths.wip_repo / "main/x86_64"
    wip.mkdir(parents=True, exist_ok=True)
    shutil.copy(apk, wip / apk.name)
    reacted = daemon.run_pass()
    kinds = {type(o.action) for o in reacted.outcomes}
    assert {ReindexWip, PruneWip} & kinds


def test_an_unmoved_git_checkout_is_not_walked_again(
    pmaports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(pmaports, "init", "-q")
    git(pmaports, "add", "-A")
    git(pmaports, "commit", "-q", "-m", "one")
    branch = BranchConfig("main", pmaports, ("x86_64",))
    reader = DesiredReader(())
    walks: list[Path] = []
    real = DesiredReader.scan_tree

    def counting(self: DesiredReader, root: Path) -> list[reconciler.desired.reader.ParsedFile]:
        walks.append(root)
        return real(self, root)

    monkeypatch.setattr(DesiredReader, "scan_tree", counting)
    first = reader.read_branch(branch, trust_git=True)
    assert reader.read_branch(branch, trust_git=True) is first and len(walks) == 1
    # An edit git does not know of waits for the next walk (resync, push)...
    set_field(pmaports / "main/libfoo/APKBUILD", "pkgrel", "7")
    assert reader.read_branch(branch, trust_git=True) is first
    walked = reader.read_branch(branch)
    assert walked is not first and walked.repos != first.repos
    # ...while a commit (or anything else that rewrites the index) is seen at once.
    set_field(pmaports / "main/libfoo/APKBUILD", "pkgrel", "8")
    git(pmaports, "commit", "-q", "-am", "two")
    committed = reader.read_branch(branch, trust_git=True)
    assert committed.commit != first.commit
    versions = {s.version for r in committed.repos.values() for n, s in r.items() if n == "libfoo"}
    assert versions and all(v.endswith("-r8") for v in versions)
