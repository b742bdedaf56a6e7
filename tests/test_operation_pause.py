"""`reconciler pause` and `resume`: no new job on a paused branch (or arch); running
jobs finish, their builds are collected and what is complete still publishes.

From the command line through the trigger file and its validation to the
standing intents, the intents file and the plan.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from reconciler.cli import main as cli
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.names import RepoKey
from reconciler.model.observations import IndexView, ObservedState, RepoObserved
from reconciler.model.packages import ApkInfo, BranchDesired, PkgSpec
from reconciler.model.progress import PkgState, RepoPhase
from reconciler.operator.intents import Intents, Pause
from reconciler.operator.store import load_intents, save_intents
from reconciler.operator.trigger_dir import TriggerDir
from reconciler.operator.world import World
from reconciler.plan.actions import CollectBuild, SubmitBuild, SubmitSign
from reconciler.plan.inputs import BranchOrder, PlanSettings
from reconciler.plan.memo import PlanMemo
from reconciler.plan.planner import Plan, plan

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_800_000_000.0
X86 = RepoKey("main", "", "x86_64")
ARM = RepoKey("main", "", "aarch64")


def desired() -> dict[str, BranchDesired]:
    repos = {
        key: {
            name: PkgSpec(key, name, "1-r0", f"main/{name}", key.arch) for name in ("a", "b", "c")
        }
        for key in (X86, ARM)
    }
    return {"main": BranchDesired("main", "c0ffee", repos)}


def observed(*jobs: JobObservation, symlink: IndexView | None = None) -> ObservedState:
    c = ApkInfo("c", "1-r0", "x86_64", 100, 10, "Q1c", origin="c")
    final = IndexView({c.filename: c.checksum}, "f" * 64)
    repos = {
        X86: RepoObserved(final={c.filename: c}, final_index=final, symlink_index=symlink),
        ARM: RepoObserved(),
    }
    return ObservedState(repos, {j.key: j for j in jobs}, {})


def settings(intents: Intents) -> PlanSettings:
    return PlanSettings((BranchOrder("main", ("x86_64", "aarch64")),), (), 4, 3, 60, 600, intents)


def submitted(result: Plan) -> list[str]:
    return sorted(a.key.job_id for a in result.actions if isinstance(a, SubmitBuild | SubmitSign))


def pause_of(intents: Intents, arch: str = "", expires: float | None = None) -> Intents:
    pause = Pause("main", arch, "ana", "mirror maintenance", NOW - 60, expires)
    return Intents(pauses=(pause,))


def test_a_paused_branch_starts_no_build_and_says_why() -> None:
    result = plan(desired(), observed(), settings(pause_of(Intents())), NOW)
    assert submitted(result) == []
    by_name = {(p.repo.arch, p.pkgname): p for p in result.packages}
    assert by_name[("x86_64", "a")].state is PkgState.QUEUED
    assert "paused by ana since" in by_name[("x86_64", "a")].reason
    assert "mirror maintenance" in by_name[("x86_64", "a")].reason
    assert by_name[("x86_64", "c")].state is PkgState.PUBLISHED


def test_a_paused_arch_leaves_the_other_arches_alone() -> None:
    result = plan(desired(), observed(), settings(pause_of(Intents(), "aarch64")), NOW)
    assert submitted(result) == [
        "build@main@main@x86_64@a@1-r0@1",
        "build@main@main@x86_64@b@1-r0@1",
    ]


def test_running_jobs_finish_and_are_collected_while_paused() -> None:
    done = JobObservation(
        JobKey(JobIntent(JobKind.BUILD, X86, "a", "1-r0"), 1),
        JobStatus.SUCCESS,
        NOW - 100,
        NOW - 10,
        artifacts_dir="/a",
    )
    result = plan(desired(), observed(done), settings(pause_of(Intents())), NOW)
    assert [type(a) for a in result.actions] == [CollectBuild]


def test_no_sign_job_starts_while_paused() -> None:
    # x86_64 wants only c, built in WIP; the symlink index lists it, unsigned.
    only_c = {
        "main": BranchDesired(
            "main", "c0ffee", {X86: {"c": PkgSpec(X86, "c", "1-r0", "main/c", "x86_64")}}
        )
    }
    c = ApkInfo("c", "1-r0", "x86_64", 100, 10, "Q1c", origin="c")
    listing = {c.filename: c.checksum}
    built = RepoObserved(
        wip={c.filename: c},
        wip_index=IndexView(listing, "w" * 64),
        symlink_index=IndexView(listing, "e" * 64),
    )
    obs = ObservedState({X86: built}, {}, {})
    running = plan(only_c, obs, settings(Intents()), NOW)
    assert submitted(running) == ["sign@main@main@x86_64@-@" + "e" * 64 + "@1"]
    paused = plan(only_c, obs, settings(pause_of(Intents())), NOW)
    assert submitted(paused) == []
    assert paused.repos[0].phase is RepoPhase.SIGNING
    assert "paused by ana" in paused.repos[0].reason


def test_a_pause_ends_by_itself_and_the_memo_knows_when() -> None:
    intents = pause_of(Intents(), expires=NOW + 3600)
    memo, wanted, seen = PlanMemo(), desired(), observed()
    first = memo.plan(wanted, seen, settings(intents), NOW)
    assert submitted(first) == []
    assert memo.plan(wanted, seen, settings(intents), NOW + 3599) is first
    later = memo.plan(wanted, seen, settings(intents), NOW + 3600)
    assert len(submitted(later)) == 4


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            paths:
              data: {tmp_path}/data
              html_out: {tmp_path}/html
            branches:
              - name: main
                pmaports: {ROOT}/examples/pmaports
                arches: [x86_64, aarch64]
            """
        )
    )
    return config


def run_cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    return int(exited.value.code or 0)


def test_from_the_command_line_to_the_intents_file_and_back(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    base = ["--config", str(config), "--branch", "main", "--who", "ana"]
    assert (
        run_cli(["pause", *base, "--arch", "aarch64", "--why", "flaky", "--expires-hours", "2"])
        == 0
    )
    # A bad field is refused before any file is written, naming the field.
    assert run_cli(["pause", *base, "--arch", "ARM!", "--why", "x"]) == 2
    triggers = TriggerDir(tmp_path / "data" / "triggers")
    (trigger,) = triggers.drain()
    assert trigger.operation is not None
    triggers.settle([trigger])
    document = json.loads((triggers.processed / trigger.name).read_text())
    assert document["type"] == "pause" and document["arch"] == "aarch64"
    world = World.of(ObservedState({}, {}, {}), desired(), NOW)
    applied = trigger.operation.apply(Intents(), world)
    (standing,) = applied.intents.pauses
    assert (standing.arch, standing.who, standing.why) == ("aarch64", "ana", "flaky")
    assert standing.since == NOW
    assert standing.expires == pytest.approx(document["requested_at"] + 7200)
    assert [e.message for e in applied.events] == ["paused by ana: flaky"]
    # The pause survives a restart: it is in the intents file.
    path = tmp_path / "intents.json"
    save_intents(path, applied.intents)
    assert load_intents(path) == applied.intents
    # resume without --arch ends the pauses of every arch.
    assert run_cli(["resume", *base[:-2], "--why", "done"]) == 0
    (resume,) = triggers.drain()
    assert resume.operation is not None
    assert resume.operation.apply(applied.intents, world).intents.pauses == ()
