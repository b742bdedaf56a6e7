"""SIGKILL the daemon while jobs run; a new daemon re-attaches and converges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from reconciler.loop import Daemon
from reconciler.model.jobs import JobKey

from .conftest import ROOT, ConfigFactory, wait_until
from .sample_tree import expected_files


def job_dirs(jobs_root: Path) -> list[Path]:
    """Job directories (staging dirs of an interrupted submit start with a dot)."""
    return [
        p
        for sub in ("live", "done")
        for p in (jobs_root / sub).iterdir()
        if not p.name.startswith(".")
    ]


def test_sigkill_mid_build_then_restart(make_config: ConfigFactory, pmaports: Path) -> None:
    config = make_config(builder="duration_seconds: 0.15")
    config_path = Path(config.source)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--config", str(config_path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        live = config.paths.jobs / "live"
        # Kill it while builds of the second wave are running.
        wait_until(lambda: live.is_dir() and len(job_dirs(config.paths.jobs)) >= 3, timeout=60)
        wait_until(lambda: any(p.parent.name == "live" for p in job_dirs(config.paths.jobs)), 60)
    finally:
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait()
    running = [p for p in job_dirs(config.paths.jobs) if p.parent.name == "live"]
    assert running, "the test must kill the daemon while a job runs"

    result = Daemon(config).converge(max_seconds=180)
    assert result.all_published, result.plan.repos
    for arch in ("x86_64", "aarch64", "armv7"):
        for splitrepo, prefix in (("", ""), ("systemd", "extra-repos/systemd/")):
            final_dir = config.paths.final_repo / f"{prefix}main/{arch}"
            on_disk = {p.name for p in final_dir.glob("*.apk")}
            assert on_disk == expected_files(pmaports, arch, splitrepo)

    # Counted from the job directories: no (intent, attempt) twice, and no intent
    # submitted again after a try that succeeded.
    seen: dict[object, list[int]] = defaultdict(list)
    for path in job_dirs(config.paths.jobs):
        key = JobKey.from_job_id(path.name)
        seen[key.intent].append(key.attempt)
        log = (path / "log").read_text()
        assert log.count(" started at ") == 1, path.name
    for intent, attempts in seen.items():
        assert len(attempts) == len(set(attempts)), intent
        assert sorted(attempts) == list(range(1, len(attempts) + 1)), intent
    assert all(len(a) == 1 for a in seen.values()), {i: a for i, a in seen.items() if len(a) > 1}
    # The jobs that were running at the kill finished and were used, not redone.
    for path in running:
        assert (config.paths.jobs / "done" / path.name / "status.json").is_file()
