"""What operators' requests leave standing: holds, retry grants, rebuild requests,
jobs declared dead and paused branches, and `Intents`, the durable set of them that plan() obeys.

Frozen dataclasses only. Operations (`operations`) make them, the store keeps them
(`store`: one list per field of `Intents`, so a new kind needs no other change),
the plan reads them. `BranchRemoval` is the one request that is not kept: it is
carried out in the pass that asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.names import RepoKey


@dataclass(frozen=True, slots=True)
class Hold:
    """An operator holds a package: it is not built and keeps what is published."""

    branch: str
    arch: str  # "" for every arch
    pkgname: str
    who: str
    why: str
    since: float
    expires: float | None = None

    def applies(self, repo: RepoKey, pkgname: str, now: float) -> bool:
        return (
            self.branch == repo.branch
            and self.arch in ("", repo.arch)
            and self.pkgname == pkgname
            and (self.expires is None or now < self.expires)
        )


@dataclass(frozen=True, slots=True)
class RetryGrant:
    """An operator gives a failed package fresh tries: attempts up to
    `after_attempt` no longer count, and the next one may start at once."""

    branch: str
    arch: str  # "" for every arch
    pkgname: str
    after_attempt: int
    who: str
    why: str
    at: float

    def applies(self, repo: RepoKey, pkgname: str) -> bool:
        return (
            self.branch == repo.branch and self.arch in ("", repo.arch) and self.pkgname == pkgname
        )


@dataclass(frozen=True, slots=True)
class RebuildRequest:
    """An operator asks for a package to be built again at the same version.

    Pending while final still holds the bytes it had when asked (`replaced`, the
    checksum of the package's own apk); attempts up to `after_attempt` of its
    build intent no longer count, so a new build starts."""

    branch: str
    arch: str
    pkgname: str
    version: str
    replaced: str
    after_attempt: int
    who: str
    why: str
    at: float

    def applies(self, repo: RepoKey, pkgname: str, version: str) -> bool:
        return (self.branch, self.arch, self.pkgname, self.version) == (
            repo.branch,
            repo.arch,
            pkgname,
            version,
        )


@dataclass(frozen=True, slots=True)
class DeadJob:
    """An operator declares a job dead: it is cancelled and counts as a failed try."""

    job_id: str
    who: str
    why: str
    at: float


@dataclass(frozen=True, slots=True)
class Pause:
    """An operator pauses a branch (or one arch of it): no new job starts there;
    running jobs finish and what they built is collected and published."""

    branch: str
    arch: str  # "" for every arch
    who: str
    why: str
    since: float
    expires: float | None = None

    def applies(self, repo: RepoKey, now: float) -> bool:
        return (
            self.branch == repo.branch
            and self.arch in ("", repo.arch)
            and (self.expires is None or now < self.expires)
        )


@dataclass(frozen=True, slots=True)
class Intents:
    """What operators asked for; durable, never derived."""

    holds: tuple[Hold, ...] = ()
    retries: tuple[RetryGrant, ...] = ()
    rebuilds: tuple[RebuildRequest, ...] = ()
    dead_jobs: tuple[DeadJob, ...] = ()
    pauses: tuple[Pause, ...] = ()

    def rebuild_for(self, repo: RepoKey, pkgname: str, version: str) -> RebuildRequest | None:
        return next((r for r in self.rebuilds if r.applies(repo, pkgname, version)), None)

    def dead(self, job_id: str) -> DeadJob | None:
        return next((d for d in self.dead_jobs if d.job_id == job_id), None)

    def hold_for(self, repo: RepoKey, pkgname: str, now: float) -> Hold | None:
        return next((h for h in self.holds if h.applies(repo, pkgname, now)), None)

    def pause_for(self, repo: RepoKey, now: float) -> Pause | None:
        return next((p for p in self.pauses if p.applies(repo, now)), None)

    def retried_after(self, repo: RepoKey, pkgname: str) -> int:
        """Attempts up to this number do not count any more (0: none granted)."""
        return max((r.after_attempt for r in self.retries if r.applies(repo, pkgname)), default=0)


@dataclass(frozen=True, slots=True)
class BranchRemoval:
    """A request, made in this pass, to delete what a branch published."""

    branch: str
    why: str
    checkout: str = ""  # the daemon's checkout of it, deleted too ("" when none)
