"""Daemons for scenarios: the real loop on a fake clock with the in-memory job service.

A scenario runs through builds, backoffs and restarts without sleeping and
without a process per job; each call for the same table is a (re)started
daemon over the same jobs.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.config.settings import Config
from reconciler.loop import Daemon

from .fake_clock import FakeClock
from .memory_jobs import InMemoryJobService, JobTable


def fake_daemon(config: Config, clock: FakeClock, table: JobTable) -> Daemon:
    return Daemon(config, clock=clock, jobs=InMemoryJobService(table, clock), wait=clock.wait)


def converged_fake(config: Config, root: Path, clock: FakeClock | None = None) -> Daemon:
    """A daemon on its own fake clock and job table (under `root`), converged."""
    daemon = fake_daemon(config, clock or FakeClock(), JobTable(root / "memory-jobs"))
    daemon.converge(max_seconds=3600)
    return daemon
