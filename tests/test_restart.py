"""A daemon stopped while its jobs run, and another one started: on the fake clock
with the in-memory job service, whose jobs outlive the daemon that made them.

The new daemon re-attaches to the running jobs, uses their results and submits
none of them again; the real-process version of this (SIGKILL, the local job
service) is test_crash.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .conftest import ConfigFactory, DaemonFactory
from .fake_clock import FakeClock
from .memory_jobs import JobTable
from .sample_tree import expected_files


def test_a_new_daemon_reattaches_to_running_jobs_and_submits_none_twice(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    clock: FakeClock,
    job_table: JobTable,
    pmaports: Path,
) -> None:
    config = make_config(
        builder="duration_seconds: 600", loop="poll_interval_seconds: 60, settle_seconds: 0"
    )
    first = fake_daemon(config)
    first.run_pass(full=True)
    running = {k for k, o in first.jobs.list_jobs().items() if o.status.is_live}
    assert len(running) == 2, "the first wave runs: two job slots"
    clock.advance(300)  # the first daemon is gone; its jobs are half way

    second = fake_daemon(config)
    result = second.converge(max_seconds=24 * 3600)
    assert result.all_published, result.plan.repos
    listed = second.jobs.list_jobs()
    assert running <= set(listed), "the running jobs were used"
    assert all(listed[k].status.name == "SUCCESS" for k in running)
    attempts = Counter(k.intent for k in listed)
    assert max(attempts.values()) == 1, "no intent was submitted twice"
    assert job_table.submits == len(listed)
    for arch in ("x86_64", "aarch64", "armv7"):
        final = config.paths.final_repo / "main" / arch
        assert {p.name for p in final.glob("*.apk")} == expected_files(pmaports, arch, "")
