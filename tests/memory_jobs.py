"""A job service in memory that keeps the JobService contract, on a fake clock.

Jobs are kept in a `JobTable` (the service's side: it outlives a daemon, so a
new `InMemoryJobService` over the same table is a restarted daemon re-attaching).
A job's identity is its key: submitting a key twice raises JobExistsError.
A job runs for the duration its build asks for (`duration_seconds` in
build.json, sign jobs at once) or until its timeout, in the clock's time; when
the clock has passed its end, the next look runs its program in this process,
in its own job directory: the synthetic builder (with the clock's time as build
date), the signer or the synthetic image builder, the same code a real job runs.
Its output is the job's log, its exit code decides success; results land in
`artifacts/` as on the real services. Faults for tests: the service can be
unreachable, and the answer to a submit can be lost after the job was made.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.formats.buildlog import log_excerpt
from reconciler.jobs import image_synthetic, signer, synthetic
from reconciler.jobs.service import JobExistsError, JobServiceError, JobSpec
from reconciler.model.jobs import JobKey, JobObservation, JobStatus

Program = Callable[[Path, list[str], float], int]  # (job dir, arguments, now) -> exit code


def _synthetic(job_dir: Path, args: list[str], now: float) -> int:
    if len(args) != 2:
        return synthetic.main(args)
    job = json.loads((job_dir / args[0]).read_text(encoding="utf-8"))
    return synthetic.run_build(job, job_dir / args[1], int(now))


def _signer(job_dir: Path, args: list[str], now: float) -> int:
    return signer.main(args)


def _image(job_dir: Path, args: list[str], now: float) -> int:
    return image_synthetic.main(args)


PROGRAMS: Mapping[str, Program] = {
    "reconciler.synthetic": _synthetic,
    "reconciler.signer": _signer,
    "reconciler.synthetic_image": _image,
}


@dataclass
class _Job:
    spec: JobSpec
    directory: Path
    submitted_at: float
    ends_at: float
    status: JobStatus = JobStatus.RUNNING
    ended_at: float | None = None
    reason: str = ""


@dataclass
class JobTable:
    """What the job service holds; shared by every InMemoryJobService over it."""

    root: Path
    jobs: dict[JobKey, _Job] = field(default_factory=dict)
    unreachable: str = ""  # when set: every call fails with this message
    lose_next_answer: bool = False  # the next submit makes its job, then fails
    submits: int = 0  # submit calls that made a job


class InMemoryJobService:
    def __init__(self, table: JobTable, clock: Callable[[], float]) -> None:
        self.table = table
        self._clock = clock
        table.root.mkdir(parents=True, exist_ok=True)

    # --- JobService ------------------------------------------------------------
    def list_jobs(self) -> Mapping[JobKey, JobObservation]:
        self._check_reachable()
        now = self._clock()
        for job in self.table.jobs.values():
            if job.status.is_live and now >= job.ends_at:
                self._finish(job)
        return {key: self._observe(key, job) for key, job in sorted(self.table.jobs.items())}

    def submit(self, spec: JobSpec) -> JobObservation:
        self._check_reachable()
        if spec.key in self.table.jobs:
            raise JobExistsError(f"job {spec.key.job_id} was already submitted")
        now = self._clock()
        directory = self.table.root / spec.key.job_id
        (directory / "artifacts").mkdir(parents=True)
        for name, data in spec.files.items():
            (directory / name).write_bytes(data)
        (directory / "script.sh").write_text(spec.script, encoding="utf-8")
        duration = float(json.loads(spec.files.get("build.json", b"{}")).get("duration_seconds", 0))
        job = _Job(spec, directory, now, now + min(duration, spec.timeout_seconds))
        if duration > spec.timeout_seconds:
            job.reason = "timeout"
        self.table.jobs[spec.key] = job
        self.table.submits += 1
        if self.table.lose_next_answer:
            self.table.lose_next_answer = False
            raise JobServiceError(f"submit of {spec.key.job_id}: the answer was lost")
        return self._observe(spec.key, job)

    def cancel(self, key: JobKey) -> None:
        self._check_reachable()
        job = self.table.jobs.get(key)
        if job is not None and job.status.is_live:
            self._end(job, JobStatus.CANCELLED, "cancelled", "")

    # --- inside ------------------------------------------------------------------
    def _check_reachable(self) -> None:
        if self.table.unreachable:
            raise JobServiceError(self.table.unreachable)

    def _observe(self, key: JobKey, job: _Job) -> JobObservation:
        log = job.directory / "log"
        failed = job.status.is_failure and log.exists()
        return JobObservation(
            key,
            job.status,
            job.submitted_at,
            job.ended_at,
            job.reason,
            log_path=str(log) if log.exists() else None,
            artifacts_dir=str(job.directory / "artifacts"),
            excerpt=log_excerpt(log.read_text(encoding="utf-8")) if failed else "",
        )

    def _finish(self, job: _Job) -> None:
        if job.reason == "timeout":
            reason = f"no result after {job.spec.timeout_seconds:g} s"
            self._end(job, JobStatus.TIMEOUT, reason, "")
            return
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            code = self._run(job)
        status = JobStatus.SUCCESS if code == 0 else JobStatus.FAILED
        self._end(job, status, "" if code == 0 else f"exit code {code}", output.getvalue())

    def _run(self, job: _Job) -> int:
        """The job's program, named on its script's `-m` line, run in its directory."""
        for line in job.spec.script.splitlines():
            words = shlex.split(line)
            if "-m" not in words:
                continue
            at = words.index("-m")
            program = PROGRAMS.get(words[at + 1])
            if program is None:
                print(f"the in-memory job service cannot run {words[at + 1]}")
                return 127
            with _working_directory(job.directory):
                try:
                    return program(job.directory, words[at + 2 :], job.ends_at)
                except SystemExit as exc:
                    return int(exc.code or 0)
                except Exception:  # a real job's program would die with its traceback
                    traceback.print_exc()
                    return 1
        print("the script names no program")
        return 127

    def _end(self, job: _Job, status: JobStatus, reason: str, output: str) -> None:
        job.status, job.reason, job.ended_at = status, reason, self._clock()
        started = f"job {job.spec.key.job_id} started\n"
        ended = f"\njob ended: {status} {reason}\n"
        (job.directory / "log").write_text(started + output + ended, encoding="utf-8")


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def restarted(service: InMemoryJobService, clock: Callable[[], float]) -> InMemoryJobService:
    """A new service over the same table: what a restarted daemon sees."""
    return InMemoryJobService(service.table, clock)
