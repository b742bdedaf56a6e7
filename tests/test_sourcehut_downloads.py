"""Downloads of the sourcehut job service are pruned: superseded ones after each collect,
expired ones and orphans at start. Against the fake builds.sr.ht on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tenacity import wait_none

from reconciler.jobs.sourcehut.client import GraphQLClient
from reconciler.jobs.sourcehut.service import SourcehutJobService, SourcehutSettings
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.names import RepoKey

from .fake_sourcehut import TOKEN, FakeSourcehut, checked_fake
from .sourcehut_helpers import APKS, manifests, settled, spec

REPO = RepoKey("main", "", "x86_64")
DAY = 86400.0


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeSourcehut]:
    with checked_fake(tmp_path / "fake", page_size=2) as server:
        yield server


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def service(fake: FakeSourcehut, tmp_path: Path, clock: Clock) -> SourcehutJobService:
    client = GraphQLClient(f"{fake.url}/query", TOKEN, timeout=(2.0, 0.5), wait=wait_none())
    settings = SourcehutSettings(user="ops", poll_interval_seconds=0, keep_downloads_seconds=DAY)
    return SourcehutJobService(
        client, manifests(fake, tmp_path), settings, tmp_path / "cache", clock=clock
    )


def build(pkgname: str, attempt: int = 1, version: str = "1.0-r0") -> JobKey:
    return JobKey(JobIntent(JobKind.BUILD, REPO, pkgname, version), attempt)


def downloads(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "cache").iterdir() if p.is_dir())


def collected(svc: SourcehutJobService, key: JobKey) -> JobObservation:
    obs = settled(svc, key)
    assert obs.status is JobStatus.SUCCESS, obs.reason
    return obs


def test_a_superseded_download_is_removed_when_the_next_one_is_collected(
    fake: FakeSourcehut, tmp_path: Path
) -> None:
    svc = service(fake, tmp_path, Clock())
    first, second = build("hello", 1), build("hello", 1, version="1.1-r0")
    old = collected(svc, _submitted(svc, first))
    assert old.artifacts_dir and Path(old.artifacts_dir).is_dir()
    new = collected(svc, _submitted(svc, second))
    assert new.artifacts_dir and Path(new.artifacts_dir).is_dir()
    assert not Path(old.artifacts_dir).exists()
    assert svc.list_jobs()[first].artifacts_dir is None
    assert svc.list_jobs()[first].status is JobStatus.SUCCESS
    assert downloads(tmp_path) == [second.job_id]


def test_expired_downloads_and_orphans_go_at_start(fake: FakeSourcehut, tmp_path: Path) -> None:
    clock = Clock()
    svc = service(fake, tmp_path, clock)
    hello, other = build("hello"), build("other")
    collected(svc, _submitted(svc, hello))
    (tmp_path / "cache" / "stray-orphan" / "artifacts").mkdir(parents=True)
    (tmp_path / "cache" / f".new-{other.job_id}").mkdir()  # a download cut short
    assert len(downloads(tmp_path)) == 3
    again = service(fake, tmp_path, clock)  # a restart within the day keeps the current one
    assert downloads(tmp_path) == [hello.job_id]
    assert again.list_jobs()[hello].artifacts_dir is not None
    clock.offset = DAY + 60
    later = service(fake, tmp_path, clock)  # a restart after a day drops it too
    assert downloads(tmp_path) == []
    obs = later.list_jobs()[hello]
    assert (obs.status, obs.artifacts_dir) == (JobStatus.SUCCESS, None)


def test_an_expired_download_goes_when_another_job_is_collected(
    fake: FakeSourcehut, tmp_path: Path
) -> None:
    clock = Clock()
    svc = service(fake, tmp_path, clock)
    hello, other = build("hello"), build("other")
    collected(svc, _submitted(svc, hello))
    clock.offset = DAY + 60
    collected(svc, _submitted(svc, other))
    assert downloads(tmp_path) == [other.job_id]


def _submitted(svc: SourcehutJobService, key: JobKey) -> JobKey:
    svc.submit(spec(key, APKS.replace("hello", key.intent.pkgname)))
    return key
