"""The trigger directory as the daemon reads it: watched, drained, sorted out.

Writers rename complete files in (`triggers.write_trigger`). The watchdog
observer thread only sets an Event; the loop then rescans the directory in name
order. A well-formed file is handled and removed (wake-ups) or moved to
`processed/`; anything else moves to `rejected/` with a `.reason` file beside it
that names the file and the field. Nothing in a trigger file can crash the loop.
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
from reconciler.operator.triggers import MAX_TRIGGER_BYTES, Trigger, TriggerError, parse_trigger

log = logging.getLogger(__name__)


class _Handler(FileSystemEventHandler):
    def __init__(self, wake: threading.Event) -> None:
        self._wake = wake

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._wake.set()

    def on_moved(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._wake.set()


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
        observer.schedule(_Handler(self.wake), str(self.directory), recursive=False)
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
        """Handle every file present, in name order."""
        handled: list[Trigger] = []
        try:
            names = sorted(os.listdir(self.directory))
        except OSError as exc:
            log.error("cannot list trigger dir %s: %s", self.directory, exc)
            return handled
        for name in names:
            path = self.directory / name
            if name.startswith(".") or name.endswith((".tmp", ".part")) or not path.is_file():
                continue
            try:
                with open(path, "rb") as handle:  # never more than the limit in memory
                    raw = handle.read(MAX_TRIGGER_BYTES + 1)
                trigger = parse_trigger(name, raw)
            except (TriggerError, OSError) as exc:
                self._reject(path, str(exc))
                continue
            handled.append(trigger)
            try:
                if trigger.type == "wake":
                    path.unlink()
                else:
                    os.replace(path, self.processed / name)
            except OSError as exc:
                log.error("cannot move handled trigger %s: %s", path, exc)
        return handled

    def _reject(self, path: Path, reason: str) -> None:
        log.warning("rejected trigger %s", reason)
        try:
            os.replace(path, self.rejected / path.name)
            write_text(self.rejected / f"{path.name}.reason", reason + "\n")
        except OSError as exc:
            log.error("cannot move rejected trigger %s: %s", path, exc)
