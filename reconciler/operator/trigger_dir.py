"""The trigger directory as the daemon reads it: watched, drained, sorted out.

Writers rename complete files in (`triggers.write_trigger`). The watchdog
observer thread only sets an Event; the loop then rescans the directory in name
order. A well-formed file is handled and, once its request is recorded, removed
(wake-ups) or moved to `processed/`; anything else (bad content, or an entry that
is not a regular file) moves to `rejected/` with a `.reason` file beside it that
names the file and what is wrong. Nothing in a trigger file can crash or block
the loop. `prune` keeps the two directories within their age and count.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from reconciler.fs.atomicfile import write_text
from reconciler.fs.regularfile import Refused, read_regular
from reconciler.fs.retention import prune_directory
from reconciler.operator.triggers import MAX_TRIGGER_BYTES, Trigger, TriggerError, parse_trigger

log = logging.getLogger(__name__)


class _Handler(FileSystemEventHandler):
    """Wakes the loop when a trigger appears: not for a writer's aside file (its
    rename is the one wake-up), nor for a trigger moved to processed/."""

    def __init__(self, wake: threading.Event, directory: Path) -> None:
        self._wake = wake
        self._directory = os.fspath(directory)

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory and self._is_trigger(str(event.src_path)):
            self._wake.set()

    def on_moved(self, event: FileSystemEvent) -> None:
        if not event.is_directory and self._is_trigger(str(event.dest_path)):
            self._wake.set()

    def _is_trigger(self, path: str) -> bool:
        directory, name = os.path.split(path)
        return directory == self._directory and is_trigger_name(name)


def trigger_handler(wake: threading.Event, directory: Path) -> FileSystemEventHandler:
    """The watchdog handler that sets `wake` when a trigger appears in `directory`."""
    return _Handler(wake, directory)


def is_trigger_name(name: str) -> bool:
    """Whether a file of the trigger directory is read as a trigger (not a writer's
    aside file or a subdirectory)."""
    return not (name.startswith(".") or name.endswith((".tmp", ".part")) or name in _SUBDIRS)


class TriggerDir:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processed = directory / "processed"
        self.rejected = directory / "rejected"
        for path in (directory, self.processed, self.rejected):
            path.mkdir(parents=True, exist_ok=True)
        self.wake = threading.Event()
        self._observer: Any = None

    def start(self) -> None:
        observer = Observer()
        handler = trigger_handler(self.wake, self.directory)
        observer.schedule(handler, str(self.directory), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def wait(self, timeout: float) -> bool:
        """Sleep until a file arrives or `timeout` passes; True when woken."""
        woken = self.wake.wait(max(timeout, 0))
        self.wake.clear()
        return woken

    def drain(self) -> list[Trigger]:
        """Read every file present, in name order. Bad ones move to `rejected/` at
        once; the good ones stay until `settle` is called for them, after what
        they ask for is safely recorded: a pass that fails before that reads
        them again, so no request is lost."""
        handled: list[Trigger] = []
        try:
            names = sorted(os.listdir(self.directory))
        except OSError as exc:
            log.error("cannot list trigger dir %s: %s", self.directory, exc)
            return handled
        for name in names:
            path = self.directory / name
            if not is_trigger_name(name):
                continue
            try:
                raw = read_regular(str(path), MAX_TRIGGER_BYTES)[1]
                trigger = parse_trigger(name, raw)
            except Refused as exc:
                self._reject(path, f"{name}: {exc}")
                continue
            except (TriggerError, OSError) as exc:
                reason = str(exc) if isinstance(exc, TriggerError) else f"{name}: {exc.strerror}"
                self._reject(path, reason)
                continue
            handled.append(trigger)
        return handled

    def settle(self, triggers: list[Trigger]) -> None:
        """Triggers whose requests are recorded: wake-ups go, the rest move to
        `processed/`."""
        for trigger in triggers:
            path = self.directory / trigger.name
            try:
                if trigger.type == "wake":
                    path.unlink()
                else:
                    os.replace(path, self.processed / trigger.name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.error("cannot move handled trigger %s: %s", path, exc)

    def _reject(self, path: Path, reason: str) -> None:
        log.warning("rejected trigger %s", reason)
        try:
            os.replace(path, self.rejected / path.name)
            write_text(self.rejected / f"{path.name}.reason", reason + "\n")
        except OSError as exc:
            log.error("cannot move rejected trigger %s: %s", path, exc)

    def prune(self, now: float, max_age_seconds: float, max_files: int) -> int:
        """Delete what `processed/` and `rejected/` hold beyond the age or the count
        (oldest first, a rejected file with its `.reason`). Returns how many went."""
        removed = 0
        for directory in (self.processed, self.rejected):
            removed += prune_directory(directory, now, max_age_seconds, max_files)
        return removed


_SUBDIRS = ("processed", "rejected")
