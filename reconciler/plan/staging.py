"""What a staging repository takes from its origin instead of building it.

Pure. A staging branch differs from the configured branch it stages for in a
few packages; everything else is copied from the origin's published repository
(same arch and split repo) into the staging WIP repository, so only the
differences are built. A staging repository is held back while its origin
repository has unpublished packages: seeding from a moving origin would copy
builds that are about to be replaced, and a failure there would fail twice.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.model.names import RepoKey
from reconciler.model.observations import RepoObserved
from reconciler.model.packages import PkgSpec
from reconciler.model.progress import RepoPhase, RepoStatus


def origin_repo(key: RepoKey, origin: str) -> RepoKey:
    return RepoKey(origin, key.splitrepo, key.arch)


def origin_gate(origin: RepoKey, status: RepoStatus | None) -> str | None:
    """Why a staging repository waits for its origin, or None when it may go on."""
    if status is None or status.phase in (RepoPhase.PUBLISHED, RepoPhase.EMPTY):
        return None
    return f"held back: {origin} has unpublished packages ({status.phase})"


def seed_files(
    specs: Mapping[str, PkgSpec], staging: RepoObserved, origin: RepoObserved
) -> dict[str, tuple[str, ...]]:
    """pkgname -> the origin's published apk files (the package and its subpackages)
    to copy, for each desired package that staging has in neither final nor WIP
    at its desired version and that the origin publishes at that version."""
    index = origin.final_index
    if index is None:
        return {}
    published: dict[tuple[str, str], list[str]] = {}
    for name, info in origin.final.items():
        if index.files.get(name) == info.checksum:
            published.setdefault((info.origin or info.pkgname, info.version), []).append(name)
    staged = staging.final_index.files if staging.final_index is not None else {}
    seeds: dict[str, tuple[str, ...]] = {}
    for pkgname, spec in specs.items():
        filename = f"{pkgname}-{spec.version}.apk"
        files = published.get((pkgname, spec.version), [])
        if filename not in files or filename in staged or filename in staging.wip:
            continue
        seeds[pkgname] = tuple(sorted(files))
    return seeds
