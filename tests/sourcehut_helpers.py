"""Helpers for the builds.sr.ht tests: job keys and specs, manifest settings for the
fake, a service against it, and waiting for a job to settle."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tenacity import wait_none

from reconciler.jobs.service import JobSpec
from reconciler.jobs.sourcehut.client import GraphQLClient
from reconciler.jobs.sourcehut.manifest import ManifestSettings
from reconciler.jobs.sourcehut.service import SourcehutJobService, SourcehutSettings
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation
from reconciler.model.names import RepoKey

from .conftest import wait_until
from .fake_sourcehut import SOURCE, TOKEN, FakeSourcehut

SECRET = "0a1b2c3d-0000-1111-2222-333344445555"


REPO = RepoKey("main", "", "x86_64")


def key(pkgname: str = "hello", attempt: int = 1, version: str = "1.0-r0") -> JobKey:
    return JobKey(JobIntent(JobKind.BUILD, REPO, pkgname, version), attempt)


def spec(job_key: JobKey, script: str) -> JobSpec:
    return JobSpec(job_key, f"#!/bin/bash\nset -eu\n{script}\n", "test job", 60.0)


APKS = "echo a > artifacts/hello-1.0-r0.apk\necho b > artifacts/hello-doc-1.0-r0.apk"


def manifests(fake: FakeSourcehut, tmp_path: Path) -> ManifestSettings:
    return ManifestSettings(
        image="alpine/edge",
        packages=("python3", "py3-cryptography"),
        reconciler_source=SOURCE,
        final_key_secret=SECRET,
        final_key_path="~/.final.rsa",
        final_key_name="test.rsa.pub",
        url_roots=(
            (tmp_path / "wip", f"{fake.url}/repo/wip"),
            (tmp_path / "final", f"{fake.url}/repo/final"),
        ),
        symlink_url=f"{fake.url}/repo/symlink",
    )


def make_service(
    fake: FakeSourcehut,
    tmp_path: Path,
    token: str = TOKEN,
    cache: str = "cache",
    *,
    uploads: Path | None = None,
    images: Path | None = None,
) -> SourcehutJobService:
    """A service against the fake; `uploads` and `images` for image jobs."""
    client = GraphQLClient(f"{fake.url}/query", token, timeout=(2.0, 0.5), wait=wait_none())
    settings = SourcehutSettings(user="ops", poll_interval_seconds=0)
    return SourcehutJobService(
        client,
        manifests(fake, tmp_path),
        settings,
        tmp_path / cache,
        uploads=uploads,
        images=images,
    )


def settled(service: SourcehutJobService, job_key: JobKey) -> JobObservation:
    found: list[JobObservation] = []

    def done() -> bool:
        obs = service.list_jobs().get(job_key)
        found[:] = [obs] if obs is not None and not obs.status.is_live else []
        return bool(found)

    wait_until(done, timeout=30)
    return found[0]


def sourcehut_config(tmp_path: Path, section: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "branches:\n  - {name: main, pmaports: /tmp, arches: [x86_64]}\n"
        "jobs:\n  service: sourcehut\n  sourcehut:\n" + textwrap.indent(section, "    ")
    )
    return path
