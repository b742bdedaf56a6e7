"""The daemon as users run it: `reconciler run` reacting to trigger files (a real process
with real jobs), and idle passes (on the fake clock with the in-memory job service)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path

import pytest

from reconciler.loop import Daemon
from reconciler.model.packages import BranchDesired

from .apkcheck import read_index
from .conftest import ROOT, ConfigFactory, DaemonFactory, set_field, wait_until
from .fake_clock import FakeClock
from .memory_jobs import InMemoryJobService, JobTable


def listed(index: Path) -> set[str]:
    try:
        return {f"{e['P']}-{e['V']}" for e in read_index(index).entries}
    except (OSError, AssertionError, EOFError, ValueError):
        return set()


def test_run_reacts_to_a_trigger_and_stops_on_sigterm(
    make_config: ConfigFactory, pmaports: Path
) -> None:
    # A resync interval far longer than the test: only the trigger can start the pass.
    config = make_config(
        loop="resync_interval_seconds: 3600, poll_interval_seconds: 0.5, settle_seconds: 0",
        branches=f"branches:\n  - {{name: main, pmaports: {pmaports}, arches: [x86_64]}}\n",
    )
    index = config.paths.final_repo / "main/x86_64/APKINDEX.tar.gz"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--config", config.source],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: "foo-gui-2.0.1-r0" in listed(index), timeout=120)
        set_field(pmaports / "main/foo-gui/APKBUILD", "pkgrel", "1")
        trigger = config.paths.triggers / ".push.tmp"
        trigger.write_text('{"type": "push", "branch": "main"}')
        os.rename(trigger, config.paths.triggers / "push.json")
        wait_until(lambda: "foo-gui-2.0.1-r1" in listed(index), timeout=120)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def test_idle_pass_opens_no_apk_and_writes_only_heartbeats(
    make_config: ConfigFactory, fake_daemon: DaemonFactory
) -> None:
    config = make_config()
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    daemon.run_pass()  # let directory listings age past the racy window
    opened = daemon.scanner.apks_opened
    before = {
        p: (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in config.paths.data.rglob("*")
        if p.is_file()
    }
    site_before = {p: p.stat().st_mtime_ns for p in config.paths.html_out.rglob("*") if p.is_file()}
    result = daemon.run_pass()
    assert result.outcomes == []
    assert daemon.scanner.apks_opened == opened, "an idle pass opens no apk"
    after = {
        p: (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in config.paths.data.rglob("*")
        if p.is_file()
    }
    assert after == before, "an idle pass writes nothing under the data directory"
    site_after = {p: p.stat().st_mtime_ns for p in config.paths.html_out.rglob("*") if p.is_file()}
    changed = {p.name for p in site_after if site_before.get(p) != site_after[p]}
    assert changed == {"metrics.prom"}, "only the heartbeat changes"


class FirstPassFails(Daemon):
    """A daemon whose first look at the trees meets a bug (the fault is injected
    where a hostile tree once crashed the start)."""

    failures = 0

    def read_desired(self, fresh: Collection[str] | None = None) -> dict[str, BranchDesired]:
        if not self.failures:
            self.failures += 1
            raise RuntimeError("a bug met in the first pass")
        return super().read_desired(fresh)


def test_the_first_pass_runs_inside_the_same_error_boundary(
    make_config: ConfigFactory,
    clock: FakeClock,
    job_table: JobTable,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(loop="resync_interval_seconds: 3600, poll_interval_seconds: 1")
    index = config.paths.final_repo / "main/x86_64/APKINDEX.tar.gz"

    def wait(seconds: float) -> bool:
        if index.exists() and not any(j.status.is_live for j in jobs.list_jobs().values()):
            raise KeyboardInterrupt  # what SIGTERM does: leave the loop
        return clock.wait(seconds)

    jobs = InMemoryJobService(job_table, clock)
    daemon = FirstPassFails(config, clock=clock, jobs=jobs, wait=wait)
    with pytest.raises(KeyboardInterrupt):
        daemon.run_forever()
    failed = [r for r in caplog.records if r.getMessage() == "pass failed"]
    assert len(failed) == 1 and "a bug met in the first pass" in str(failed[0].exc_info)
    assert "hello-x86-1.0.0-r0" in listed(index), "the daemon carried on and published"


def test_a_full_pass_prunes_old_history(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, clock: FakeClock
) -> None:
    config = make_config(extra="retention: {trigger_days: 7, event_days: 7}\n")
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    processed = config.paths.triggers / "processed"
    old, recent = processed / "old.json", processed / "recent.json"
    for path, age_days in ((old, 8), (recent, 6)):
        path.write_text("{}")
        stamp = time.time() - age_days * 86400
        os.utime(path, (stamp, stamp))
    events = config.paths.state / "events.jsonl"
    assert events.read_text().count("\n") > 10
    clock.now += 8 * 86400  # every event of the first run is now 8 days old
    daemon.run_pass(full=True)
    assert not old.exists() and recent.exists()
    assert events.read_text().count("\n") < 5, "only the newest pass's events are left"
