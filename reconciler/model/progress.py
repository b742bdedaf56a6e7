"""How packages and repositories stand, as plan() reports it and people read it.

Values only: each package's state with a reason, and each repository's phase on
its publish ladder. Their strings land in pages, feeds and JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.model.images import ImageTarget
from reconciler.model.names import RepoKey


class PkgState(StrEnum):
    """Where one package of one repository stands, as shown to people."""

    PUBLISHED = "published"
    BUILT = "built"  # in WIP at the desired version, waiting for its repo to publish
    BUILDING = "building"
    QUEUED = "queued"  # ready to build, waiting for a job slot
    WAITING = "waiting"  # waiting for dependencies
    RETRYING = "retrying"  # failed, another try is scheduled
    FAILED = "failed"  # failed, no tries left
    BROKEN = "broken"  # its APKBUILD or dependency graph is unusable (cycle, parse error)
    HELD = "held"  # an operator holds it: not built, its published apks stay

    @property
    def letter(self) -> str:
        return _STATE_LETTERS[self]

    @property
    def is_problem(self) -> bool:
        return self in (PkgState.FAILED, PkgState.BROKEN, PkgState.RETRYING)


_STATE_LETTERS = {
    PkgState.PUBLISHED: "P",
    PkgState.BUILT: "B",
    PkgState.BUILDING: "R",
    PkgState.QUEUED: "Q",
    PkgState.WAITING: "W",
    PkgState.RETRYING: "T",
    PkgState.FAILED: "F",
    PkgState.BROKEN: "X",
    PkgState.HELD: "H",
}


@dataclass(frozen=True, slots=True)
class PkgStatus:
    """A package's state in one repository, with a reason a person can read."""

    repo: RepoKey
    pkgname: str
    version: str
    state: PkgState
    reason: str = ""
    tries: int = 0
    max_tries: int = 0
    job_id: str | None = None  # the job the reason refers to (its log)
    next_try_at: float | None = None
    # The last error lines of that job's log, for a failed try ("" when none).
    excerpt: str = ""
    # What a waiting package needs, one requirement each, in words that group
    # well: "foo-utils", "foo-utils (failed)", "gcc-aarch64 published for x86_64".
    needs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageStatus:
    """Where one desired image stands, with a reason a person can read."""

    target: ImageTarget
    arch: str
    release: str
    state: PkgState  # published, building, queued, waiting, retrying or failed
    reason: str = ""
    job_id: str | None = None  # the job the reason refers to (its log)
    tries: int = 0
    max_tries: int = 0
    next_try_at: float | None = None
    date: str = ""  # the published date directory, once there is one
    excerpt: str = ""


def need_blocks(need: str) -> bool:
    """Whether a requirement phrase of `PkgStatus.needs` names something that never
    comes as things stand ("foo (failed)", "foo (blocked)", "foo (its APKBUILD is
    broken)"), rather than something on its way ("foo", "foo published for
    x86_64"): the planner writes the former with the why in parentheses."""
    return need.endswith(")")


def need_words(need: str) -> str:
    """A requirement as a reason says it: "blocked by foo (failed)", "needs foo"."""
    return f"blocked by {need}" if need_blocks(need) else f"needs {need}"


class RepoPhase(StrEnum):
    """Where one repository's publish ladder stands."""

    PUBLISHED = "published"  # final equals desired
    BUILDING = "building"  # work remains before the repository is complete
    BLOCKED = "blocked"  # failures keep it from completing
    INDEXING = "indexing"  # the symlink repository is being prepared
    SIGNING = "signing"  # waiting for the sign job
    PUBLISHING = "publishing"  # signed index ready, copying into final
    EMPTY = "empty"  # nothing desired and nothing published


@dataclass(frozen=True, slots=True)
class RepoStatus:
    repo: RepoKey
    phase: RepoPhase
    reason: str = ""
    published_commit: str = ""
    published_at: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    """A state transition worth remembering (history, feeds)."""

    time: float
    repo: str
    pkgname: str
    version: str
    kind: str  # "failed", "fixed", "published", "built", "operator", ...
    message: str
    job_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OperationRecord:
    """One manual operation as it was carried out: applied, refused or a no-op,
    with what it changed. Kept for good (the operations page and feed)."""

    time: float
    operation: str  # its name: "hold", "requeue", ...
    who: str
    why: str
    target: str  # what it was asked of: "main/x86_64 hello-x86", "main", a job id
    outcome: str  # "applied", "refused" or "no-op"
    effect: str  # what it changed, in words
