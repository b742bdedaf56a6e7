"""Signing gone wrong, the whole loop on the fake clock with the in-memory job
service: a sign job that fails is tried again after its backoff, then the
repository is blocked with the reason; a signature that does not verify with the
final public key is refused, nothing is published, and the site says why."""

from __future__ import annotations

from pathlib import Path

from reconciler.formats.keys import generate_private_key
from reconciler.fs.keyfiles import write_private_key
from reconciler.model.progress import RepoPhase

from .conftest import ConfigFactory, DaemonFactory

X86_ONLY = "branches:\n  - {{name: main, pmaports: {tree}, arches: [x86_64]}}\n"
RETRIES = "max_tries: 3, backoff_seconds: 60, backoff_max_seconds: 600"


def sign_attempts(jobs: object) -> list[tuple[int, float, float]]:
    listed = jobs.list_jobs()  # type: ignore[attr-defined]
    return sorted(
        (k.attempt, o.submitted_at, o.ended_at or 0.0)
        for k, o in listed.items()
        if k.job_id.startswith("sign@main@main@x86_64@")
    )


def test_a_failing_sign_job_is_retried_then_blocks_its_repository_with_the_reason(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config(
        branches=X86_ONLY.format(tree=pmaports),
        retries=RETRIES,
        extra="keys: {generate_missing: false}\n",  # as in production: never made here
    )
    config.keys.final_private.unlink()  # the sign job's key is missing
    daemon = fake_daemon(config)
    result = daemon.converge(max_seconds=3600)
    repos = {str(r.repo): r for r in result.plan.repos}
    x86 = repos["main/x86_64"]
    assert x86.phase is RepoPhase.BLOCKED
    assert x86.reason == "the sign job failed: exit code 1 (try 3 of 3)"
    attempts = sign_attempts(daemon.jobs)
    assert [a for a, _, _ in attempts] == [1, 2, 3]
    # Each try after its backoff: 60 s, then 120 s.
    assert attempts[1][1] - attempts[0][2] >= 60 and attempts[2][1] - attempts[1][2] >= 120
    assert not (config.paths.final_repo / "main/x86_64/APKINDEX.tar.gz").exists()
    page = (config.paths.html_out / "index.html").read_text()
    assert "the sign job failed: exit code 1 (try 3 of 3)" in page


def test_a_signature_that_does_not_verify_is_refused_and_nothing_is_published(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config(branches=X86_ONLY.format(tree=pmaports), retries=RETRIES)
    write_private_key(config.keys.final_private, generate_private_key(2048))  # not final's
    daemon = fake_daemon(config)
    result = daemon.converge(max_seconds=3600)
    x86 = {str(r.repo): r for r in result.plan.repos}["main/x86_64"]
    assert x86.phase is RepoPhase.BLOCKED
    assert x86.reason.startswith("the sign job failed: signed index refused:")
    assert x86.reason.endswith("(try 3 of 3)")
    assert [a for a, _, _ in sign_attempts(daemon.jobs)] == [1, 2, 3]
    final = config.paths.final_repo / "main/x86_64"
    assert not (final / "APKINDEX.tar.gz").exists(), "nothing is published"
    assert not final.exists() or not list(final.glob("*.apk"))
    refused = {j: r for j, r in daemon.memory.rejected.items() if j.startswith("sign@main@main@")}
    assert len(refused) == 3
    assert all(r.startswith("signed index refused:") for r in refused.values())
    page = (config.paths.html_out / "index.html").read_text()
    assert "signed index refused" in page
