"""What the daemon remembers between passes that it cannot observe again cheaply.

`<state>/cache.json`: refused job results, the index each repository last sent
to the mirror, and each package's and repository's last state (to tell
transitions apart, which become events). Deleting it costs at most some rebuilds
and a few repeated events. When a copy to the mirror last failed is kept in
memory only: a restart simply tries at once. The operators' intents are not
here (`operator.store`: durable), nor the event history (`history`).
"""

from __future__ import annotations

import json
import logging
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


class Memory:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.cache_path = directory / CACHE_FILE
        cache = self._load_cache()
        self.rejected: dict[str, str] = dict(cache.get("rejected", {}))
        self.last_states: dict[str, str] = dict(cache.get("states", {}))
        self.last_phases: dict[str, str] = dict(cache.get("phases", {}))
        self.last_images: dict[str, str] = dict(cache.get("images", {}))
        self.mirrored: dict[str, str] = dict(cache.get("mirrored", {}))
        self._saved = self._snapshot()
        self._dirty = False  # set by every change; save() serializes only then
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

    def _snapshot(self) -> str:
        return json.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "rejected": self.rejected,
                "states": self.last_states,
                "phases": self.last_phases,
                "images": self.last_images,
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
        self.mirror_failures.pop(repo, None)
        self._dirty = True

    def mark_mirror_failed(self, repo: str, at: float) -> None:
        self.mirror_failures[repo] = at

    def mark_dirty(self) -> None:
        """Something changed that save() must write."""
        self._dirty = True

    def reject(self, job_id: str, reason: str) -> None:
        self.rejected[job_id] = reason
        self._dirty = True

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
        memory.last_images[ident] = value
        memory.mark_dirty()
        kind = _event_kind(old.split("|")[0] if old else "", image.state)
        if kind:
            where = f"{image.target.branch}/{image.arch}"
            text = f"image {image.target}" + (f": {image.reason}" if image.reason else "")
            events.append(Event(now, where, "", image.target.slot, kind, text, image.job_id))
    for ident in [i for i in memory.last_images if i not in seen]:
        del memory.last_images[ident]
        memory.mark_dirty()
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
