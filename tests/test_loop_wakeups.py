"""How the loop spends its passes between job ends: a chain of passes (each step of
every job) writes the site and the heartbeat once, a settled world at once; a
wake-up a pass has read does not start another pass; job ends are not waited on
for `loop.settle_seconds`. Counts and contents, not times (bench/run.py measures
the times)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.config.settings import Config
from reconciler.jobs.runner import WAKE_PREFIX, wake_bytes
from reconciler.loop import Daemon, PassResult
from reconciler.site.metrics import plan_metrics

from .conftest import ConfigFactory, DaemonFactory
from .fake_clock import FakeClock
from .memory_jobs import InMemoryJobService, JobTable

WAIT = 15.0  # upper bound for the watchdog to see a file


def count_calls(daemon: Daemon, name: str) -> list[int]:
    """Count the calls of one of the daemon's methods (a one-element list)."""
    calls = [0]
    method: Callable[..., Any] = getattr(daemon, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return method(*args, **kwargs)

    setattr(daemon, name, counted)
    return calls


def heartbeat(config: Config) -> str:
    return (config.paths.html_out / "metrics.prom").read_text(encoding="utf-8")


def drop(directory: Path, name: str, data: bytes) -> None:
    """A file renamed in whole from elsewhere: one event for the watched directory."""
    aside = directory.parent / f"{name}.aside"
    aside.write_bytes(data)
    os.rename(aside, directory / name)


def test_a_chain_of_passes_writes_the_site_once_and_the_settled_world_at_once(
    make_config: ConfigFactory, fake_daemon: DaemonFactory
) -> None:
    config = make_config()
    daemon = fake_daemon(config)
    passes = count_calls(daemon, "run_pass")
    shown = count_calls(daemon, "_show")
    result = daemon.converge(max_seconds=600)
    assert result.all_published
    # Every job's end took a chain of passes (collect, reindex, nothing left); the
    # site was written for far fewer of them than ran.
    assert 0 < shown[0] < passes[0] / 2, (shown, passes)
    # What converge returned is what the site and the heartbeat show.
    assert heartbeat(config).startswith(plan_metrics(result.plan))


def test_a_pass_run_on_its_own_always_writes_the_site(
    make_config: ConfigFactory, fake_daemon: DaemonFactory
) -> None:
    config = make_config()
    daemon = fake_daemon(config)
    shown = count_calls(daemon, "_show")
    results = [daemon.run_pass(full=True)] + [daemon.run_pass() for _ in range(4)]
    assert any(r.progressed for r in results[1:])
    assert shown[0] == len(results)
    assert heartbeat(config).startswith(plan_metrics(results[-1].plan))


def test_converge_that_runs_out_of_time_shows_its_last_pass(
    make_config: ConfigFactory, clock: FakeClock, job_table: JobTable
) -> None:
    """The last pass may have left the site to a next one that does not come."""
    config = make_config()
    daemon = Daemon(config, clock=clock, jobs=InMemoryJobService(job_table, clock), wait=clock.wait)
    shown = count_calls(daemon, "_show")
    run_pass = daemon.run_pass
    chain: list[PassResult] = []

    def pass_then_time_runs_out(**kwargs: Any) -> PassResult:
        result = run_pass(**kwargs)
        chain.append(result)
        if len(chain) == 2:  # in the middle of a chain: deferred, then out of time
            assert result.progressed
            clock.advance(3600)
        return result

    daemon.run_pass = pass_then_time_runs_out  # type: ignore[method-assign]
    result = daemon.converge(max_seconds=60)
    assert result is chain[-1] and len(chain) == 2
    assert shown[0] == 2  # the first pass's and, once out of time, the last one's
    assert heartbeat(config).startswith(plan_metrics(result.plan))


def test_a_wake_up_a_pass_has_read_does_not_wake_the_next_wait(
    make_config: ConfigFactory, fake_daemon: DaemonFactory
) -> None:
    config = make_config()
    daemon = fake_daemon(config)
    daemon.triggers.start()
    try:
        drop(daemon.triggers.directory, f"{WAKE_PREFIX}x.json", wake_bytes("x"))
        assert daemon.triggers.wake.wait(WAIT)  # seen (Event.wait leaves it set)
        daemon.run_pass()
        assert not (daemon.triggers.directory / f"{WAKE_PREFIX}x.json").exists()
        assert daemon.triggers.wait(0) is False  # nothing arrived since the pass read it
    finally:
        daemon.triggers.stop()


@pytest.mark.parametrize(
    ("name", "settles"),
    [(f"{WAKE_PREFIX}build@main@main@x86_64@hello@1.0-r0@1.json", False), ("look-now.json", True)],
)
def test_run_forever_waits_for_more_triggers_after_a_request_not_after_a_job_end(
    make_config: ConfigFactory, clock: FakeClock, job_table: JobTable, name: str, settles: bool
) -> None:
    config = make_config(loop="poll_interval_seconds: 1, settle_seconds: 0.25")
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        if len(waits) == 1:  # the loop's first rest: a file arrives and wakes it
            drop(config.paths.triggers, name, wake_bytes("x"))
            return True
        raise KeyboardInterrupt  # what SIGTERM does: leave the loop

    jobs = InMemoryJobService(job_table, clock)
    daemon = Daemon(config, clock=clock, jobs=jobs, wait=wait)
    with pytest.raises(KeyboardInterrupt):
        daemon.run_forever()
    assert (waits[1] == 0.25) is settles, waits
