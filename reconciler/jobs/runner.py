"""Runs one local job: the process that lives in the job's own session.

Started by the local job service with the job directory and an inherited file
descriptor that already holds an exclusive lock on `lock`: as long as this
process (or the script under it) lives, the lock proves the job is alive. It runs
`script.sh` with its output in `log`, enforces the timeout, writes `status.json`
atomically when the script ends, and drops a wake-up file in the trigger dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from reconciler.fs.atomicfile import write_text
from reconciler.operator.triggers import TriggerError, write_trigger


def run(job_dir: Path) -> int:
    meta = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    timeout = float(meta.get("timeout_seconds", 3600))
    started = time.time()
    with open(job_dir / "log", "ab") as log:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        log.write(f"job {meta['job_id']} started at {stamp}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            ["bash", "script.sh"],
            cwd=job_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        write_text(job_dir / "pid", f"{proc.pid}\n")
        try:
            code = proc.wait(timeout=timeout)
            status = "success" if code == 0 else "failed"
            reason = "" if code == 0 else f"exit code {code}"
            if code == -signal.SIGTERM:  # the job service's cancel
                status, reason = "cancelled", "cancelled"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code, status, reason = -9, "timeout", f"no result after {timeout:g} s"
        ended = time.time()
        log.write(f"\njob ended: {status} {reason} after {ended - started:.1f} s\n".encode())
    result = {"status": status, "exit_code": code, "reason": reason, "ended_at": ended}
    write_text(job_dir / "status.json", json.dumps(result) + "\n")
    trigger_dir = meta.get("trigger_dir")
    if trigger_dir:
        wake = {"type": "wake", "job": meta["job_id"]}
        # A lost wake-up costs one poll interval, nothing more.
        with contextlib.suppress(OSError, TriggerError):
            write_trigger(Path(trigger_dir), f"job-{meta['job_id']}.json", wake)
    return 0


def main() -> None:
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        print("usage: python -m reconciler.jobs.runner JOB_DIR LOCK_FD", file=sys.stderr)
        sys.exit(2)
    job_dir = Path(sys.argv[1])
    # sys.argv[2] is the lock descriptor; keeping it open keeps the lock held.
    lock_fd = int(sys.argv[2])
    os.set_inheritable(lock_fd, False)
    sys.exit(run(job_dir))


if __name__ == "__main__":
    main()
