"""What plan() asks execute to do: a closed union of frozen actions, and outcomes.

Each action carries everything execute needs, so execute never re-plans.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.jobs import JobKey, JobObservation
from reconciler.model.names import RepoKey
from reconciler.model.packages import PkgSpec


@dataclass(frozen=True, slots=True)
class SubmitBuild:
    key: JobKey
    spec: PkgSpec
    # Repositories whose indexes the build may read, in lookup order.
    dep_repos: tuple[RepoKey, ...]
    # (name, version) pairs that must be present in those indexes.
    required: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class CollectBuild:
    """Move a finished build's apks into WIP after checking them."""

    job: JobObservation
    spec: PkgSpec


@dataclass(frozen=True, slots=True)
class SeedFromOrigin:
    """Copy published apks of a staging branch's origin into the staging WIP repo."""

    repo: RepoKey
    origin: RepoKey
    filenames: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReindexWip:
    repo: RepoKey


@dataclass(frozen=True, slots=True)
class PruneWip:
    repo: RepoKey
    filenames: tuple[str, ...]
    why: str


@dataclass(frozen=True, slots=True)
class WriteSymlinkRepo:
    """Build the unsigned index of what the repository will publish next."""

    repo: RepoKey
    from_wip: tuple[str, ...]
    from_final: tuple[str, ...]
    commit: str


@dataclass(frozen=True, slots=True)
class SubmitSign:
    key: JobKey


@dataclass(frozen=True, slots=True)
class PublishFinal:
    repo: RepoKey
    job: JobObservation  # the successful sign job
    unsigned_sha256: str
    # Files whose rebuild (same name, other bytes) an operator asked for.
    replace: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PruneFinal:
    """Remove apks from final that its live index does not list."""

    repo: RepoKey
    filenames: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MirrorFinal:
    """Copy a published repository to the mirror (its index has this sha256)."""

    repo: RepoKey
    index_sha256: str


@dataclass(frozen=True, slots=True)
class CancelJob:
    """Stop a running build whose version is no longer desired; its results,
    should any arrive, are ignored anyway."""

    key: JobKey
    why: str


Action = (
    SubmitBuild
    | CollectBuild
    | SeedFromOrigin
    | ReindexWip
    | PruneWip
    | WriteSymlinkRepo
    | SubmitSign
    | PublishFinal
    | PruneFinal
    | MirrorFinal
    | CancelJob
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened when execute performed one action."""

    action: Action
    ok: bool
    message: str = ""
