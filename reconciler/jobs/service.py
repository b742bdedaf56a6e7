"""The job-service interface: submit a script as a job, list jobs, cancel one.

A job's identity is its JobKey (intent plus attempt). Every backend must make
submitting the same key twice impossible and must answer `list_jobs` from what
the service itself holds, so a restarted daemon (or one whose state was deleted)
re-attaches to running and finished jobs instead of submitting them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.model.errors import UnavailableError
from reconciler.model.jobs import JobKey, JobObservation


class JobServiceError(UnavailableError):
    """The job service could not be asked (unreachable, refused)."""


class JobExistsError(JobServiceError):
    """A job with this key was already submitted."""


@dataclass(frozen=True, slots=True)
class JobSpec:
    key: JobKey
    script: str  # bash script run in the job's directory
    note: str
    timeout_seconds: float
    files: Mapping[str, bytes] = field(default_factory=dict)  # inputs placed beside the script


class JobService(Protocol):
    def list_jobs(self) -> Mapping[JobKey, JobObservation]:
        """Every job the service holds: live ones polled now, finished ones remembered."""
        ...

    def submit(self, spec: JobSpec) -> JobObservation: ...

    def cancel(self, key: JobKey) -> None: ...
