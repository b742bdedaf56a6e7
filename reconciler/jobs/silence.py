"""The silence watchdog: runs a build, passing its output through, and stops it
after a stretch of silence.

It runs inside a pmbootstrap build job (named there as `python -m
reconciler.jobs.pmbootstrap watch SECONDS -- COMMAND...`). A build that prints
nothing for SECONDS is stopped (its whole process group: SIGTERM, then SIGKILL)
with a "silence timeout" line in the log and exit code 124, like timeout(1).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

SILENCE_EXIT = 124  # like timeout(1)


def watch(seconds: float, argv: list[str]) -> int:
    """Run argv with its output passed through; stop it after `seconds` of silence."""
    out = sys.stdout.buffer
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
    except OSError as exc:
        print(f"reconciler: cannot run {argv[0]}: {exc}", flush=True)
        return 127
    assert proc.stdout is not None

    def stop(signum: int, _frame: object) -> None:  # cancel or timeout of the job
        _kill_group(proc)
        sys.exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    fd = proc.stdout.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], seconds)
        if not ready:
            out.flush()
            print(
                f"\nreconciler: silence timeout: the build printed nothing for {seconds:g} s;"
                " stopping it",
                flush=True,
            )
            _kill_group(proc)
            return SILENCE_EXIT
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        out.write(chunk)
        out.flush()
    return proc.wait()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for signum, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 4 or args[0] != "watch" or args[2] != "--":
        print("usage: python -m reconciler.jobs.pmbootstrap watch SECONDS -- COMMAND...")
        return 2
    try:
        seconds = float(args[1])
    except ValueError:
        print(f"watch: {args[1]!r} is not a number of seconds")
        return 2
    return watch(seconds, args[3:])
