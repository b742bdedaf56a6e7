"""Jobs as values: what a job is for (`JobIntent`), its identity (`JobKey`, the
intent plus the attempt) and what the job service says about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reconciler.model.names import (
    RepoKey,
    is_safe_arch,
    is_safe_branch,
    is_safe_name,
    is_safe_version,
)


class JobKind(StrEnum):
    BUILD = "build"
    SIGN = "sign"
    IMAGE = "image"  # a device image: see model.images.ImageTarget for its fields


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
    For an image job `pkgname` is the device's codename and `version` encodes the
    slot, UI and kernel (`model.images.ImageTarget.intent`).
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
        if not (attempt.isascii() and attempt.isdigit()) or len(attempt) > 9 or int(attempt) < 1:
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
    excerpt: str = ""  # a failed job's last error lines, from its log
