"""`reconciler status` in the states an operator meets: converged, failing,
running, and a daemon that stopped. It reads what the daemon wrote and writes
nothing. The daemons run on a fake clock set near the real one (status compares
the last pass with the wall clock) with the in-memory job service."""

from __future__ import annotations

import json
import time
from pathlib import Path

from reconciler.config.settings import Config
from reconciler.loop import Daemon

from .command_line import Ran, run_cli
from .conftest import ConfigFactory
from .fake_clock import FakeClock
from .memory_jobs import InMemoryJobService, JobTable


def daemon(config: Config, tmp_path: Path, age_seconds: float = 0.0) -> Daemon:
    """A daemon whose clock starts `age_seconds` before the wall clock."""
    clock = FakeClock(start=time.time() - age_seconds)
    jobs = InMemoryJobService(JobTable(tmp_path / "memory-jobs"), clock)
    return Daemon(config, clock=clock, jobs=jobs, wait=clock.wait)


def status(config: Config, *args: str) -> Ran:
    return run_cli("status", *args, "--config", config.source)


def files_under(*roots: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


def one_arch(pmaports: Path) -> str:
    return f"branches:\n  - {{name: main, pmaports: {pmaports}, arches: [x86_64]}}\n"


def test_converged_prints_the_table_exits_0_and_writes_nothing(
    make_config: ConfigFactory, pmaports: Path, tmp_path: Path
) -> None:
    config = make_config(branches=one_arch(pmaports))
    assert daemon(config, tmp_path).converge(max_seconds=120).all_published
    before = files_under(config.paths.data, config.paths.html_out)
    ran = status(config)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("main  (pmaports ")
    row = next(line for line in lines if line.lstrip().startswith("main/x86_64 "))
    assert " published " in row and "published" in row.split("[")[0]
    assert "problems:" not in ran.stdout and "running:" not in ran.stdout
    assert files_under(config.paths.data, config.paths.html_out) == before

    as_json = status(config, "--json")
    assert as_json.returncode == 0
    written = (config.paths.html_out / "status.json").read_text()
    assert json.loads(as_json.stdout) == json.loads(written)


def test_a_failing_package_is_a_problem_with_its_reason_and_exit_1(
    make_config: ConfigFactory, pmaports: Path, tmp_path: Path
) -> None:
    config = make_config(
        branches=one_arch(pmaports),
        builder='duration_seconds: 0, fail: ["hello-x86"]',
        retries="max_tries: 1, backoff_seconds: 0.05, backoff_max_seconds: 0.2",
    )
    daemon(config, tmp_path).converge(max_seconds=120)
    ran = status(config)
    assert ran.returncode == 1
    problems = ran.stdout.split("problems: ")[1].splitlines()
    assert problems[0] == "1"
    assert problems[1].startswith("  main/x86_64 hello-x86 1.0.0-r0: failed: exit code 1")
    assert "(try 1 of 1)" in problems[1] and "failed, try" not in ran.stdout
    assert "blocked    11 built, 1 failed" in ran.stdout
    assert "1 failed package (hello-x86)" in ran.stdout


def test_running_jobs_are_listed_and_exit_1(
    make_config: ConfigFactory, pmaports: Path, tmp_path: Path
) -> None:
    config = make_config(branches=one_arch(pmaports), builder="duration_seconds: 600")
    daemon(config, tmp_path).run_pass(full=True)
    ran = status(config)
    assert ran.returncode == 1
    running = ran.stdout.split("running: ")[1].splitlines()
    assert int(running[0]) == 2  # jobs.max_parallel
    assert all(line.startswith("  main/x86_64 ") for line in running[1:3])


def test_a_stale_daemon_exits_2_and_says_it_may_be_down(
    make_config: ConfigFactory, pmaports: Path, tmp_path: Path
) -> None:
    config = make_config(
        branches=one_arch(pmaports),
        loop="resync_interval_seconds: 60, poll_interval_seconds: 0.5, settle_seconds: 0",
    )
    old = daemon(config, tmp_path, age_seconds=3600)  # its last pass: an hour ago
    assert old.converge(max_seconds=60).all_published
    ran = status(config)
    assert ran.returncode == 2
    first = ran.stdout.splitlines()[0]
    assert first.startswith("the daemon's last full pass was at ")
    assert "more than 120 s ago: it may be down" in first
    assert "main/x86_64" in ran.stdout, "the last known state still follows"
