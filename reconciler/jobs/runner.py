"""Runs one local job: the process that lives in the job's own session.

Started by the local job service with the job directory and an inherited file
descriptor that already holds an exclusive lock on `lock`: as long as this
process lives, the lock proves the job is alive. It runs `script.sh` with its
output in `log`, enforces the timeout, writes `status.json` atomically when the
script ends (trying again while the disk is full, the lock still held: the job
is then still running, never lost), and drops a wake-up file in the trigger dir:
written beside the job directory and renamed in, so that the watched directory
sees one new file and the loop wakes once, with the bytes `operator.triggers`
gives a wake-up (a lost one costs the loop a poll interval, nothing more).
The log is also linked (a hard link, so it follows the job directory from `live/`
to `done/`) as `logs/<job id>.log` beside them: the one place nginx reads a
job's log from while it runs, where nothing else of the job is.

Every process of the job is held together by `containment`: the script starts
inside a cgroup v2 leaf of its own (it joins between fork and exec, so nothing
of it ever runs outside), and a timeout, a cancel or the script's end kills the
whole cgroup, setsid'd grandchildren included, before the status is written, so
nothing of a finished job runs on. The script does not get the lock: if this
runner is killed, the job service kills the cgroup and then declares the job
lost. Without a writable cgroup2 hierarchy the runner is a child subreaper
instead and the script inherits the lock (see `containment` for what that
fallback cannot catch). The first lines of the log say which one a job got.

`python -m reconciler.jobs.runner serve FD` is the launcher: started once by the
job service with one end of a socket pair, it forks a runner for each request
(a job directory, the environment to run it in and the job's held lock), so a
job does not pay for a new interpreter and its imports before its script
starts. Its runners are the same `run` in the same session of their own, and a
lost launcher loses nothing: the lock tells the service whether a runner began.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import BinaryIO, NoReturn

from reconciler.fs.atomicfile import CREATE_FLAGS, write_bytes, write_fresh, write_text
from reconciler.jobs import containment
from reconciler.jobs.containment import CANCEL_MARK, PID_FILE, Containment, ContainmentError

# Beside `live/` and `done/`: one hard link per job's log, what the web server reads.
PUBLIC_LOGS = "logs"
STATUS_RETRY_FIRST = 0.1  # seconds before writing status.json is tried again
STATUS_RETRY_MAX = 10.0
WAKE_ASIDE_PREFIX = ".wake-"  # beside the job directory: its wake-up before it is renamed in
WAKE_PREFIX = "job-"  # of a job's wake-up in the trigger dir (the job-end receiver's too)
SERVE = "serve"  # the launcher's first argument
MAX_REQUEST_BYTES = 1 << 20  # a launch request: a path and an environment


def run(job_dir: Path, lock_fd: int) -> int:
    meta = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    timeout = float(meta.get("timeout_seconds", 3600))
    job_id = str(meta["job_id"])
    started = time.time()
    # Unbuffered: a full disk fails the one write, never the close.
    with open(job_dir / "log", "ab", buffering=0) as log:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        log.write(f"job {job_id} started at {stamp}\n".encode())
        log.write(_publish_log(job_dir, job_id).encode())
        try:
            jail = containment.contain(job_dir, job_id)
            log.write(f"processes held by {jail.why}\n".encode())
            log.flush()  # before the script writes to the same file
            proc, jail = _start(job_dir, jail, lock_fd, log, str(meta.get("run_as") or ""))
            # Only the fallback's cancel reads it; not synced: no process outlives a
            # machine crash.
            with contextlib.suppress(OSError):
                write_fresh(job_dir / PID_FILE, f"{proc.pid}\n".encode())
            try:
                code = wait_for(proc, timeout)
                status = "success" if code == 0 else "failed"
                reason = "" if code == 0 else f"exit code {code}"
                if code != 0 and (code == -signal.SIGTERM or (job_dir / CANCEL_MARK).exists()):
                    status, reason = "cancelled", "cancelled"  # the job service's cancel
            except subprocess.TimeoutExpired:
                jail.kill_all(proc.pid)
                proc.wait()
                code, status, reason = -9, "timeout", f"no result after {timeout:g} s"
            jail.finish()  # nothing of the job runs on once its status is written
        except ContainmentError as exc:
            # No status: the job service kills what is left, then declares it lost.
            log.write(f"\njob runner failed: {exc}\n".encode())
            return 1
        ended = time.time()
        with contextlib.suppress(OSError):  # a full disk costs the line, not the result
            log.write(f"\njob ended: {status} {reason} after {ended - started:.1f} s\n".encode())
    result = {"status": status, "exit_code": code, "reason": reason, "ended_at": ended}
    _write_status(job_dir, json.dumps(result) + "\n")
    trigger_dir = meta.get("trigger_dir")
    if trigger_dir:
        with contextlib.suppress(OSError):  # a lost wake-up costs one poll interval
            wake_loop(job_dir, Path(trigger_dir), job_id)
    return 0


def wake_bytes(job_id: str) -> bytes:
    """A wake-up trigger naming the job, as `operator.triggers.trigger_bytes` spells it."""
    return json.dumps({"type": "wake", "job": job_id}, indent=1).encode()


def wake_loop(job_dir: Path, trigger_dir: Path, job_id: str) -> None:
    """Drop `job-<job id>.json` into the trigger dir: written beside the job's
    directory (in `live/`, which stays where it is while the job service moves a
    finished job to `done/`, and whose listing skips dot files) and renamed in, so
    that one new name appears there, whole, and the loop wakes once (a file written
    in place would wake it for its temporary name too). Across file systems it is
    written in place. Not synced: it carries nothing a crash could lose
    (status.json is the record), and what a machine crash might leave of it the
    loop puts in rejected/."""
    target = trigger_dir / f"{WAKE_PREFIX}{job_id}.json"
    aside = job_dir.parent / f"{WAKE_ASIDE_PREFIX}{job_id}.json"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(aside)  # a runner's before a crash
    with open(os.open(aside, CREATE_FLAGS, 0o644), "wb") as wake:
        wake.write(wake_bytes(job_id))
    try:
        os.rename(aside, target)
    except OSError as exc:
        os.unlink(aside)
        if exc.errno != errno.EXDEV:
            raise
        write_bytes(target, wake_bytes(job_id))


def wait_for(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """`proc.wait(timeout)`, but woken by the kernel the moment the process ends (a
    pidfd) instead of Popen's polling, which looks up to 50 ms late."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux 5.3+
        return proc.wait(timeout=timeout)
    try:
        ended = select.poll()
        ended.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while not ended.poll(max(deadline - time.monotonic(), 0.0) * 1000):
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(pidfd)
    return proc.wait()


def _write_status(job_dir: Path, text: str) -> None:
    """Write status.json, trying again until it is written (a full disk): the lock
    stays held meanwhile, so the job is still running, never lost, and its result
    is kept for when there is space again."""
    delay = STATUS_RETRY_FIRST
    while True:
        try:
            write_text(job_dir / "status.json", text)
            return
        except OSError as exc:
            print(f"cannot write {job_dir / 'status.json'}: {exc}; trying again", file=sys.stderr)
            time.sleep(delay)
            delay = min(delay * 2, STATUS_RETRY_MAX)


def _start(
    job_dir: Path, jail: Containment, lock_fd: int, log: BinaryIO, run_as: str
) -> tuple[subprocess.Popen[bytes], Containment]:
    """Start the script inside the job's containment. If it cannot join the
    cgroup (its preexec step fails, so it never ran), fall back and start it so."""
    try:
        return _spawn(job_dir, jail, lock_fd, log, run_as), jail
    except subprocess.SubprocessError as exc:
        if jail.cgroup is None:
            raise
        containment.drop_cgroup(job_dir, jail.cgroup)
        why = f"the script could not join {jail.cgroup.path}: {exc}"
        jail = containment.fall_back(jail.job_id, why)
        log.write(f"processes held by {jail.why}\n".encode())
        log.flush()
    return _spawn(job_dir, jail, lock_fd, log, run_as), jail


def _publish_log(job_dir: Path, job_id: str) -> str:
    """Link the log where the web server reads it; what went wrong, or "". Without
    the link only the live view is lost: the site copies the log when the job ends."""
    public = job_dir.parent.parent / PUBLIC_LOGS
    try:
        public.mkdir(mode=0o755, exist_ok=True)
        os.link(job_dir / "log", public / f"{job_id}.log")
    except FileExistsError:
        pass  # the same job's runner, started again after a crash
    except OSError as exc:
        return f"the log is not readable while the job runs: cannot link it into {public}: {exc}\n"
    return ""


def script_command(job_dir: Path, run_as: str) -> list[str]:
    """How the script is started: by bash, or through sudo as `run_as` with the
    runner's own group, after opening the job directory to that group (setgid,
    so everything the script makes there belongs to it, umask 007 so the runner
    can read and delete it). The user cannot read what is only the runner's
    user's: the keys are mode 0600."""
    if not run_as:
        return ["bash", "script.sh"]
    group = grp.getgrgid(os.getegid()).gr_name
    for directory in (job_dir, job_dir / "artifacts"):
        os.chmod(directory, 0o2770)
    script = "umask 007 && exec bash script.sh"
    return ["sudo", "-n", "-u", run_as, "-g", group, "--", "bash", "-c", script]


def _spawn(
    job_dir: Path, jail: Containment, lock_fd: int, log: BinaryIO, run_as: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        script_command(job_dir, run_as),
        cwd=job_dir,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=jail.preexec if jail.cgroup is not None else None,
        pass_fds=(lock_fd,) if jail.script_keeps_lock else (),
    )


def launch_request(job_dir: Path, env: dict[str, str]) -> bytes:
    """What the job service sends the launcher for one job (the lock goes beside it)."""
    return json.dumps({"job_dir": str(job_dir), "env": env}).encode()


def serve(channel: socket.socket) -> int:
    """The launcher's loop, until the job service's end of `channel` closes: fork a
    runner for each request and answer its pid (or "error: ..."). Runners are
    reaped by the kernel; each holds the lock it was sent, the launcher's copy is
    closed at once."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        data, fds, flags, _ = socket.recv_fds(channel, MAX_REQUEST_BYTES, 1)
        if not data and not fds:
            return 0  # the job service is gone
        try:
            if len(fds) != 1 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise ValueError("expected one request with one lock")
            request = json.loads(data)
            job_dir, env = Path(request["job_dir"]), dict(request["env"])
            pid = os.fork()
            if pid == 0:
                _run_forked(channel, job_dir, fds[0], env)
            answer = str(pid)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            answer = f"error: {exc}"
        finally:
            for fd in fds:
                os.close(fd)
        channel.send(answer.encode())


def _run_forked(
    channel: socket.socket, job_dir: Path, lock_fd: int, env: dict[str, str]
) -> NoReturn:
    """In the launcher's child: become what `python -m reconciler.jobs.runner JOB_DIR
    LOCK_FD` would be (own session, the service's environment), run the job, exit."""
    code = 1
    try:
        channel.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        os.environ.clear()
        os.environ.update(env)
        os.set_inheritable(lock_fd, False)
        code = run(job_dir, lock_fd)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == SERVE and sys.argv[2].isdigit():
        sys.exit(serve(socket.socket(fileno=int(sys.argv[2]))))
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        print(
            "usage: python -m reconciler.jobs.runner JOB_DIR LOCK_FD\n"
            "       python -m reconciler.jobs.runner serve CHANNEL_FD",
            file=sys.stderr,
        )
        sys.exit(2)
    job_dir = Path(sys.argv[1])
    # sys.argv[2] is the lock descriptor; keeping it open keeps the lock held.
    # Only the fallback hands it on to the script (see `containment`).
    lock_fd = int(sys.argv[2])
    os.set_inheritable(lock_fd, False)
    sys.exit(run(job_dir, lock_fd))


if __name__ == "__main__":
    main()
