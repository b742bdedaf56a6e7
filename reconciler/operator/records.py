"""The record of every manual operation carried out: `<paths.durable>/operations.jsonl`.

One JSON line per operation, applied, refused or a no-op, appended and synced
before the operation's effect is saved: a pass that dies in between applies the
trigger again and records it twice, never not at all. It is history operators
rely on (who held what, when and why), so it lives with the decisions, apart
from the caches, and is not pruned. The newest records are kept in memory for
the operations page and the feed; a line a crash tore is skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path

from reconciler.model.progress import OperationRecord

RECORDS_FILE = "operations.jsonl"
SHOWN_RECORDS = 1000  # kept in memory, newest first


class OperationLog:
    def __init__(self, directory: Path) -> None:
        self.path = directory / RECORDS_FILE
        self._recent = self._read_recent()

    def append(self, records: list[OperationRecord]) -> None:
        if not records:
            return
        text = "".join(json.dumps(asdict(r), sort_keys=True) + "\n" for r in records)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size:  # a crash may have torn the last line: end it first
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    text = "\n" + text
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        self._recent = (list(reversed(records)) + self._recent)[:SHOWN_RECORDS]

    def recent(self) -> tuple[OperationRecord, ...]:
        """The newest records, newest first."""
        return tuple(self._recent)

    def _read_recent(self) -> list[OperationRecord]:
        try:
            with open(self.path, "rb") as handle:
                lines = handle.read().decode("utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        names = {f.name for f in fields(OperationRecord)}
        found: list[OperationRecord] = []
        for line in reversed(lines):
            try:
                data = json.loads(line)
                if set(data) != names:
                    continue
                found.append(OperationRecord(**data))
            except (ValueError, TypeError):
                continue
            if len(found) >= SHOWN_RECORDS:
                break
        return found
