"""What the daemon remembers between passes, kept in three files of different weight.

- `intents.json`: operator intents (holds, retries). Durable: written atomically,
  never treated as a cache.
- `cache.json`: what is expensive or impossible to observe again cheaply: refused
  job results and each package's last state (to tell transitions apart). Deleting
  it costs at most some rebuilds and a few repeated events.
- `events.jsonl`: the append-only history of transitions (failed, fixed,
  published...), read back for feeds and the front page; never rewritten whole.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from reconciler.fs.atomicfile import write_text
from reconciler.model.progress import Event, PkgState, PkgStatus, RepoPhase, RepoStatus

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RECENT_EVENTS = 100  # kept in memory for the site and the feeds


class StateStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.cache_path = directory / "cache.json"
        self.events_path = directory / "events.jsonl"
        self.intents_path = directory / "intents.json"
        cache = self._load_cache()
        self.rejected: dict[str, str] = dict(cache.get("rejected", {}))
        self.last_states: dict[str, str] = dict(cache.get("states", {}))
        self.last_phases: dict[str, str] = dict(cache.get("phases", {}))
        self.mirrored: dict[str, str] = dict(cache.get("mirrored", {}))
        self._saved = self._snapshot()
        self._dirty = False  # set by every change; save() serializes only then
        self._recent = self._read_recent_events(RECENT_EVENTS)

    def _load_cache(self) -> dict[str, Any]:
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable state cache %s: %s", self.cache_path, exc)
            return {}
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            log.warning("ignoring state cache %s of another schema", self.cache_path)
            return {}
        return data

    def _snapshot(self) -> str:
        return json.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "rejected": self.rejected,
                "states": self.last_states,
                "phases": self.last_phases,
                "mirrored": self.mirrored,
            },
            sort_keys=True,
            indent=1,
        )

    def save(self) -> None:
        """Write the cache only when it changed (a quiet pass writes nothing)."""
        if not self._dirty:
            return
        self._dirty = False
        snapshot = self._snapshot()
        if snapshot != self._saved:
            write_text(self.cache_path, snapshot + "\n")
            self._saved = snapshot

    def mark_mirrored(self, repo: str, sha256: str) -> None:
        self.mirrored[repo] = sha256
        self._dirty = True

    def reject(self, job_id: str, reason: str) -> None:
        self.rejected[job_id] = reason
        self._dirty = True

    # --- transitions -> events ---------------------------------------------------------
    def transitions(
        self, packages: Iterable[PkgStatus], repos: Iterable[RepoStatus], now: float
    ) -> list[Event]:
        """Events for every state change since the last pass; remembers the new states."""
        events: list[Event] = []
        seen: set[str] = set()
        for status in packages:
            ident = f"{status.repo}|{status.pkgname}"
            seen.add(ident)
            value = f"{status.state}|{status.version}|{status.tries}"
            old = self.last_states.get(ident)
            if old == value:
                continue
            self.last_states[ident] = value
            self._dirty = True
            old_state = old.split("|")[0] if old else ""
            kind = _event_kind(old_state, status.state)
            if kind:
                events.append(
                    Event(
                        now,
                        str(status.repo),
                        status.pkgname,
                        status.version,
                        kind,
                        status.reason or str(status.state),
                        status.job_id,
                    )
                )
        for ident in [i for i in self.last_states if i not in seen]:
            repo, _, pkgname = ident.partition("|")
            del self.last_states[ident]
            self._dirty = True
            events.append(Event(now, repo, pkgname, "", "removed", "no longer in pmaports"))
        for repo_status in repos:
            name = str(repo_status.repo)
            old_phase = self.last_phases.get(name)
            if old_phase != repo_status.phase:
                self.last_phases[name] = str(repo_status.phase)
                self._dirty = True
            if repo_status.phase is RepoPhase.PUBLISHED and old_phase not in (None, "published"):
                events.append(Event(now, name, "", "", "published", "repository published"))
        self.append_events(events)
        return events

    def append_events(self, events: list[Event]) -> None:
        if not events:
            return
        self._recent = (list(reversed(events)) + self._recent)[:RECENT_EVENTS]
        lines = "".join(json.dumps(asdict(e), sort_keys=True) + "\n" for e in events)
        with open(self.events_path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def recent_events(self) -> tuple[Event, ...]:
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


def _event_kind(old: str, new: PkgState) -> str:
    if new is PkgState.FAILED and old != PkgState.FAILED:
        return "failed"
    if new is PkgState.RETRYING:
        return "retrying"
    if old in (PkgState.FAILED, PkgState.RETRYING, PkgState.BROKEN) and new in (
        PkgState.BUILT,
        PkgState.PUBLISHED,
        PkgState.BUILDING,
    ):
        return "fixed" if new is not PkgState.BUILDING else ""
    if new is PkgState.BROKEN and old != PkgState.BROKEN:
        return "broken"
    if new is PkgState.BUILT and old != PkgState.BUILT:
        return "built"
    if new is PkgState.PUBLISHED and old and old != PkgState.PUBLISHED:
        return "published"
    return ""
