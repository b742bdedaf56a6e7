"""The trigger directory: files dropped in it wake the loop and may carry a request.

A writer creates a file elsewhere (or as a dot-file) and renames it in. The
watchdog observer thread only sets an Event; the loop then rescans the directory
in name order. A well-formed file is handled and removed (wake-ups) or moved to
`processed/`; anything else moves to `rejected/` with a `.reason` file beside it
that names the file and the field. Nothing in a trigger file can crash the loop.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from reconciler.fs.atomicfile import write_text
from reconciler.model.names import is_safe_branch
from reconciler.operator.operations import OPERATIONS, IntentError, check_operation

log = logging.getLogger(__name__)

MAX_TRIGGER_BYTES = 64 * 1024
KNOWN_TYPES = ("wake", "push", *OPERATIONS)


@dataclass(frozen=True, slots=True)
class Trigger:
    name: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)


class TriggerError(ValueError):
    pass


def parse_trigger(name: str, raw: bytes) -> Trigger:
    """Validate one trigger file's bytes; TriggerError names the file and the field."""
    if len(raw) > MAX_TRIGGER_BYTES:
        raise TriggerError(f"{name}: larger than {MAX_TRIGGER_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise TriggerError(f"{name}: not a JSON document: {exc}") from exc
    except RecursionError as exc:
        raise TriggerError(f"{name}: JSON nested too deeply") from exc
    if not isinstance(data, dict):
        raise TriggerError(f"{name}: expected a JSON object")
    kind = data.get("type")
    if kind not in KNOWN_TYPES:
        raise TriggerError(
            f"{name}: field 'type': expected one of {', '.join(KNOWN_TYPES)}, got {kind!r}"
        )
    if kind == "push":
        branch = data.get("branch")
        if not isinstance(branch, str) or not is_safe_branch(branch):
            raise TriggerError(f"{name}: field 'branch': expected a branch name, got {branch!r}")
    if kind in OPERATIONS:
        try:
            check_operation(name, data)
        except IntentError as exc:
            raise TriggerError(str(exc)) from exc
    return Trigger(name, str(kind), data)


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
