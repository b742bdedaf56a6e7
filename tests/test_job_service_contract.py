"""The JobService contract, run against all three services: the in-memory one the
scenarios use, the real local one (a process per job) and the builds.sr.ht client
against the fake builds.sr.ht (real HTTP, real bash per task).

Every service gets the same jobs: the synthetic builder's real script and
inputs, made by `jobs.scripts` as execute makes them. The contract: a finished
build is listed with its apks; a failed one is a failure with a reason; a key
is submitted once, ever, also across a restart (a new instance over what the
service holds re-attaches); a running job can be cancelled; a job past its time
ends as a failure; a submit whose answer was lost is found again, never made twice.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.config.builder import BuilderConfig
from reconciler.jobs.local import LocalJobService
from reconciler.jobs.scripts import build_script
from reconciler.jobs.service import JobExistsError, JobService, JobServiceError, JobSpec
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.names import RepoKey
from reconciler.model.packages import PkgSpec

from .conftest import wait_until
from .fake_clock import FakeClock
from .fake_sourcehut import FakeSourcehut, Fault, checked_fake
from .memory_jobs import InMemoryJobService, JobTable
from .sourcehut_helpers import make_service

REPO = RepoKey("main", "", "x86_64")
NUMBERS = itertools.count(1)


def build_spec(tmp_path: Path, *, fail: bool = False, seconds: float = 0.0) -> JobSpec:
    """A synthetic build of a fresh package (a new key each time), as execute makes it."""
    name = f"pkg{next(NUMBERS)}"
    key = JobKey(JobIntent(JobKind.BUILD, REPO, name, "1.0-r0"), 1)
    spec = PkgSpec(REPO, name, "1.0-r0", f"main/{name}", "x86_64")
    builder = BuilderConfig(duration_seconds=seconds, fail=(name,) if fail else ())
    script, files = build_script(key, spec, builder, [], (), "c0ffee")
    return JobSpec(key, script, f"build {name}", 60.0, files)


@dataclass
class Harness:
    """One service under the contract and what only the test needs of it."""

    name: str
    service: JobService
    restart: Callable[[], JobService]  # a new instance over what the service holds
    run_for: Callable[[float], None]  # let (fake or real) time pass
    running: Callable[[JobKey], bool]  # the job has started (cancel applies to it)
    lose_next_answer: Callable[[], None] | None = None  # None: the service cannot
    expire: Callable[[JobSpec], JobSpec] | None = None  # a spec that outlives its time
    expired: Callable[[JobKey], None] = lambda key: None  # after its submit

    def settled(self, key: JobKey) -> JobObservation:
        found: list[JobObservation] = []

        def done() -> bool:
            self.run_for(0.5)
            obs = self.service.list_jobs().get(key)
            found[:] = [obs] if obs is not None and not obs.status.is_live else []
            return bool(found)

        wait_until(done, timeout=60)
        return found[0]


def memory_harness(tmp_path: Path) -> Harness:
    clock = FakeClock()
    table = JobTable(tmp_path / "memory")

    def lose() -> None:
        table.lose_next_answer = True

    def expire(spec: JobSpec) -> JobSpec:
        return JobSpec(spec.key, spec.script, spec.note, 1.0, spec.files)

    return Harness(
        "memory",
        InMemoryJobService(table, clock),
        lambda: InMemoryJobService(table, clock),
        clock.advance,
        lambda key: True,
        lose,
        expire,
    )


def local_harness(tmp_path: Path) -> Harness:
    root = tmp_path / "local"

    def running(key: JobKey) -> bool:
        return (root / "live" / key.job_id / "pid").is_file()

    def expire(spec: JobSpec) -> JobSpec:
        return JobSpec(spec.key, spec.script, spec.note, 0.3, spec.files)

    return Harness(
        "local",
        LocalJobService(root, None),
        lambda: LocalJobService(root, None),
        lambda seconds: None,
        running,
        None,  # a local submit is a rename in this process: there is no answer to lose
        expire,
    )


def sourcehut_harness(tmp_path: Path, fake: FakeSourcehut) -> Harness:
    service = make_service(fake, tmp_path)

    def running(key: JobKey) -> bool:
        with fake.lock:
            return any(
                job.status == "RUNNING" and key.job_id.replace("@", "/") in job.tags
                for job in fake.jobs.values()
            )

    def lose() -> None:
        fake.faults.append(Fault("lost", "submit"))

    def expire(spec: JobSpec) -> JobSpec:
        fake.decide = lambda job: "stuck"
        return spec

    def expired(key: JobKey) -> None:
        # builds.sr.ht enforces its own time limit; the fake ends the job as it would.
        with fake.lock:
            for job in fake.jobs.values():
                if key.job_id.replace("@", "/") in job.tags:
                    job.status = "TIMEOUT"

    return Harness(
        "sourcehut",
        service,
        lambda: make_service(fake, tmp_path),
        lambda seconds: None,
        running,
        lose,
        expire,
        expired,
    )


@pytest.fixture(params=["memory", "local", "sourcehut"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "memory":
        yield memory_harness(tmp_path)
    elif request.param == "local":
        yield local_harness(tmp_path)
    else:
        with checked_fake(tmp_path / "fake") as fake:
            yield sourcehut_harness(tmp_path, fake)


def test_a_finished_build_is_listed_with_its_apks(harness: Harness, tmp_path: Path) -> None:
    spec = build_spec(tmp_path)
    submitted = harness.service.submit(spec)
    assert submitted.key == spec.key and submitted.status.is_live
    done = harness.settled(spec.key)
    assert done.status is JobStatus.SUCCESS, done.reason
    assert done.submitted_at > 0 and done.artifacts_dir is not None
    apks = sorted(p.name for p in Path(done.artifacts_dir).glob("*.apk"))
    assert apks == [f"{spec.key.intent.pkgname}-1.0-r0.apk"]


def test_a_failed_build_is_a_failure_with_a_reason(harness: Harness, tmp_path: Path) -> None:
    spec = build_spec(tmp_path, fail=True)
    harness.service.submit(spec)
    done = harness.settled(spec.key)
    assert done.status.is_failure and done.reason


def test_a_key_is_submitted_once_also_across_a_restart(harness: Harness, tmp_path: Path) -> None:
    first, second = build_spec(tmp_path), build_spec(tmp_path, fail=True)
    harness.service.submit(first)
    harness.service.submit(second)
    with pytest.raises(JobExistsError):
        harness.service.submit(first)
    settled = {s.key: harness.settled(s.key).status for s in (first, second)}
    restarted = harness.restart()
    listed = restarted.list_jobs()
    assert {k: listed[k].status for k in settled} == settled
    for spec in (first, second):
        with pytest.raises(JobExistsError):
            restarted.submit(spec)


def test_a_running_job_can_be_cancelled(harness: Harness, tmp_path: Path) -> None:
    spec = build_spec(tmp_path, seconds=30)
    harness.service.submit(spec)
    wait_until(lambda: harness.running(spec.key) and bool(harness.service.list_jobs()), 30)
    harness.service.cancel(spec.key)
    done = harness.settled(spec.key)
    assert done.status is JobStatus.CANCELLED


def test_a_job_past_its_time_ends_as_a_timeout(harness: Harness, tmp_path: Path) -> None:
    assert harness.expire is not None
    spec = harness.expire(build_spec(tmp_path, seconds=5))
    harness.service.submit(spec)
    harness.expired(spec.key)
    done = harness.settled(spec.key)
    assert done.status is JobStatus.TIMEOUT and done.reason


def test_a_lost_submit_answer_is_found_again_never_made_twice(
    harness: Harness, tmp_path: Path
) -> None:
    if harness.lose_next_answer is None:
        # The local service answers from this process: no answer can be lost. What
        # comes closest, a daemon killed between preparing and starting a job, is
        # test_local_jobs.test_submitted_but_never_started_job_is_started.
        assert harness.name == "local"
        return
    spec = build_spec(tmp_path)
    harness.lose_next_answer()
    # The sourcehut client pages back and finds it; the in-memory one says the
    # answer was lost, and the next listing shows the job.
    with contextlib.suppress(JobServiceError):
        harness.service.submit(spec)
    assert spec.key in harness.service.list_jobs()
    with pytest.raises(JobExistsError):
        harness.service.submit(spec)
    assert harness.settled(spec.key).status is JobStatus.SUCCESS
