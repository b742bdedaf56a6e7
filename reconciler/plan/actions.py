"""What plan() asks execute to do: a closed union of frozen actions, and outcomes.

Each action carries everything execute needs (the observed apks it indexes, the
indexes a build may read, the commit and checkout it builds from), so execute
never looks at the repositories again to decide, and never re-plans.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.images import DesiredImage
from reconciler.model.jobs import JobKey, JobObservation
from reconciler.model.names import RepoKey
from reconciler.model.packages import ApkInfo, PkgSpec


@dataclass(frozen=True, slots=True)
class BuildIndex:
    """An index a build may read, as observed when the build was planned."""

    repo: RepoKey
    final: bool  # the repository's final index (else its WIP index)
    present: bool  # the index existed
    signer: str = ""  # the key name in its signature


@dataclass(frozen=True, slots=True)
class SubmitBuild:
    key: JobKey
    spec: PkgSpec
    # The indexes the build may read, as (WIP, final) pairs in lookup order.
    indexes: tuple[BuildIndex, ...]
    # (name, version) pairs that must be present in those indexes.
    required: tuple[tuple[str, str], ...]
    commit: str  # the pmaports commit the spec was read from ("" for a plain directory)
    pmaports: str  # the branch's pmaports checkout


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
    """Write the WIP index of exactly these apks (those observed in WIP)."""

    repo: RepoKey
    apks: tuple[ApkInfo, ...]


@dataclass(frozen=True, slots=True)
class PruneWip:
    repo: RepoKey
    filenames: tuple[str, ...]
    why: str


@dataclass(frozen=True, slots=True)
class WriteSymlinkRepo:
    """Build the unsigned index of what the repository will publish next."""

    repo: RepoKey
    from_wip: tuple[ApkInfo, ...]
    from_final: tuple[ApkInfo, ...]
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
    # apks in final that the new index does not list: removed once it is live.
    unlisted: tuple[str, ...] = ()


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


@dataclass(frozen=True, slots=True)
class RemoveBranch:
    """Delete a branch's WIP, symlink and final repositories (every arch and split
    repo) and, for a staging branch, the daemon's checkout of it."""

    branch: str
    splitrepos: tuple[str, ...]
    checkout: str  # "" when the daemon keeps no checkout of it
    why: str


@dataclass(frozen=True, slots=True)
class SubmitImage:
    """Start an image job; its date directory is chosen now, from the plan's clock."""

    key: JobKey
    image: DesiredImage
    date_dir: str


@dataclass(frozen=True, slots=True)
class PublishImage:
    """Check a finished image job's files against the checksums its log printed,
    then move them into `<images>/<release>/<device>/<ui>/<date>/` at once."""

    job: JobObservation
    image: DesiredImage


@dataclass(frozen=True, slots=True)
class PruneImages:
    """Remove published date directories of one (release, device, UI), with the
    site's copies of their jobs' logs."""

    release: str
    device: str
    ui: str
    dates: tuple[str, ...]
    job_ids: tuple[str, ...]  # of the jobs that built them, one per date ("": unknown)
    why: str


@dataclass(frozen=True, slots=True)
class RemoveImages:
    """Remove `<release>/<device>[/<ui>]` of the images tree (the whole device
    when `ui` is ""), which the configuration no longer names, at once (renamed
    aside, then deleted), with the site's copies of its jobs' logs."""

    release: str
    device: str
    ui: str
    job_ids: tuple[str, ...]  # of the jobs that built what it holds, as observed
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
    | RemoveBranch
    | SubmitImage
    | PublishImage
    | PruneImages
    | RemoveImages
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened when execute performed one action."""

    action: Action
    ok: bool
    message: str = ""
    no_space: bool = False  # failed because a file system is full
