"""The local job service's launcher (the runner in serve mode): one interpreter forks
every job's runner; a launcher that is gone, or that takes a job and vanishes,
costs no job and runs none twice; runners leave no zombies; a job's end wakes the
loop with one new file. Real processes, real files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from reconciler.jobs import local
from reconciler.jobs.local import Launcher, LocalJobService
from reconciler.jobs.runner import SERVE, WAKE_PREFIX, wake_bytes
from reconciler.jobs.service import JobSpec
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobStatus
from reconciler.model.names import RepoKey

from .conftest import wait_until

REPO = RepoKey("main", "", "x86_64")
WAIT = 15.0
# The script's parent is its runner; the runner's parent is whoever started it.
REPORT_LAUNCHER = "cut -d' ' -f4 /proc/$PPID/stat > artifacts/launcher\necho ran\n"


def key(pkgname: str) -> JobKey:
    return JobKey(JobIntent(JobKind.BUILD, REPO, pkgname, "1.0-r0"), 1)


def spec(job_key: JobKey, script: str = REPORT_LAUNCHER) -> JobSpec:
    return JobSpec(job_key, f"#!/bin/bash\n{script}", note="test", timeout_seconds=60)


@pytest.fixture
def service(tmp_path: Path) -> LocalJobService:
    (tmp_path / "triggers").mkdir()
    return LocalJobService(tmp_path / "jobs", tmp_path / "triggers")


def finished(service: LocalJobService, job_key: JobKey) -> Path:
    """Wait until the job is done; its directory in done/."""
    wait_until(lambda: not service.list_jobs()[job_key].status.is_live, timeout=WAIT)
    obs = service.list_jobs()[job_key]
    assert obs.status is JobStatus.SUCCESS, obs
    return Path(obs.artifacts_dir or "")


def launcher_of(artifacts: Path) -> int:
    return int((artifacts / "launcher").read_text())


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_one_launcher_forks_every_runner(service: LocalJobService) -> None:
    jobs = [key(f"forked-{i}") for i in range(3)]
    for job in jobs:
        service.submit(spec(job))
    launchers = {launcher_of(finished(service, job)) for job in jobs}
    assert len(launchers) == 1
    (launcher,) = launchers
    assert launcher != os.getpid()
    assert cmdline(launcher)[-4:-1] == ["reconciler.jobs.runner", SERVE, cmdline(launcher)[-2]]
    # Its runners were reaped by the kernel as they ended: no zombie waits for it.
    assert children(launcher) == []


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, zombies included."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_a_gone_launcher_costs_no_job(service: LocalJobService) -> None:
    first = key("before")
    service.submit(spec(first))
    launcher = launcher_of(finished(service, first))
    os.kill(launcher, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{launcher}").exists() or is_zombie(launcher), WAIT)
    second = key("after")
    service.submit(spec(second))
    artifacts = finished(service, second)
    assert launcher_of(artifacts) == os.getpid()  # started as a process of its own
    assert (artifacts.parent / "log").read_text().count("ran\n") == 1


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class FakeLauncher:
    """Stands in for the launcher: takes requests (with their locks) and answers none."""

    def __init__(self) -> None:
        self.channel, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])

    def launcher(self, service: LocalJobService) -> Launcher:
        return Launcher(self.process, self.theirs)

    def take(self) -> list[int]:
        """Read one request; the locks it carried (open here: held)."""
        _, fds, _, _ = socket.recv_fds(self.channel, 1 << 20, 1)
        return fds

    def close(self) -> None:
        self.channel.close()
        self.process.kill()
        self.process.wait()


@pytest.fixture
def fake_launcher(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLauncher]:
    fake = FakeLauncher()

    def start(service: LocalJobService) -> Launcher:
        service._launcher = fake.launcher(service)
        return service._launcher

    monkeypatch.setattr(LocalJobService, "_start_launcher", start)
    try:
        yield fake
    finally:
        fake.close()


def test_a_launcher_that_takes_a_job_and_vanishes_leaves_it_to_the_lock(
    service: LocalJobService, fake_launcher: FakeLauncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "LAUNCH_TIMEOUT", 0.0)  # no answer: given up at the next look
    job = key("taken")
    service.submit(spec(job))
    locks = fake_launcher.take()
    # Given up, but the lock it took is held: the job runs (for all anyone knows), and
    # nothing starts it a second time.
    assert service.list_jobs()[job].status is JobStatus.RUNNING
    assert fake_launcher.process.wait(timeout=WAIT) == -signal.SIGKILL
    assert service.list_jobs()[job].status is JobStatus.RUNNING
    assert not (service.live_dir / job.job_id / "log").exists()
    for fd in locks:  # the request dies with whatever held it: nothing ran
        os.close(fd)
    artifacts = finished(service, job)  # started again, as a process of its own
    assert launcher_of(artifacts) == os.getpid()
    assert (artifacts.parent / "log").read_text().count("ran\n") == 1


class Recorder(FileSystemEventHandler):
    """The events that wake the loop (see operator.trigger_dir), by the names each
    involves."""

    def __init__(self) -> None:
        self.names: list[set[str]] = []
        self.seen = threading.Condition()

    def on_created(self, event: FileSystemEvent) -> None:
        self._record(event)

    def on_moved(self, event: FileSystemEvent) -> None:
        self._record(event)

    def _record(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        paths = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
        with self.seen:
            self.names.append({os.path.basename(p) for p in paths if p})
            self.seen.notify_all()


def test_a_job_end_wakes_the_loop_with_one_new_file(
    service: LocalJobService, tmp_path: Path
) -> None:
    triggers = tmp_path / "triggers"
    recorder = Recorder()
    observer = Observer()
    observer.schedule(recorder, str(triggers), recursive=False)
    observer.start()
    try:
        job = key("waking")
        service.submit(spec(job, "true\n"))
        wake = triggers / f"{WAKE_PREFIX}{job.job_id}.json"
        wait_until(wake.exists, timeout=WAIT)
        assert wake.read_bytes() == wake_bytes(job.job_id)
        # A last file after it: once its event is in, every event of the wake-up is.
        (tmp_path / "sentinel").write_text("")
        os.rename(tmp_path / "sentinel", triggers / "sentinel")
        with recorder.seen:
            assert recorder.seen.wait_for(
                lambda: any("sentinel" in n for n in recorder.names), timeout=WAIT
            )
        events = [n for n in recorder.names if "sentinel" not in n]
        assert events == [{wake.name}], events  # no temporary name, no second event
    finally:
        observer.stop()
        observer.join()
