"""One daemon per data directory: an flock on `<data>/daemon.lock`.

The kernel drops an flock when its holder dies, however it dies, so a SIGKILLed
daemon never leaves the lock behind and the next start needs no clean-up. The
file holds the holder's PID, for the message a second daemon prints before it
exits. Commands that only read take no lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from reconciler.model.errors import UsageError

LOCK_NAME = "daemon.lock"


class AlreadyRunningError(UsageError):
    """Another daemon holds the data directory."""


class InstanceLock:
    """Held from `acquire` until `release` (or the process ends)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write our PID, or raise AlreadyRunningError naming the
        PID that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"PID {holder}" if holder else "another process"
            raise AlreadyRunningError(
                f"{self.path}: a daemon ({who}) already runs on this data directory;"
                " stop it first (read-only commands such as status still work)"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return 0
    return int(text) if text.isascii() and text.isdigit() and len(text) < 12 else 0
