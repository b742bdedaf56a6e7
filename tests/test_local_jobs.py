"""The local job service with real detached job processes: results, timeouts, the
never-twice guarantee, lost runners, re-attaching after a restart, and containment:
no process of a job, not even a setsid'd grandchild, outlives the job."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.fs.crashpoint import ENV, JOB_PREPARED
from reconciler.fs.retention import Limits
from reconciler.jobs import containment
from reconciler.jobs.local import LocalJobService
from reconciler.jobs.service import JobExistsError, JobSpec
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.names import RepoKey

from .conftest import wait_until

REPO = RepoKey("main", "", "x86_64")
WAIT = 15.0  # upper bound for a job that should end almost at once


def key(pkgname: str, attempt: int = 1) -> JobKey:
    return JobKey(JobIntent(JobKind.BUILD, REPO, pkgname, "1.0-r0"), attempt)


def spec(job_key: JobKey, script: str, timeout: float = 60.0) -> JobSpec:
    return JobSpec(job_key, f"#!/bin/bash\n{script}\n", note="test", timeout_seconds=timeout)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "jobs"


@pytest.fixture
def service(root: Path, tmp_path: Path) -> LocalJobService:
    (tmp_path / "triggers").mkdir()  # the daemon's TriggerDir creates it
    return LocalJobService(root, tmp_path / "triggers")


@pytest.fixture
def script_groups() -> Iterator[list[int]]:
    """Process groups of job scripts a test leaves behind on purpose; killed at the end."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def live(root: Path, job_key: JobKey) -> Path:
    return root / "live" / job_key.job_id


def done(root: Path, job_key: JobKey) -> Path:
    return root / "done" / job_key.job_id


def wait_for_status(root: Path, job_key: JobKey) -> dict[str, object]:
    """Poll the status file the runner writes when the job ends."""
    status = live(root, job_key) / "status.json"
    wait_until(status.exists, timeout=WAIT)
    result: dict[str, object] = json.loads(status.read_text(encoding="utf-8"))
    return result


def observe(service: LocalJobService, job_key: JobKey) -> JobObservation:
    return service.list_jobs()[job_key]


def read_pid(root: Path, job_key: JobKey) -> int:
    pid_file = live(root, job_key) / "pid"
    wait_until(pid_file.exists, timeout=WAIT)
    return int(pid_file.read_text().strip())


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])  # fields after "(comm)": state, ppid


# --- outcomes ------------------------------------------------------------------------


def test_success_moves_to_done_with_its_log(
    service: LocalJobService, root: Path, tmp_path: Path
) -> None:
    job = key("hello")
    submitted = service.submit(spec(job, "echo hi; echo made > artifacts/out.txt"))
    assert submitted.status is JobStatus.RUNNING
    assert submitted.key == job
    assert submitted.log_path == str(live(root, job) / "log")
    assert (live(root, job) / "script.sh").read_text().endswith("echo made > artifacts/out.txt\n")

    status = wait_for_status(root, job)
    assert (status["status"], status["exit_code"], status["reason"]) == ("success", 0, "")

    obs = observe(service, job)
    assert obs.status is JobStatus.SUCCESS
    assert obs.reason == ""
    assert obs.ended_at is not None and obs.ended_at >= obs.submitted_at > 0
    assert not live(root, job).exists()
    assert done(root, job).is_dir()
    assert obs.log_path == str(done(root, job) / "log")
    assert obs.artifacts_dir == str(done(root, job) / "artifacts")
    log = Path(obs.log_path).read_text()
    assert "hi\n" in log
    assert f"job {job.job_id} started" in log
    assert (Path(obs.artifacts_dir) / "out.txt").read_text() == "made\n"

    # The runner drops a wake-up file for the loop (just after the status file).
    wake = tmp_path / "triggers" / f"job-{job.job_id}.json"
    wait_until(wake.exists, timeout=WAIT)
    assert json.loads(wake.read_text()) == {"type": "wake", "job": job.job_id}

    # Listing again gives the same answer from done/.
    assert observe(service, job) == obs


def test_inputs_are_placed_beside_the_script(service: LocalJobService, root: Path) -> None:
    job = key("inputs")
    job_spec = JobSpec(
        job, "#!/bin/bash\ncat input.txt\n", note="n", timeout_seconds=60,
        files={"input.txt": b"from the daemon\n"},
    )  # fmt: skip
    service.submit(job_spec)
    wait_for_status(root, job)
    obs = observe(service, job)
    assert obs.status is JobStatus.SUCCESS
    assert "from the daemon\n" in Path(obs.log_path or "").read_text()


def test_failure_reports_the_exit_code(service: LocalJobService, root: Path) -> None:
    job = key("failing")
    service.submit(spec(job, "echo trying; exit 3"))
    status = wait_for_status(root, job)
    assert (status["status"], status["exit_code"]) == ("failed", 3)
    obs = observe(service, job)
    assert obs.status is JobStatus.FAILED
    assert obs.status.is_failure
    assert obs.reason == "exit code 3"
    assert "trying\n" in Path(obs.log_path or "").read_text()
    assert done(root, job).is_dir()


def test_a_failed_job_carries_the_error_lines_of_its_log(
    service: LocalJobService, root: Path
) -> None:
    """The excerpt a package page shows: the log's error lines, read when the job
    ends and again after a restart; a successful job has none."""
    job = key("erroring")
    script = (
        'for i in $(seq 1 2000); do echo "compiling unit $i"; done\n'
        "printf '\\033[31mERROR: foo-utils-1.0-r0: <checksum> failed\\033[0m\\n'\n"
        "echo 'cleaning up'\n"
        "exit 1"
    )
    service.submit(spec(job, script))
    wait_for_status(root, job)
    obs = observe(service, job)
    assert obs.excerpt == "ERROR: foo-utils-1.0-r0: <checksum> failed"
    assert LocalJobService(root, root.parent / "triggers").list_jobs()[job].excerpt == obs.excerpt
    fine = key("fine")
    service.submit(spec(fine, "echo 'ERROR: nothing really'; exit 0"))
    wait_for_status(root, fine)
    assert observe(service, fine).excerpt == ""


def test_timeout(service: LocalJobService, root: Path) -> None:
    job = key("slow")
    service.submit(spec(job, "echo started; sleep 30", timeout=0.5))
    status = wait_for_status(root, job)
    assert status["status"] == "timeout"
    obs = observe(service, job)
    assert obs.status is JobStatus.TIMEOUT
    assert obs.reason.startswith("no result after")
    assert obs.ended_at is not None and obs.ended_at - obs.submitted_at < 10
    log = Path(obs.log_path or "").read_text()
    assert "started\n" in log
    assert "job ended: timeout" in log


def test_timeout_reason_names_the_timeout(service: LocalJobService, root: Path) -> None:
    job = key("slow-reason")
    service.submit(spec(job, "sleep 30", timeout=0.5))
    wait_for_status(root, job)
    assert "0.5" in observe(service, job).reason


# --- never twice ------------------------------------------------------------------


def test_same_key_cannot_be_submitted_twice(
    service: LocalJobService, root: Path, tmp_path: Path
) -> None:
    job = key("once")
    gate = tmp_path / "gate"
    service.submit(spec(job, f"while [ ! -e {gate} ]; do sleep 0.02; done; echo released"))
    with pytest.raises(JobExistsError):
        service.submit(spec(job, "echo again"))  # while it runs
    with pytest.raises(JobExistsError):
        LocalJobService(root, None).submit(spec(job, "echo again"))  # another instance

    gate.touch()
    wait_for_status(root, job)
    assert observe(service, job).status is JobStatus.SUCCESS
    assert done(root, job).is_dir()
    with pytest.raises(JobExistsError):
        service.submit(spec(job, "echo again"))  # finished, in done/
    with pytest.raises(JobExistsError):
        LocalJobService(root, None).submit(spec(job, "echo again"))  # a restarted daemon

    # Nothing of the refused submissions ran or stayed behind.
    log = (done(root, job) / "log").read_text()
    assert "released\n" in log
    assert "again" not in log
    assert sorted(p.name for p in (root / "live").iterdir()) == []
    # The next attempt is a different job and is accepted.
    second = key("once", attempt=2)
    service.submit(spec(second, "echo second"))
    wait_for_status(root, second)
    assert observe(service, second).status is JobStatus.SUCCESS


def test_finished_job_in_live_is_refused_before_archiving(
    service: LocalJobService, root: Path
) -> None:
    job = key("not-listed")
    service.submit(spec(job, "true"))
    wait_for_status(root, job)  # finished, but nobody listed it yet: still in live/
    assert live(root, job).is_dir()
    with pytest.raises(JobExistsError):
        LocalJobService(root, None).submit(spec(job, "true"))


# --- lost runners and restarts -------------------------------------------------------


def test_killed_runner_is_lost(
    service: LocalJobService, root: Path, script_groups: list[int]
) -> None:
    job = key("victim")
    service.submit(spec(job, "echo running; sleep 30"))
    script_pid = read_pid(root, job)
    script_groups.append(script_pid)  # the script leads its own session
    runner_pid = parent_pid(script_pid)
    cmdline = Path(f"/proc/{runner_pid}/cmdline").read_bytes().split(b"\0")
    assert b"reconciler.jobs.runner" in cmdline
    assert observe(service, job).status is JobStatus.RUNNING

    os.kill(runner_pid, signal.SIGKILL)
    wait_until(lambda: observe(service, job).status is JobStatus.LOST, timeout=WAIT)
    obs = observe(service, job)
    assert obs.status.is_failure
    assert "vanished" in obs.reason
    assert done(root, job).is_dir()
    status = json.loads((done(root, job) / "status.json").read_text())
    assert status["status"] == "lost"
    # A restarted daemon sees the same verdict.
    assert observe(LocalJobService(root, None), job).status is JobStatus.LOST


def test_restarted_service_reattaches(service: LocalJobService, root: Path) -> None:
    job = key("long")
    gate = live(root, job) / "gate"
    service.submit(spec(job, "while [ ! -e gate ]; do sleep 0.02; done; echo finished"))
    wait_until((live(root, job) / "log").exists, timeout=WAIT)

    restarted = LocalJobService(root, None)
    obs = observe(restarted, job)
    assert obs.status is JobStatus.RUNNING
    assert obs.submitted_at > 0
    assert obs.log_path == str(live(root, job) / "log")
    assert list(restarted.list_jobs()) == [job]

    gate.touch()
    wait_for_status(root, job)
    finished = observe(restarted, job)
    assert finished.status is JobStatus.SUCCESS
    assert finished.submitted_at == obs.submitted_at
    assert "finished\n" in Path(finished.log_path or "").read_text()
    assert done(root, job).is_dir()
    # And a third instance, started after the job ended, finds it in done/.
    assert observe(LocalJobService(root, None), job) == finished


def test_submitted_but_never_started_job_is_started(root: Path) -> None:
    """A daemon killed between creating the job directory and starting its runner."""
    job = key("orphan")
    submit = (
        "import sys\n"
        "from pathlib import Path\n"
        "from reconciler.jobs.local import LocalJobService\n"
        "from reconciler.jobs.service import JobSpec\n"
        "from reconciler.model.jobs import JobKey\n"
        "key = JobKey.from_job_id(sys.argv[2])\n"
        "script = '#!/bin/bash\\necho late start\\n'\n"
        "LocalJobService(Path(sys.argv[1]), None).submit(JobSpec(key, script, 'late', 60.0))\n"
    )
    crashed = subprocess.run(
        [sys.executable, "-c", submit, str(root), job.job_id],
        env={**os.environ, ENV: JOB_PREPARED},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert live(root, job).is_dir()
    assert not (live(root, job) / "log").exists()

    restarted = LocalJobService(root, None)
    assert observe(restarted, job).status is JobStatus.RUNNING
    wait_for_status(root, job)
    obs = observe(restarted, job)
    assert obs.status is JobStatus.SUCCESS
    log = Path(obs.log_path or "").read_text()
    assert log.count("late start\n") == 1


# --- containment: every process of a job ends with it ---------------------------------

# Run by the script: forks, and the child leaves the job's session and closes every
# fd (the log, and in the fallback the lock), so neither a process group nor the
# lock reaches it; the parent returns once that is done (the pipe closed). The
# child says it is ready, then keeps writing into the job directory until killed.
ESCAPE = b"""\
import os, sys, time
r, w = os.pipe()
if os.fork():
    os.close(w)
    os.read(r, 1)
    sys.exit(0)
os.setsid()
os.closerange(0, 4096)
open("ready", "w").close()
while True:
    with open("heartbeat", "a") as beat:
        beat.write(".")
    time.sleep(0.01)
"""


def escaping_spec(job_key: JobKey, mark: str, timeout: float = 60.0) -> JobSpec:
    """A job whose grandchild escapes its session; `mark` is in the environment
    and the command line of every process of it."""
    python = f"{sys.executable} -S"
    script = (
        f"export JOB_MARK={mark}\n"
        f"{python} escape.py {mark}\n"
        f"exec {python} -c 'import time; time.sleep(1000)' {mark}\n"
    )
    return JobSpec(job_key, script, "test", timeout, files={"escape.py": ESCAPE})


def wait_for_job(root: Path, job_key: JobKey, mark: str) -> int:
    """Wait until the job runs as meant (the script exec'd its sleeper, the grandchild
    escaped); return the script's pid."""
    script_pid = read_pid(root, job_key)
    wait_until(lambda: script_pid in job_processes(mark), timeout=WAIT)
    wait_until((live(root, job_key) / "heartbeat").exists, timeout=WAIT)
    assert len(job_processes(mark)) == 2  # the script and the escaped grandchild
    return script_pid


def job_processes(mark: str) -> list[int]:
    """Every live process carrying the job's mark, found in /proc."""
    found = []
    needle = mark.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # dead, waiting to be reaped
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if needle in seen:
            found.append(int(entry.name))
    return found


def cgroup2_writable() -> bool:
    """Whether this machine gives jobs a cgroup. As root with a read-write cgroup2
    mount it must: the cgroup tests then never skip."""
    parent = containment.own_cgroup()
    if parent is not None:
        probe = parent / f"reconciler-probe-{os.getpid()}"
        with contextlib.suppress(OSError):
            probe.mkdir()
            probe.rmdir()
            return True
    mountinfo = Path("/proc/self/mountinfo").read_text()
    rw_cgroup2 = any(
        " - cgroup2 " in line and line.split()[5].split(",")[0] == "rw"
        for line in mountinfo.splitlines()
    )
    assert not (os.geteuid() == 0 and rw_cgroup2), "root, cgroup2 mounted rw, no cgroup made"
    return False


@pytest.fixture(params=["cgroup", "subreaper"])
def mechanism(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each containment test runs with a cgroup per job and with the fallback."""
    mode = str(request.param)
    if mode == "cgroup" and not cgroup2_writable():
        pytest.skip("no writable cgroup2 hierarchy here; the subreaper run covers it")
    if mode == "subreaper":
        monkeypatch.setenv(containment.NO_CGROUP_ENV, "1")
    return mode


def job_cgroup(job_dir: Path) -> Path | None:
    record = job_dir / containment.RECORD
    return Path(record.read_text().strip()) if record.exists() else None


def assert_held_by(job_dir: Path, mode: str) -> None:
    """The job ran under the mechanism the test meant (the runner logs which)."""
    log = (job_dir / "log").read_text()
    if mode == "cgroup":
        assert "processes held by cgroup " in log, log
        assert job_cgroup(job_dir) is not None
    else:
        assert "processes held by subreaper" in log, log
        assert job_cgroup(job_dir) is None


def tree(job_dir: Path) -> dict[str, int]:
    return {str(p.relative_to(job_dir)): p.stat().st_size for p in job_dir.rglob("*")}


def test_killed_runner_takes_a_setsid_grandchild_along(
    service: LocalJobService, root: Path
) -> None:
    if not cgroup2_writable():
        pytest.skip("only a cgroup catches this (see containment); none here")
    job, mark = key("escaper"), uuid.uuid4().hex
    service.submit(escaping_spec(job, mark))
    script_pid = wait_for_job(root, job, mark)
    assert_held_by(live(root, job), "cgroup")
    cgroup = job_cgroup(live(root, job))
    assert cgroup is not None
    procs = {int(pid) for pid in (cgroup / "cgroup.procs").read_text().split()}
    assert set(job_processes(mark)) == procs  # both in the job's cgroup, nothing else

    os.kill(parent_pid(script_pid), signal.SIGKILL)  # the runner
    wait_until(lambda: observe(service, job).status is JobStatus.LOST, timeout=WAIT)
    assert job_processes(mark) == []  # killed before the verdict, not after
    assert not cgroup.exists()
    declared = tree(done(root, job))  # declared lost and archived at once
    assert json.loads((done(root, job) / "status.json").read_text())["status"] == "lost"
    # The grandchild wrote every 10 ms while it lived: ten of those later, nothing
    # in the job's directory changed (no event marks an absence; this waits).
    time.sleep(0.1)
    assert tree(done(root, job)) == declared


def test_timeout_kills_the_whole_job(service: LocalJobService, root: Path, mechanism: str) -> None:
    job, mark = key(f"timeout-{mechanism}"), uuid.uuid4().hex
    service.submit(escaping_spec(job, mark, timeout=1.0))
    status = wait_for_status(root, job)
    assert status["status"] == "timeout"
    assert (live(root, job) / "ready").exists()  # the grandchild escaped before the end
    assert job_processes(mark) == []
    assert_held_by(live(root, job), mechanism)
    cgroup = job_cgroup(live(root, job))
    assert cgroup is None or not cgroup.exists()
    assert observe(service, job).status is JobStatus.TIMEOUT


def test_cancel_kills_the_whole_job(service: LocalJobService, root: Path, mechanism: str) -> None:
    job, mark = key(f"cancel-{mechanism}"), uuid.uuid4().hex
    service.submit(escaping_spec(job, mark))
    wait_for_job(root, job, mark)
    service.cancel(job)
    status = wait_for_status(root, job)
    assert (status["status"], status["reason"]) == ("cancelled", "cancelled")
    assert job_processes(mark) == []
    assert_held_by(live(root, job), mechanism)
    cgroup = job_cgroup(live(root, job))
    assert cgroup is None or not cgroup.exists()
    assert observe(service, job).status is JobStatus.CANCELLED
    service.cancel(job)  # a finished job: nothing to do


def test_a_leftover_job_cgroup_is_removed_on_archiving(
    service: LocalJobService, root: Path
) -> None:
    if not cgroup2_writable():
        pytest.skip("no writable cgroup2 hierarchy here")
    job = key("leftover")
    service.submit(spec(job, "true"))
    wait_for_status(root, job)
    cgroup = job_cgroup(live(root, job))
    assert cgroup is not None and not cgroup.exists()  # the runner removed it
    cgroup.mkdir()  # as a runner killed between its status and its rmdir would leave it
    assert observe(service, job).status is JobStatus.SUCCESS
    assert done(root, job).is_dir()
    assert not cgroup.exists()


def test_fallback_killed_runner_is_not_lost_while_its_script_runs(
    service: LocalJobService, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a cgroup the script holds the lock: a killed runner whose script
    still runs is a running job, and a lost one once the script is gone."""
    monkeypatch.setenv(containment.NO_CGROUP_ENV, "1")
    job = key("fallback-victim")
    service.submit(spec(job, "sleep 30"))
    script_pid = read_pid(root, job)
    assert_held_by(live(root, job), "subreaper")
    os.kill(parent_pid(script_pid), signal.SIGKILL)
    assert observe(service, job).status is JobStatus.RUNNING
    os.killpg(script_pid, signal.SIGKILL)
    wait_until(lambda: observe(service, job).status is JobStatus.LOST, timeout=WAIT)


# --- retention -------------------------------------------------------------------------


def test_finished_jobs_are_pruned_by_intent_by_age_then_by_size(
    service: LocalJobService, root: Path
) -> None:
    jobs = [key("old", 1), key("old", 2), key("mixed", 1), key("mixed", 2), key("big", 1)]
    for job in jobs:
        size = 50_000 if job.intent.pkgname == "big" else 10
        service.submit(spec(job, f"head -c {size} /dev/zero > artifacts/out"))
    for job in jobs:
        wait_for_status(root, job)
    wait_until(lambda: bool(service.list_jobs()) and all(done(root, j).is_dir() for j in jobs))
    now = time.time()
    ages = {"old": (40, 35), "mixed": (40, 1), "big": (2,)}
    for job in jobs:
        stamp = now - ages[job.intent.pkgname][job.attempt - 1] * 86400
        os.utime(done(root, job), (stamp, stamp))

    month = retention_limits(30, max_bytes=10**9)
    listed = LocalJobService(root, None, retention=month).list_jobs()
    kept = sorted(k.job_id for k in listed)
    # An intent goes whole, once its newest attempt is old: "mixed" keeps both tries.
    assert kept == sorted(j.job_id for j in jobs if j.intent.pkgname != "old")
    assert not done(root, key("old", 1)).exists() and not done(root, key("old", 2)).exists()

    # Over the size, the intents whose newest attempt is oldest go first: "big" (2
    # days) before "mixed" (1 day), which then fits.
    small = retention_limits(30, max_bytes=20_000)
    listed = LocalJobService(root, None, retention=small).list_jobs()
    assert sorted(k.job_id for k in listed) == [key("mixed", 1).job_id, key("mixed", 2).job_id]


def retention_limits(days: float, max_bytes: int) -> Limits:
    return Limits(days * 86400, max_bytes=max_bytes)


def test_a_job_that_ends_on_a_full_disk_is_not_lost_and_reports_once_there_is_room(
    tiny_mount: Path,
) -> None:
    """The runner cannot write status.json: it keeps its lock and tries again, so
    the job stays running (no try lost) and its result arrives with the space."""
    jobs_root = tiny_mount / "jobs"
    service = LocalJobService(jobs_root, None)
    job = key("filler")
    # The job fills the file system, then succeeds.
    service.submit(spec(job, "head -c 8M /dev/zero > artifacts/fill 2>/dev/null; exit 0"))
    script_pid = read_pid(jobs_root, job)
    wait_until(lambda: not Path(f"/proc/{script_pid}").exists(), timeout=WAIT)
    for _ in range(3):  # the script is gone, the status cannot be written: running
        assert observe(service, job).status is JobStatus.RUNNING
    assert not (live(jobs_root, job) / "status.json").exists()
    (live(jobs_root, job) / "artifacts/fill").unlink()  # room again
    wait_until(lambda: observe(service, job).status is not JobStatus.RUNNING, timeout=WAIT)
    assert observe(service, job).status is JobStatus.SUCCESS


# --- build jobs as their own user ---------------------------------------------------------


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A job root the build user can reach: pytest's own temp tree is 0700."""
    base = Path(tempfile.mkdtemp(prefix="reconciler-jobs-", dir="/tmp"))
    os.chmod(base, 0o750)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_build_job_runs_as_the_build_user_and_cannot_read_the_keys(
    shared_root: Path,
) -> None:
    if os.geteuid() != 0 or shutil.which("sudo") is None:
        if os.environ.get("CI"):
            pytest.fail("CI=true but this test needs root and sudo (bash .ci/system-packages.sh)")
        pytest.skip("needs root and sudo")
    key = shared_root / "final.rsa"
    key.write_text("PRIVATE KEY\n")
    os.chmod(key, 0o600)
    service = LocalJobService(shared_root / "jobs", None, build_user="nobody")
    build, sign = key_of_kind("hello", JobKind.BUILD), key_of_kind("-", JobKind.SIGN)
    script = (
        "id -un > artifacts/who\n"
        f"cat {key} > artifacts/key 2>/dev/null || echo refused > artifacts/key\n"
        "mkdir artifacts/sub && echo made > artifacts/sub/file\n"
    )
    for job in (build, sign):
        service.submit(spec(job, script))
    for job in (build, sign):
        wait_until(lambda j=job: observe(service, j).status is JobStatus.SUCCESS, timeout=WAIT)
    built = Path(observe(service, build).artifacts_dir or "")
    signed = Path(observe(service, sign).artifacts_dir or "")
    assert (built / "who").read_text() == "nobody\n"
    assert (built / "key").read_text() == "refused\n", "the build cannot read the key"
    assert (signed / "who").read_text() == "root\n", "a sign job runs as the daemon"
    assert (built / "sub/file").read_text() == "made\n", "the daemon reads what it made"
    shutil.rmtree(built.parent)  # and can delete it: the retention prunes job directories


def key_of_kind(pkgname: str, kind: JobKind) -> JobKey:
    version = "1.0-r0" if kind is JobKind.BUILD else "f" * 64
    name = pkgname if kind is JobKind.BUILD else ""
    return JobKey(JobIntent(kind, RepoKey("main", "", "x86_64"), name, version), 1)
