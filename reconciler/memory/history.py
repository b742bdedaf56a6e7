"""The event history: transitions, operator requests and pushes, one JSON line each.

`<state>/events.jsonl` is appended to (and synced) and never rewritten whole; the
newest events are kept in memory for the site and the feeds, and read back from
the end of the file at start, skipping a line a crash tore; the first append
after such a crash ends that line first, so the next event is not glued to it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from reconciler.model.progress import Event

EVENTS_FILE = "events.jsonl"
RECENT_EVENTS = 100  # kept in memory for the site and the feeds


class EventLog:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.events_path = directory / EVENTS_FILE
        self._recent = self._read_recent_events(RECENT_EVENTS)
        self._torn = self._ends_torn()  # a crash cut the last line short: end it first

    def append(self, events: list[Event]) -> None:
        if not events:
            return
        self._recent = (list(reversed(events)) + self._recent)[:RECENT_EVENTS]
        lines = "".join(json.dumps(asdict(e), sort_keys=True) + "\n" for e in events)
        if self._torn:
            lines = "\n" + lines
        with open(self.events_path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        self._torn = False

    def _ends_torn(self) -> bool:
        try:
            with open(self.events_path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                if size == 0:
                    return False
                handle.seek(size - 1)
                return handle.read(1) != b"\n"
        except FileNotFoundError:
            return False

    def recent(self) -> tuple[Event, ...]:
        """The newest events, newest first (from memory)."""
        return tuple(self._recent)

    def _read_recent_events(self, limit: int) -> list[Event]:
        """The newest events in the history file, newest first; torn lines skipped."""
        try:
            with open(self.events_path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(size - 512 * limit, 0))
                lines = handle.read().decode("utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        events: list[Event] = []
        for line in reversed(lines):
            try:
                data = json.loads(line)
                events.append(Event(**data))
            except (ValueError, TypeError):  # a line torn by a crash, or of another schema
                continue
            if len(events) >= limit:
                break
        return events
