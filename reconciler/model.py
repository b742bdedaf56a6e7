"""Value types passed between the reconciler's modules: names, repositories,
package specs, jobs, observations and events (operator intents are in `operations`).

Everything here is a frozen dataclass or a StrEnum: no I/O, no behaviour beyond
formatting and tiny derived properties. Package and repository states live in
`status`, the plan's actions in `actions`. Data flows one way:
desired/observed -> plan -> execute -> site.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

# Names that end up in paths, command lines and pages. apk allows these
# characters in package names (apk-formats.md §2.2); we refuse everything else
# before any path is built.
PKGNAME_RE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+-]*$")
ARCH_RE = re.compile(r"^[a-z0-9_]+$")
BRANCH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# A version as it may appear in a file name: the grammar itself is checked by
# apkversion; this only keeps path-hostile characters out.
VERSION_CHARS_RE = re.compile(r"^[A-Za-z0-9._~+-]+$")


def is_safe_name(name: str) -> bool:
    """A package, subpackage or splitrepo name that is safe to use in a path."""
    return bool(PKGNAME_RE.match(name)) and name not in {".", ".."} and len(name) <= 128


def is_safe_version(version: str) -> bool:
    return bool(VERSION_CHARS_RE.match(version)) and ".." not in version and len(version) <= 128


def is_safe_arch(arch: str) -> bool:
    return bool(ARCH_RE.match(arch)) and len(arch) <= 32


def is_safe_branch(branch: str) -> bool:
    return bool(BRANCH_RE.match(branch)) and ".." not in branch and len(branch) <= 100


# A staging branch is `<origin>_staging_<name>`: a pmaports branch that tries a
# change against a configured branch and publishes under staging/<name>/<origin>.
STAGING_SEPARATOR = "_staging_"


def split_staging(branch: str) -> tuple[str, str] | None:
    """(origin, name) of a staging branch, None for any other branch."""
    origin, sep, name = branch.partition(STAGING_SEPARATOR)
    return (origin, name) if sep and origin and name else None


@dataclass(frozen=True, slots=True, order=True)
class RepoKey:
    """One published repository: a branch, a split repo ("" for the main one), an arch."""

    branch: str
    splitrepo: str
    arch: str

    def __str__(self) -> str:
        if self.splitrepo:
            return f"{self.branch}:{self.splitrepo}/{self.arch}"
        return f"{self.branch}/{self.arch}"

    @property
    def relpath(self) -> str:
        """Path below a repository root, in pmbootstrap's mirror layout."""
        prefix = f"extra-repos/{self.splitrepo}/" if self.splitrepo else ""
        staging = split_staging(self.branch)
        branch = f"staging/{staging[1]}/{staging[0]}" if staging else self.branch
        return f"{prefix}{branch}/{self.arch}"


@dataclass(frozen=True, slots=True)
class ApkInfo:
    """What an apk's .PKGINFO and file say, as needed for an APKINDEX entry.

    Optional fields are None when the line was absent, so that an index can be
    written back byte for byte (apk 2.14 writes `c:` even for an empty commit).
    """

    pkgname: str
    version: str
    arch: str
    size: int  # size of the .apk file in bytes (S:)
    installed_size: int  # .PKGINFO size (I:)
    checksum: str  # "Q1" + base64(sha1(control member)) (C:)
    description: str = ""
    url: str = ""
    license: str = ""
    origin: str | None = None
    maintainer: str | None = None
    builddate: int = 0
    commit: str | None = None
    provider_priority: int = 0
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    install_if: tuple[str, ...] = ()
    datahash: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.pkgname}-{self.version}.apk"


@dataclass(frozen=True, slots=True)
class SubpackageSpec:
    """One subpackage a build produces beside its main package."""

    name: str
    arch: str  # .PKGINFO arch: "noarch" or the repository's arch
    description: str
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PkgSpec:
    """A package that should exist at `version` in repository `repo`."""

    repo: RepoKey
    pkgname: str
    version: str  # full "pkgver-rpkgrel"
    path: str  # APKBUILD directory relative to the pmaports root, e.g. "main/foo"
    pkgarch: str  # "noarch" or repo.arch
    description: str = ""
    url: str = ""
    license: str = ""
    maintainer: str = ""
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    subpackages: tuple[SubpackageSpec, ...] = ()
    options: tuple[str, ...] = ()
    # Internal build dependencies, resolved to the origin pkgnames that must be in
    # WIP or final at their desired version before this package may start.
    build_deps: tuple[DepRef, ...] = ()
    # Foreign arches only: native packages (origins) that must be published in
    # the native final repository first (cross toolchain, crossdirect, ...).
    native_deps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class DepRef:
    """An internal dependency: a package (origin) in a given repository."""

    repo: RepoKey
    pkgname: str


@dataclass(frozen=True, slots=True)
class BrokenPackage:
    """An APKBUILD that could not be turned into a PkgSpec, with the reason."""

    path: str
    pkgname: str
    reason: str


@dataclass(frozen=True, slots=True)
class BranchDesired:
    """Everything wanted for one branch, derived from one pmaports tree state."""

    branch: str
    commit: str  # "" when the tree is a plain directory
    repos: dict[RepoKey, dict[str, PkgSpec]]
    broken: tuple[BrokenPackage, ...] = ()


class JobKind(StrEnum):
    BUILD = "build"
    SIGN = "sign"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    LOST = "lost"  # the job vanished without an exit status

    @property
    def is_live(self) -> bool:
        return self in (JobStatus.QUEUED, JobStatus.RUNNING)

    @property
    def is_failure(self) -> bool:
        return self in (JobStatus.FAILED, JobStatus.TIMEOUT, JobStatus.CANCELLED, JobStatus.LOST)


@dataclass(frozen=True, slots=True, order=True)
class JobIntent:
    """What a job is for; the same intent is tried again under a new attempt number.

    For a sign job `pkgname` is "" and `version` is the sha256 of the index it signs.
    """

    kind: JobKind
    repo: RepoKey
    pkgname: str
    version: str

    def __str__(self) -> str:
        what = self.pkgname or f"index {self.version[:12]}"
        return f"{self.kind} {self.repo} {what} {self.version if self.pkgname else ''}".strip()


@dataclass(frozen=True, slots=True, order=True)
class JobKey:
    """A job's identity: its intent plus the attempt number (1-based)."""

    intent: JobIntent
    attempt: int

    @property
    def job_id(self) -> str:
        """Deterministic, path-safe identity. No '/' (sourcehut joins tags with it)."""
        i = self.intent
        return "@".join(
            (
                str(i.kind),
                i.repo.branch,
                i.repo.splitrepo or "main",
                i.repo.arch,
                i.pkgname or "-",
                i.version,
                str(self.attempt),
            )
        )

    @staticmethod
    def from_job_id(job_id: str) -> JobKey:
        """Inverse of job_id; raises ValueError on anything malformed."""
        parts = job_id.split("@")
        if len(parts) != 7:
            raise ValueError(f"job id {job_id!r}: expected 7 '@'-separated fields")
        kind, branch, splitrepo, arch, pkgname, version, attempt = parts
        if not attempt.isdigit() or int(attempt) < 1:
            raise ValueError(f"job id {job_id!r}: attempt must be a positive integer")
        if not (is_safe_branch(branch) and is_safe_arch(arch) and is_safe_version(version)):
            raise ValueError(f"job id {job_id!r}: unsafe branch, arch or version")
        if pkgname != "-" and not is_safe_name(pkgname):
            raise ValueError(f"job id {job_id!r}: unsafe package name")
        if splitrepo != "main" and not is_safe_name(splitrepo):
            raise ValueError(f"job id {job_id!r}: unsafe split repo name")
        repo = RepoKey(branch, "" if splitrepo == "main" else splitrepo, arch)
        intent = JobIntent(JobKind(kind), repo, "" if pkgname == "-" else pkgname, version)
        return JobKey(intent, int(attempt))


@dataclass(frozen=True, slots=True)
class JobObservation:
    """What the job service says about one job."""

    key: JobKey
    status: JobStatus
    submitted_at: float
    ended_at: float | None = None
    reason: str = ""  # why it failed, when the job service knows
    log_path: str | None = None  # local file with the job's log, if any
    url: str | None = None  # page of the job on a remote service
    artifacts_dir: str | None = None


@dataclass(frozen=True, slots=True)
class IndexView:
    """What an APKINDEX.tar.gz on disk lists, and its identity."""

    files: dict[str, str]  # apk file name -> C: checksum
    sha256: str
    description: str = ""
    mtime: float = 0.0


@dataclass(frozen=True, slots=True)
class RepoObserved:
    """One repository's WIP, final and symlink directories as found on disk."""

    wip: dict[str, ApkInfo] = field(default_factory=dict)  # file name -> info
    final: dict[str, ApkInfo] = field(default_factory=dict)
    wip_index: IndexView | None = None
    final_index: IndexView | None = None
    symlink_index: IndexView | None = None
    bad_wip: dict[str, str] = field(default_factory=dict)  # file name -> why unreadable
    bad_final: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ObservedState:
    repos: dict[RepoKey, RepoObserved]
    jobs: dict[JobKey, JobObservation]
    rejected: dict[str, str]  # job id -> why its results were refused
    job_service_error: str = ""
    mirrored: dict[str, str] = field(default_factory=dict)  # repo -> sha256 of mirrored index


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
