"""A failing package: retried with backoff, shown with its log, blocking only its repo.

On the fake clock with the in-memory job service: the backoffs are minutes long,
as in production, and cost no time.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from reconciler.jobs.service import JobService
from reconciler.model.progress import PkgState, RepoPhase

from .apkcheck import read_index
from .conftest import ConfigFactory, DaemonFactory, set_field

RETRIES = "max_tries: 3, backoff_seconds: 60, backoff_max_seconds: 3600"


def job_times(jobs: JobService, pkgname: str, version: str) -> list[tuple[int, float, float]]:
    """(attempt, submitted_at, ended_at) of every job for pkgname, as the service says."""
    return sorted(
        (key.attempt, obs.submitted_at, obs.ended_at or 0.0)
        for key, obs in jobs.list_jobs().items()
        if (key.intent.pkgname, key.intent.version) == (pkgname, version)
    )


def test_failure_blocks_only_its_repository(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config(retries=RETRIES)
    assert fake_daemon(config).converge(max_seconds=120).all_published

    set_field(pmaports / "main/hello-x86/APKBUILD", "pkgrel", "1")
    set_field(pmaports / "device/main/linux-demo/APKBUILD", "pkgrel", "2")
    failing = make_config(
        builder='duration_seconds: 30, fail: ["main/x86_64/hello-x86"]',
        retries=RETRIES,
    )
    daemon = fake_daemon(failing)
    result = daemon.converge(max_seconds=3 * 3600)

    states = {(str(p.repo), p.pkgname): p for p in result.plan.packages}
    hello = states[("main/x86_64", "hello-x86")]
    assert hello.state is PkgState.FAILED
    assert hello.reason.endswith("(try 3 of 3)")
    phases = {str(r.repo): r for r in result.plan.repos}
    assert phases["main/x86_64"].phase is RepoPhase.BLOCKED
    assert "hello-x86" in phases["main/x86_64"].reason
    # armv7 published the new linux-demo although a native package is failing.
    assert phases["main/armv7"].phase is RepoPhase.PUBLISHED
    armv7 = read_index(config.paths.final_repo / "main/armv7/APKINDEX.tar.gz")
    assert {"linux-demo-6.12.8-r2"} <= {f"{e['P']}-{e['V']}" for e in armv7.entries}
    # x86_64 final still holds the old hello-x86: nothing was half published.
    x86 = read_index(config.paths.final_repo / "main/x86_64/APKINDEX.tar.gz")
    assert "hello-x86-1.0.0-r0" in {f"{e['P']}-{e['V']}" for e in x86.entries}

    # Three tries of 30 s each, each after its backoff (60 s, then 120 s) had passed.
    tries = job_times(daemon.jobs, "hello-x86", "1.0.0-r1")
    assert [attempt for attempt, _, _ in tries] == [1, 2, 3]
    assert all(ended - submitted >= 30 for _, submitted, ended in tries)
    for (_, _, ended), (attempt, submitted, _) in itertools.pairwise(tries):
        assert submitted - ended >= 60 * 2 ** (attempt - 2)

    # The page names the failure and links its log, which the site serves.
    page = (config.paths.html_out / "index.html").read_text()
    assert hello.job_id is not None
    assert f'href="logs/{hello.job_id}.log"' in page
    log = (config.paths.html_out / "logs" / f"{hello.job_id}.log").read_text()
    assert "failing on purpose" in log
