"""The event history: transitions, operator requests and pushes, one JSON line each.

`<state>/events.jsonl` is appended to (and synced); the newest events are kept in
memory for the site and the feeds, and read back from the end of the file at
start, skipping a line a crash tore; the first append after such a crash ends
that line first, so the next event is not glued to it. `prune` rewrites it
(aside, synced, renamed) without the lines beyond the retention limits.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

from reconciler.fs.atomicfile import write_bytes
from reconciler.model.progress import Event

log = logging.getLogger(__name__)

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

    def prune(self, now: float, max_age_seconds: float, max_bytes: int) -> int:
        """Drop the lines older than the age, then the oldest ones beyond the size
        (down to 90 % of it, so that the next prune is not due at once). Reads the
        first line only while nothing is due. Returns how many lines went."""
        try:
            size = os.path.getsize(self.events_path)
            with open(self.events_path, "rb") as handle:
                first = handle.readline()
        except FileNotFoundError:
            return 0
        if size <= max_bytes and _time_of(first, now) >= now - max_age_seconds:
            return 0
        with open(self.events_path, "rb") as handle:
            lines = handle.read().splitlines(keepends=True)
        kept = [line for line in lines if _time_of(line, now) >= now - max_age_seconds]
        budget, total = int(max_bytes * 0.9), 0
        start = len(kept)
        while start > 0 and total + len(kept[start - 1]) <= budget:
            start -= 1
            total += len(kept[start])
        kept = kept[start:]
        if kept and not kept[-1].endswith(b"\n"):
            kept[-1] += b"\n"
        write_bytes(self.events_path, b"".join(kept))
        self._torn = False
        log.info("pruned %d old lines of %s", len(lines) - len(kept), self.events_path)
        return len(lines) - len(kept)

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


def _time_of(line: bytes, default: float) -> float:
    """An event line's time; a torn or foreign line counts as `default`."""
    try:
        value = json.loads(line).get("time", default)
    except (ValueError, AttributeError):
        return default
    return float(value) if isinstance(value, int | float) else default
