"""A running local job's log through the shipped nginx config: readable from the
moment the job starts under the URL the site links (`/logs/<job id>.log`), growing
as the job writes, and still there under the same URL after the job ends, after
the site copies it and after the job service prunes the job. Nothing else of the
job's directory is reachable."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from reconciler.fs.retention import Limits
from reconciler.jobs.local import LocalJobService
from reconciler.jobs.service import JobSpec
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation
from reconciler.model.names import RepoKey
from reconciler.site.writer import SiteWriter

from .conftest import wait_until
from .nginx_server import TIMEOUT, NginxServer, raw_get

BEFORE = "marker-before-the-end-8f3a"
AFTER = "marker-after-the-end-51c7"
KEY = JobKey(JobIntent(JobKind.BUILD, RepoKey("main", "", "x86_64"), "foo-utils", "1.0-r0"), 2)


class Setup:
    def __init__(self, root: Path) -> None:
        self.data = root / "data"
        self.html_out = root / "html_out"
        self.html_out.mkdir(parents=True)
        for name in ("final", "wip", "symlink"):
            (self.data / "repo" / name).mkdir(parents=True)
        (self.data / "triggers").mkdir()
        self.fifo = root / "go"
        os.mkfifo(self.fifo)
        self.service = LocalJobService(self.data / "jobs", self.data / "triggers")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Setup, str]]:
    s = Setup(tmp_path)
    server = NginxServer.start(
        s.html_out, s.data / "repo" / "final", s.data / "repo" / "wip", tmp_path / "nginx"
    )
    try:
        yield s, f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def get(base: str, job_id: str) -> requests.Response:
    return requests.get(f"{base}/logs/{quote(job_id)}.log", timeout=TIMEOUT)


def observe(service: LocalJobService) -> JobObservation:
    return service.list_jobs()[KEY]


def test_a_running_jobs_log_is_served_while_it_runs_and_after(
    setup: tuple[Setup, str],
) -> None:
    s, base = setup
    script = f"#!/bin/bash\necho {BEFORE}\nread -r line < {s.fifo}\necho {AFTER}\nexit 1\n"
    s.service.submit(JobSpec(KEY, script, note="test", timeout_seconds=60))
    live_log = s.data / "jobs" / "live" / KEY.job_id / "log"
    wait_until(lambda: live_log.exists() and BEFORE in live_log.read_text())
    assert observe(s.service).status.is_live

    running = get(base, KEY.job_id)
    assert running.status_code == 200
    assert running.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert running.headers["Cache-Control"] == "no-cache"
    assert BEFORE in running.text and AFTER not in running.text

    with open(s.fifo, "w", encoding="utf-8") as go:  # the job reads a line and ends
        go.write("go\n")
    wait_until(lambda: not observe(s.service).status.is_live)
    ended = observe(s.service)
    assert ended.log_path and "/done/" in ended.log_path  # archived: its directory moved
    after = get(base, KEY.job_id)
    assert after.status_code == 200
    assert BEFORE in after.text and AFTER in after.text and "job ended: failed" in after.text

    # The site copies it, then the job service's retention forgets the job and its
    # log's link: the site's copy answers under the same URL.
    SiteWriter(s.html_out).copy_logs([ended])
    LocalJobService(s.data / "jobs", s.data / "triggers", retention=Limits(max_age_seconds=0))
    assert not (s.data / "jobs" / "done" / KEY.job_id).exists()
    assert not (s.data / "jobs" / "logs" / f"{KEY.job_id}.log").exists()
    kept = get(base, KEY.job_id)
    assert kept.status_code == 200 and AFTER in kept.text


def test_nothing_else_of_a_job_is_reachable(setup: tuple[Setup, str]) -> None:
    s, base = setup
    s.service.submit(JobSpec(KEY, "#!/bin/bash\necho secret-script\n", "test", 60))
    wait_until(lambda: not observe(s.service).status.is_live)
    job_dir = s.data / "jobs" / "done" / KEY.job_id
    assert (job_dir / "script.sh").exists()
    assert get(base, KEY.job_id).status_code == 200
    for path in (
        f"/logs/{quote(KEY.job_id)}",
        f"/logs/{quote(KEY.job_id)}/log",
        f"/logs/..%2Fdone%2F{quote(KEY.job_id)}%2Fscript.sh",
        f"/logs/..%2Fdone%2F{quote(KEY.job_id)}%2Flog",
        "/logs/.log",
        "/logs/no@such@job.log",
        "/jobs/logs/" + quote(KEY.job_id) + ".log",
    ):
        status, body = raw_get(base + "/", path)
        assert status == 404, path
        assert b"secret-script" not in body
