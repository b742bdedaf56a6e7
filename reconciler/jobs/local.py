"""The local job service: one detached process per job, all state in directories.

Each job lives in `live/<job id>/` (script, inputs, log, artifacts, status.json)
and moves to `done/<job id>/` once finished, so listing live jobs stays cheap as
history grows; `logs/<job id>.log` links each job's log for the web server
(see `runner`). The directory name is the job id derived from the JobKey, and it
is created exclusively: the same (intent, attempt) can never be submitted twice,
whatever the daemon remembers. A job is alive while its runner holds the lock on
`lock`; a job with neither a held lock nor a status is reported LOST.

Every process of a job lives in the job's own cgroup v2 leaf, which the runner
records in `cgroup` (`containment` says how, and what happens without cgroup2).
Before this service declares a job lost it kills everything in that cgroup and
waits until it is empty, so nothing of a lost job runs on or writes into its
directory; `cancel` kills the whole cgroup too, and archiving a finished job
removes a cgroup a crash left behind.

Runners are forked by the launcher (the runner's serve mode, started at the
first job and kept while the service lives), which is sent the job directory
with the held lock: a job's runner then starts in a millisecond instead of a new
interpreter's time. If the launcher cannot be reached, the runner is started as
a process of its own, as before; if it takes the request but does not confirm,
it is given up and the lock tells the next look whether the runner began (held:
running; free with no log: started again, never twice).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.formats.buildlog import TAIL_BYTES, excerpt_of_bytes
from reconciler.fs.atomicfile import CREATE_FLAGS, fsync_dir, make_dirs, safe_join, write_text
from reconciler.fs.crashpoint import crashpoint
from reconciler.fs.retention import Limits, prune
from reconciler.jobs import containment
from reconciler.jobs.containment import ContainmentError
from reconciler.jobs.runner import PUBLIC_LOGS, SERVE, WAKE_ASIDE_PREFIX, launch_request
from reconciler.jobs.service import JobExistsError, JobServiceError, JobSpec
from reconciler.model.jobs import JobKey, JobKind, JobObservation, JobStatus

log = logging.getLogger(__name__)

RUNNER_MODULE = "reconciler.jobs.runner"  # what every job process runs
_TERMINAL = {
    "success": JobStatus.SUCCESS,
    "failed": JobStatus.FAILED,
    "timeout": JobStatus.TIMEOUT,
    "cancelled": JobStatus.CANCELLED,
    "lost": JobStatus.LOST,
}


PRUNE_EVERY_SECONDS = 3600.0  # finished jobs are pruned at start and at most this often
LAUNCH_TIMEOUT = 30.0  # seconds for the launcher to answer a request (read each look)


@dataclass(frozen=True, slots=True)
class Launcher:
    """The runner in serve mode and the service's end of its socket pair."""

    process: subprocess.Popen[bytes]
    channel: socket.socket


class LocalJobService:
    def __init__(
        self,
        root: Path,
        trigger_dir: Path | None,
        clock: Callable[[], float] = time.time,
        retention: Limits | None = None,
        build_user: str = "",
    ) -> None:
        """`retention` bounds `done/`: an intent's finished jobs go together once
        its newest is older than the age, oldest intents first beyond the size
        (None: kept for ever). `build_user` ("": the daemon's own) is the user
        build scripts run as, through sudo, so that they cannot read the keys."""
        self.build_user = build_user
        self.live_dir = root / "live"
        self.done_dir = root / "done"
        self.logs_dir = root / PUBLIC_LOGS
        self.trigger_dir = trigger_dir
        self._clock = clock
        self._retention = retention
        self._pruned_at = 0.0  # wall-clock time of the last pruning
        self.live_dir.mkdir(parents=True, exist_ok=True)
        self.done_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.live_dir.glob(".new-*"):  # a submit cut short by a crash
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in self.live_dir.glob(f"{WAKE_ASIDE_PREFIX}*"):  # a runner's, likewise
            leftover.unlink(missing_ok=True)
        self._done: dict[JobKey, JobObservation] = {}
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._launcher: Launcher | None = None
        self._launcher_failed = False  # given up: runners start as processes of their own
        self._unanswered: deque[tuple[str, float]] = deque()  # (job id, monotonic time sent)
        self._prune()
        for path in sorted(self.done_dir.iterdir()):
            obs = self._read_finished(path)
            if obs is not None:
                self._done[obs.key] = obs

    # --- JobService -----------------------------------------------------------
    def list_jobs(self) -> Mapping[JobKey, JobObservation]:
        self._hear_launcher()
        if time.time() - self._pruned_at >= PRUNE_EVERY_SECONDS:
            self._prune()
        for job_id, child in list(self._children.items()):
            if child.poll() is not None:  # reap, so no zombies pile up
                del self._children[job_id]
        live: dict[JobKey, JobObservation] = {}
        try:
            entries = sorted(self.live_dir.iterdir())
        except OSError as exc:
            raise JobServiceError(f"cannot list {self.live_dir}: {exc}") from exc
        for path in entries:
            if path.name.startswith("."):
                continue
            obs = self._observe_live(path)
            if obs is None:
                continue
            if obs.status.is_live:
                live[obs.key] = obs
            else:
                self._archive(path, obs)
        return {**self._done, **live}

    def submit(self, spec: JobSpec) -> JobObservation:
        job_id = spec.key.job_id
        path = self.live_dir / job_id
        if spec.key in self._done or (self.done_dir / job_id).exists() or path.exists():
            raise JobExistsError(f"job {job_id} was already submitted")
        # Prepare the whole directory aside, then rename it into place: a job
        # directory under its real name is always complete.
        staging = self.live_dir / f".new-{job_id}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        now = self._clock()
        meta = {
            "job_id": job_id,
            "note": spec.note,
            "submitted_at": now,
            "timeout_seconds": spec.timeout_seconds,
            "trigger_dir": str(self.trigger_dir) if self.trigger_dir else None,
        }
        if self.build_user and spec.key.intent.kind is JobKind.BUILD:
            meta["run_as"] = self.build_user
        (staging / "artifacts").mkdir()
        _write_new_files(
            staging,
            [
                *((name, data, 0o644) for name, data in spec.files.items()),
                ("script.sh", spec.script.encode(), 0o755),
                ("job.json", (json.dumps(meta, indent=1) + "\n").encode(), 0o644),
            ],
        )
        try:
            os.rename(staging, path)  # fails if the job exists: never submitted twice
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise JobExistsError(f"job {job_id} was already submitted") from exc
        crashpoint("job-prepared")
        self._start(path)
        log.info("submitted job %s", job_id)
        return JobObservation(
            spec.key,
            JobStatus.RUNNING,
            now,
            log_path=str(path / "log"),
            artifacts_dir=str(path / "artifacts"),
        )

    def _start(self, path: Path) -> None:
        """Start the runner of a prepared job directory, handing it the held lock:
        through the launcher, else as a process of its own."""
        lock_fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            if self._launch(path, lock_fd):
                return
            child = subprocess.Popen(
                [sys.executable, "-m", RUNNER_MODULE, str(path), str(lock_fd)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # killing the daemon must not kill its jobs
                pass_fds=(lock_fd,),
                env=_child_env(),
            )
        finally:
            os.close(lock_fd)
        self._children[path.name] = child

    def _launch(self, path: Path, lock_fd: int) -> bool:
        """Send the job to the launcher with its lock. False when it was not sent
        (the lock is still this process's alone). Its answer is read later
        (`_hear_launcher`): a pass does not wait for the launcher's turn on a CPU."""
        self._hear_launcher()
        if self._launcher_failed:
            return False
        try:
            launcher = self._launcher or self._start_launcher()
            request = launch_request(path, _child_env())
            # Never blocks: a launcher too stuck to read its requests is given up.
            socket.send_fds(launcher.channel, [request], [lock_fd], socket.MSG_DONTWAIT)
        except OSError as exc:
            self._give_up_launcher(f"cannot start job {path.name} through it: {exc}")
            return False
        self._unanswered.append((path.name, time.monotonic()))
        return True

    def _hear_launcher(self) -> None:
        """Read the launcher's answers so far, one pid per job sent. Anything else,
        its end or no answer within LAUNCH_TIMEOUT gives it up, and the jobs it was
        sent are not started here again: whether their runners began (and hold
        their locks) or not (free, no log: started again), the next look sees."""
        launcher = self._launcher
        while launcher is not None and self._unanswered:
            job_id, sent = self._unanswered[0]
            try:
                answer = launcher.channel.recv(256, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if time.monotonic() - sent > LAUNCH_TIMEOUT:
                    self._give_up_launcher(f"job {job_id}: no answer in {LAUNCH_TIMEOUT:g} s")
                return
            except OSError as exc:
                answer = f"no answer: {exc}".encode()
            if not answer.isdigit():
                said = answer.decode("utf-8", "replace") or "it ended"
                self._give_up_launcher(f"job {job_id}: {said}")
                return
            self._unanswered.popleft()

    def _start_launcher(self) -> Launcher:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", RUNNER_MODULE, SERVE, str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its runners' sessions are their own anyway
                pass_fds=(theirs.fileno(),),
                env=_child_env(),
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self._launcher = Launcher(process, ours)
        return self._launcher

    def _give_up_launcher(self, why: str) -> None:
        """Stop using the launcher: runners start as processes of their own from now on."""
        log.warning("the job launcher failed, starting runners without it: %s", why)
        self._launcher_failed = True
        self._unanswered.clear()
        launcher, self._launcher = self._launcher, None
        if launcher is not None:
            launcher.channel.close()
            with contextlib.suppress(OSError):
                launcher.process.kill()
            self._children["launcher"] = launcher.process  # reaped by list_jobs

    def cancel(self, key: JobKey) -> None:
        """Stop every process of a live job, setsid'd ones included; its runner
        then reports it CANCELLED (or, if the runner is gone, it is found LOST)."""
        containment.cancel(self.live_dir / key.job_id, key.job_id)

    # --- internals ---------------------------------------------------------
    def _prune(self) -> None:
        """Delete finished jobs beyond the retention limits, every attempt of an
        intent together: its tries count only while all of them are known."""
        if self._retention is None:
            return
        self._pruned_at = time.time()
        gone = prune(self.done_dir, self._pruned_at, self._retention, group=_intent_of)
        if gone:
            self._done = {k: o for k, o in self._done.items() if _intent_of(k.job_id) not in gone}
        self._prune_public_logs()

    def _prune_public_logs(self) -> None:
        """Unlink the public logs of jobs that are neither live nor done any more."""
        try:
            names = os.listdir(self.logs_dir)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot list %s: %s", self.logs_dir, exc)
            return
        for name in names:
            job_id = name.removesuffix(".log")
            if (self.done_dir / job_id).exists() or (self.live_dir / job_id).exists():
                continue
            try:
                (self.logs_dir / name).unlink()
            except OSError as exc:
                log.warning("cannot remove %s: %s", self.logs_dir / name, exc)

    def _observe_live(self, path: Path) -> JobObservation | None:
        try:
            key = JobKey.from_job_id(path.name)
        except ValueError as exc:
            log.warning("ignoring foreign entry in %s: %s", self.live_dir, exc)
            return None
        finished = self._read_finished(path)
        if finished is not None:
            return finished
        submitted = _submitted_at(path)
        if _lock_is_held(path / "lock"):
            return JobObservation(
                key,
                JobStatus.RUNNING,
                submitted,
                log_path=str(path / "log"),
                artifacts_dir=str(path / "artifacts"),
            )
        ended = self._read_finished(path)
        if ended is not None:  # it ended between the two looks
            return ended
        if not (path / "log").exists():
            # Submitted, but the runner never began (the daemon died in between):
            # start it now. Same job, same attempt: nothing is submitted twice.
            log.warning("starting job %s, which was submitted but never started", path.name)
            self._start(path)
            return JobObservation(
                key,
                JobStatus.RUNNING,
                submitted,
                log_path=str(path / "log"),
                artifacts_dir=str(path / "artifacts"),
            )
        if not self._kill_leftovers(path):
            return JobObservation(  # processes remain: not lost yet, the next look retries
                key,
                JobStatus.RUNNING,
                submitted,
                log_path=str(path / "log"),
                artifacts_dir=str(path / "artifacts"),
            )
        now = self._clock()
        reason = "the job's process vanished without an exit status"
        status = {"status": "lost", "exit_code": None, "reason": reason, "ended_at": now}
        try:
            write_text(path / "status.json", json.dumps(status) + "\n")
        except OSError as exc:  # a full disk: found lost again next time, written then
            log.warning("cannot record job %s as lost: %s", path.name, exc)
        return JobObservation(
            key,
            JobStatus.LOST,
            submitted,
            now,
            reason,
            str(path / "log"),
            excerpt=_excerpt(path / "log"),
        )

    def _read_finished(self, path: Path) -> JobObservation | None:
        try:
            key = JobKey.from_job_id(path.name)
            status = json.loads((path / "status.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        state = _TERMINAL.get(str(status.get("status")), JobStatus.FAILED)
        return JobObservation(
            key,
            state,
            _submitted_at(path),
            float(status.get("ended_at") or 0.0),
            str(status.get("reason") or ""),
            log_path=str(path / "log"),
            artifacts_dir=str(path / "artifacts"),
            excerpt=_excerpt(path / "log") if state.is_failure else "",
        )

    def _kill_leftovers(self, path: Path) -> bool:
        """Kill every process left in the job's cgroup, wait until it is empty and
        remove it. False if processes remain (the error is logged)."""
        try:
            cgroup = containment.recorded_cgroup(path, path.name)
        except ContainmentError as exc:  # an unreadable or forged record: nothing to kill
            log.error("job %s in %s: %s", path.name, path, exc)
            return True
        try:
            if cgroup is not None:
                cgroup.remove()
        except ContainmentError as exc:
            log.error("job %s in %s: %s", path.name, path, exc)
            return False
        return True

    def _archive(self, path: Path, obs: JobObservation) -> None:
        self._kill_leftovers(path)  # a crashed runner's empty cgroup must not pile up
        target = self.done_dir / path.name
        try:
            if target.exists():  # a crash between copy and delete; keep the first
                shutil.rmtree(path)
            else:
                os.rename(path, target)
        except OSError as exc:
            log.error("cannot move finished job %s to %s: %s", path, target, exc)
            return
        moved = JobObservation(
            obs.key,
            obs.status,
            obs.submitted_at,
            obs.ended_at,
            obs.reason,
            log_path=str(target / "log"),
            artifacts_dir=str(target / "artifacts"),
            excerpt=obs.excerpt,
        )
        self._done[obs.key] = moved


def _write_new_files(directory: Path, files: list[tuple[str, bytes, int]]) -> None:
    """Create files (name, bytes, mode) in a directory no one else looks at yet, then
    sync each and the directory: once it is renamed into place, what it holds is
    whole, even after a machine crash. Unlike replacing a file others read, no
    file needs writing aside, so a job's inputs cost one sync each, not two."""
    synced: list[int] = []
    try:
        for name, data, mode in files:
            path = safe_join(directory, name)
            if path.parent != directory:
                make_dirs(path.parent)
            fd = os.open(path, CREATE_FLAGS, mode)
            synced.append(fd)
            with open(fd, "wb", closefd=False) as handle:
                handle.write(data)
            os.fchmod(fd, mode)  # whatever the umask
        for fd in synced:
            os.fsync(fd)
    finally:
        for fd in synced:
            os.close(fd)
    fsync_dir(directory)


def _intent_of(job_id: str) -> str:
    """A job id without its attempt: what the attempts of one intent share."""
    return job_id.rpartition("@")[0] or job_id


def _lock_is_held(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing also drops a lock we just took
    return False


def _excerpt(log_file: Path) -> str:
    """The lines of a finished job's log that say why it failed ("" when unreadable)."""
    try:
        with open(log_file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(size - TAIL_BYTES, 0))
            return excerpt_of_bytes(f.read(TAIL_BYTES))
    except OSError:
        return ""


def _submitted_at(path: Path) -> float:
    try:
        return float(json.loads((path / "job.json").read_text(encoding="utf-8"))["submitted_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env
