"""What the daemon remembers between passes that it cannot observe again cheaply.

`<state>/cache.json`: refused job results, the index each repository last sent
to the mirror, and each package's and repository's last state (to tell
transitions apart, which become events). A pass's changes are appended to
`<state>/cache.journal` (one synced JSON line), so that a change costs its own
size, not the size of the distribution; the snapshot is written again (aside,
synced, renamed, with the next generation number) only once the journal has
grown as large as it. Journal lines of another generation (a crash between the
new snapshot and the journal's reset) and a line a crash tore are skipped.
Deleting either file costs at most some rebuilds and a few repeated events.
When a copy to the mirror last failed is kept in memory only: a restart simply
tries at once. The operators' intents are not here (`operator.store`: durable),
nor the event history (`history`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reconciler.fs.atomicfile import write_text
from reconciler.model.progress import (
    Event,
    ImageStatus,
    PkgState,
    PkgStatus,
    RepoPhase,
    RepoStatus,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CACHE_FILE = "cache.json"
JOURNAL_FILE = "cache.journal"
SECTIONS = ("rejected", "states", "phases", "images", "mirrored")
MIN_JOURNAL_BYTES = 64 * 1024  # a small cache is not rewritten for every change either


class Memory:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.cache_path = directory / CACHE_FILE
        self.journal_path = directory / JOURNAL_FILE
        cache = self._load_cache()
        generation = cache.get("generation", 0)
        self._generation = generation if isinstance(generation, int) else 0
        self.rejected: dict[str, str] = _strings(cache.get("rejected"))
        self.last_states: dict[str, str] = _strings(cache.get("states"))
        self.last_phases: dict[str, str] = _strings(cache.get("phases"))
        self.last_images: dict[str, str] = _strings(cache.get("images"))
        self.mirrored: dict[str, str] = _strings(cache.get("mirrored"))
        self._sections = {
            "rejected": self.rejected,
            "states": self.last_states,
            "phases": self.last_phases,
            "images": self.last_images,
            "mirrored": self.mirrored,
        }
        self._snapshot_bytes = _size(self.cache_path)
        self._journal_bytes, self._torn = self._replay_journal()
        # section -> key -> its new value (None: forgotten), since the last save
        self._changes: dict[str, dict[str, str | None]] = {name: {} for name in SECTIONS}
        self.mirror_failures: dict[str, float] = {}

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

    def _replay_journal(self) -> tuple[int, bool]:
        """Apply the journal's lines of this snapshot's generation; (its size, whether
        its last line is torn)."""
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return 0, False
        except OSError as exc:
            log.warning("ignoring unreadable state journal %s: %s", self.journal_path, exc)
            return 0, False
        skipped = 0
        for line in data.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                skipped += 1
                continue
            if not isinstance(entry, dict) or entry.get("generation") != self._generation:
                continue
            changes = entry.get("changes")
            for name, section in self._sections.items():
                found = changes.get(name) if isinstance(changes, dict) else None
                for key, value in found.items() if isinstance(found, dict) else ():
                    if value is None:
                        section.pop(key, None)
                    elif isinstance(value, str):
                        section[key] = value
        if skipped:
            log.warning("skipped %d torn line(s) of %s", skipped, self.journal_path)
        return len(data), bool(data) and not data.endswith(b"\n")

    def _snapshot(self) -> str:
        return json.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "generation": self._generation,
                **self._sections,
            },
            sort_keys=True,
            indent=1,
        )

    def save(self) -> None:
        """Write what changed since the last save (a quiet pass writes nothing): a
        journal line, or a new snapshot once the journal is as large as it."""
        changes = {name: found for name, found in self._changes.items() if found}
        if not changes:
            return
        line = json.dumps({"generation": self._generation, "changes": changes}, sort_keys=True)
        line = ("\n" if self._torn else "") + line + "\n"
        if self._journal_bytes + len(line) > max(MIN_JOURNAL_BYTES, self._snapshot_bytes):
            self._generation += 1
            snapshot = self._snapshot() + "\n"
            write_text(self.cache_path, snapshot)
            write_text(self.journal_path, "")
            self._snapshot_bytes, self._journal_bytes = len(snapshot), 0
        else:
            with open(self.journal_path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self._journal_bytes += len(line.encode("utf-8"))
        self._torn = False
        self._changes = {name: {} for name in SECTIONS}

    def remember(self, section: str, key: str, value: str) -> None:
        """Set one value of a section (see SECTIONS), to be saved."""
        self._sections[section][key] = value
        self._changes[section][key] = value

    def forget(self, section: str, key: str) -> None:
        """Drop one value of a section, to be saved."""
        if self._sections[section].pop(key, None) is not None:
            self._changes[section][key] = None

    def mark_mirrored(self, repo: str, sha256: str) -> None:
        self.remember("mirrored", repo, sha256)
        self.mirror_failures.pop(repo, None)

    def mark_mirror_failed(self, repo: str, at: float) -> None:
        self.mirror_failures[repo] = at

    def reject(self, job_id: str, reason: str) -> None:
        self.remember("rejected", job_id, reason)

    # --- transitions -> events ---------------------------------------------------------
    def transitions(
        self, packages: Iterable[PkgStatus], repos: Iterable[RepoStatus], now: float
    ) -> list[Event]:
        """Events for every state change since the last pass; remembers the new states.
        Long because it compares packages, then removed packages, then repositories."""
        events: list[Event] = []
        seen: set[str] = set()
        for status in packages:
            ident = f"{status.repo}|{status.pkgname}"
            seen.add(ident)
            value = f"{status.state}|{status.version}|{status.tries}"
            old = self.last_states.get(ident)
            if old == value:
                continue
            self.remember("states", ident, value)
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
            self.forget("states", ident)
            events.append(Event(now, repo, pkgname, "", "removed", "no longer in pmaports"))
        for repo_status in repos:
            name = str(repo_status.repo)
            old_phase = self.last_phases.get(name)
            if old_phase != repo_status.phase:
                self.remember("phases", name, str(repo_status.phase))
            if repo_status.phase is RepoPhase.PUBLISHED and old_phase not in (None, "published"):
                events.append(Event(now, name, "", "", "published", "repository published"))
        return events


def image_events(memory: Memory, images: Iterable[ImageStatus], now: float) -> list[Event]:
    """Events for the images whose state changed since the last pass (failed,
    retrying, fixed, published), remembering the new states; images no longer
    desired are forgotten without an event (a new slot brings a new image)."""
    events: list[Event] = []
    seen: set[str] = set()
    for image in images:
        ident = str(image.target)
        seen.add(ident)
        value = f"{image.state}|{image.tries}"
        old = memory.last_images.get(ident)
        if old == value:
            continue
        memory.remember("images", ident, value)
        kind = _event_kind(old.split("|")[0] if old else "", image.state)
        if kind:
            where = f"{image.target.branch}/{image.arch}"
            text = f"image {image.target}" + (f": {image.reason}" if image.reason else "")
            events.append(Event(now, where, "", image.target.slot, kind, text, image.job_id))
    for ident in [i for i in memory.last_images if i not in seen]:
        memory.forget("images", ident)
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


def _strings(value: object) -> dict[str, str]:
    """A section of the snapshot: its string values (anything else is dropped)."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
