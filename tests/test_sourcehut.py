"""The builds.sr.ht job service against a fake builds.sr.ht on loopback.

Every request the service sends is validated against the real schema by the fake
(the `fake` fixture fails the test on any invalid one). Retries are immediate
(tenacity's wait is zeroed); timeouts are short real timeouts.
"""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.config.settings import load_config
from reconciler.jobs.service import JobExistsError, JobServiceError
from reconciler.jobs.sourcehut.manifest import (
    build_submission,
    extract_apks,
    job_tags,
)
from reconciler.jobs.sourcehut.service import SourcehutJobService
from reconciler.model.errors import ConfigError
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobStatus
from reconciler.model.names import RepoKey

from .conftest import wait_until
from .fake_sourcehut import SOURCE, FakeSourcehut, Fault, checked_fake
from .sourcehut_helpers import (
    APKS,
    REPO,
    SECRET,
    key,
    make_service,
    manifests,
    settled,
    sourcehut_config,
    spec,
)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeSourcehut]:
    with checked_fake(tmp_path / "fake", page_size=2) as server:
        yield server


@pytest.fixture
def service(fake: FakeSourcehut, tmp_path: Path) -> SourcehutJobService:
    return make_service(fake, tmp_path)


# --- submitting and collecting ------------------------------------------------------


def test_build_job_runs_and_its_apks_come_back(
    fake: FakeSourcehut, service: SourcehutJobService
) -> None:
    k = key()
    first = service.submit(spec(k, APKS))
    assert first.status is JobStatus.QUEUED
    obs = settled(service, k)
    assert obs.status is JobStatus.SUCCESS, obs.reason
    assert obs.artifacts_dir is not None
    assert sorted(p.name for p in Path(obs.artifacts_dir).iterdir()) == [
        "hello-1.0-r0.apk",
        "hello-doc-1.0-r0.apk",
    ]
    (job,) = fake.jobs.values()
    assert obs.url == f"{fake.url}/~ops/job/{job.id}"
    assert job.tags.split("/") == list(job_tags("reconciler", k))
    assert k.job_id in (job.note or "")
    assert "secrets" not in job.manifest and not job.secrets
    with pytest.raises(JobExistsError):
        service.submit(spec(k, APKS))


def test_no_tag_contains_a_slash_even_for_odd_names() -> None:
    odd = JobKey(
        JobIntent(JobKind.BUILD, RepoKey("v25.12", "systemd", "armv7"), "gtk+2.0", "2.24.33_p1-r3"),
        12,
    )
    tags = job_tags("reconciler", odd)
    assert all("/" not in t for t in tags)
    assert len(tags) == 8


def test_only_the_sign_manifest_names_the_final_key_secret(
    fake: FakeSourcehut, tmp_path: Path
) -> None:
    settings = manifests(fake, tmp_path)
    build = build_submission(spec(key(), APKS), settings)
    sign_key = JobKey(JobIntent(JobKind.SIGN, REPO, "", "ab" * 32), 1)
    sign = build_submission(spec(sign_key, "true"), settings)
    assert SECRET not in build.manifest and not build.secrets
    assert yaml.safe_load(sign.manifest)["secrets"] == [SECRET] and sign.secrets
    assert f"{fake.url}/repo/symlink/main/x86_64/APKINDEX.tar.gz" in sign.manifest
    for sub in (build, sign):
        manifest = yaml.safe_load(sub.manifest)
        assert set(manifest) <= {
            "image",
            "packages",
            "sources",
            "environment",
            "secrets",
            "tasks",
            "artifacts",
        }
        assert len(manifest["artifacts"]) == 1


def test_a_failing_script_is_a_failed_try(
    fake: FakeSourcehut, service: SourcehutJobService
) -> None:
    k = key()
    service.submit(spec(k, "echo broken; exit 3"))
    obs = settled(service, k)
    assert obs.status is JobStatus.FAILED
    assert "failed on builds.sr.ht" in obs.reason


@pytest.mark.parametrize(
    ("decision", "reason"),
    [("no_artifacts", "succeeded without its artifacts"), ("pruned", "was pruned")],
)
def test_success_without_usable_artifacts_is_a_failed_try(
    fake: FakeSourcehut, service: SourcehutJobService, decision: str, reason: str
) -> None:
    fake.decide = lambda job: decision
    k = key()
    service.submit(spec(k, APKS))
    obs = settled(service, k)
    assert obs.status is JobStatus.FAILED
    assert reason in obs.reason


def test_a_tarball_with_a_link_is_refused(
    fake: FakeSourcehut, service: SourcehutJobService
) -> None:
    k = key()
    service.submit(spec(k, "ln -s /etc/passwd artifacts/hello-1.0-r0.apk"))
    obs = settled(service, k)
    assert obs.status is JobStatus.FAILED
    assert "not a plain .apk file" in obs.reason


@pytest.mark.parametrize("name", ["../evil.apk", "sub/evil.apk", "/abs.apk", "notes.txt"])
def test_extract_apks_takes_plain_apk_files_only(tmp_path: Path, name: str) -> None:
    tarball = tmp_path / "t.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    out = tmp_path / "out"
    out.mkdir()
    assert "not a plain .apk file" in extract_apks(tarball, out, 1000)
    assert list(out.iterdir()) == []


# --- statuses ------------------------------------------------------------------------


def test_queued_jobs_stay_queued_and_are_not_cancelled(
    fake: FakeSourcehut, service: SourcehutJobService
) -> None:
    fake.decide = lambda job: "stuck"
    k = key()
    service.submit(spec(k, APKS))
    assert service.list_jobs()[k].status is JobStatus.QUEUED
    service.cancel(k)  # sourcehut cancels only running jobs: nothing is sent
    assert "cancel" not in fake.calls
    assert service.list_jobs()[k].status is JobStatus.QUEUED


def test_a_running_job_is_cancelled(fake: FakeSourcehut, service: SourcehutJobService) -> None:
    k = key()
    service.submit(spec(k, "sleep 60"))
    wait_until(lambda: service.list_jobs()[k].status is JobStatus.RUNNING)
    service.cancel(k)
    obs = settled(service, k)
    assert obs.status is JobStatus.CANCELLED


@pytest.mark.parametrize(
    ("status", "expected"), [("TIMEOUT", JobStatus.TIMEOUT), ("CANCELLED", JobStatus.CANCELLED)]
)
def test_terminal_statuses_map(
    fake: FakeSourcehut, service: SourcehutJobService, status: str, expected: JobStatus
) -> None:
    fake.decide = lambda job: "stuck"
    k = key()
    service.submit(spec(k, APKS))
    with fake.lock:
        (job,) = fake.jobs.values()
        job.status = status
    assert settled(service, k).status is expected


def test_an_unknown_status_is_logged_and_taken_as_running(
    fake: FakeSourcehut, service: SourcehutJobService, caplog: pytest.LogCaptureFixture
) -> None:
    fake.decide = lambda job: "stuck"
    k = key()
    service.submit(spec(k, APKS))

    def rename_status(answer: dict[str, object]) -> dict[str, object]:
        text = repr(answer).replace("'QUEUED'", "'MIGRATING'")
        result: dict[str, object] = eval(text)  # the answer is plain JSON data
        return result

    fake.rewrite = rename_status
    with caplog.at_level(logging.WARNING):
        assert service.list_jobs()[k].status is JobStatus.RUNNING
    assert "unknown status 'MIGRATING'" in caplog.text


# --- transport failures ----------------------------------------------------------------


def test_transient_errors_are_retried(fake: FakeSourcehut, service: SourcehutJobService) -> None:
    fake.faults = [Fault("503"), Fault("502"), Fault("429")]
    assert service.list_jobs() == {}
    fake.faults = [Fault("timeout"), Fault("504")]
    assert service.list_jobs() == {}
    assert fake.faults == []


def test_retries_end_with_a_clear_error(fake: FakeSourcehut, service: SourcehutJobService) -> None:
    fake.faults = [Fault("503") for _ in range(4)]
    with pytest.raises(JobServiceError, match="unreachable"):
        service.list_jobs()
    assert service.list_jobs() == {}  # and it carries on once the service is back


def test_graphql_errors_and_other_4xx_are_not_retried(
    fake: FakeSourcehut, service: SourcehutJobService
) -> None:
    fake.rewrite = lambda answer: {"data": None, "errors": [{"message": "quota exceeded"}]}
    with pytest.raises(JobServiceError, match="quota exceeded"):
        service.list_jobs()
    assert fake.calls.count("jobs") == 1
    fake.rewrite = None
    fake.faults = [Fault("500")]
    with pytest.raises(JobServiceError, match="HTTP 500"):
        service.list_jobs()
    assert fake.calls.count("jobs") == 2


def test_a_bad_token_is_reported(fake: FakeSourcehut, tmp_path: Path) -> None:
    service = make_service(fake, tmp_path, token="wrong")
    with pytest.raises(JobServiceError, match="refused the token"):
        service.list_jobs()


def test_a_lost_submit_is_found_by_paging_not_resubmitted(
    fake: FakeSourcehut, service: SourcehutJobService
) -> None:
    fake.decide = lambda job: "stuck"
    for name in ("a", "b", "c"):
        service.submit(spec(key(name), APKS))
    k = key()
    fake.faults = [Fault("lost", op="submit")]
    service.submit(spec(k, APKS))  # the job was created, its answer was lost
    for name in ("d", "e", "f"):  # newer jobs: the lost one is found by paging back
        service.submit(spec(key(name), APKS))
    assert sum(1 for j in fake.jobs.values() if k.job_id.replace("@", "/") in j.tags) == 1
    assert service.list_jobs()[k].status is JobStatus.QUEUED
    with pytest.raises(JobExistsError):
        service.submit(spec(k, APKS))


def test_a_submit_that_never_arrived_raises_and_is_not_repeated(
    fake: FakeSourcehut, service: SourcehutJobService
) -> None:
    fake.faults = [Fault("503", op="submit")]
    with pytest.raises(JobServiceError, match="no answer"):
        service.submit(spec(key(), APKS))
    assert fake.jobs == {}
    assert fake.calls.count("submit") == 1


def test_a_lost_submit_missed_by_paging_is_found_by_the_next_listing(
    fake: FakeSourcehut, service: SourcehutJobService
) -> None:
    fake.decide = lambda job: "stuck"
    k = key()
    fake.faults = [Fault("lost", op="submit")] + [Fault("503", op="jobs") for _ in range(4)]
    with pytest.raises(JobServiceError):
        service.submit(spec(k, APKS))
    assert service.list_jobs()[k].status is JobStatus.QUEUED
    assert len(fake.jobs) == 1


def test_transient_artifact_download_failures_are_retried_next_pass(
    fake: FakeSourcehut, service: SourcehutJobService
) -> None:
    k = key()
    service.submit(spec(k, APKS))
    wait_until(lambda: next(iter(fake.jobs.values())).status == "SUCCESS")
    fake.faults = [Fault("503", op="artifact") for _ in range(4)]
    assert service.list_jobs()[k].status is JobStatus.RUNNING  # not settled yet
    assert settled(service, k).status is JobStatus.SUCCESS


# --- restarts ------------------------------------------------------------------------------


def test_a_restarted_daemon_reattaches_with_or_without_its_cache(
    fake: FakeSourcehut, service: SourcehutJobService, tmp_path: Path
) -> None:
    done, waiting = key("done"), key("waiting")
    service.submit(spec(done, APKS))
    settled(service, done)
    fake.decide = lambda job: "stuck"
    service.submit(spec(waiting, APKS))
    for cache in ("cache", "fresh-cache"):
        again = make_service(fake, tmp_path, cache=cache)
        jobs = again.list_jobs()
        assert jobs[done].status is JobStatus.SUCCESS
        assert jobs[waiting].status is JobStatus.QUEUED
        with pytest.raises(JobExistsError):
            again.submit(spec(waiting, APKS))


# --- configuration ---------------------------------------------------------------------


def test_the_sourcehut_section_is_read_and_checked(tmp_path: Path) -> None:
    good = (
        f"user: '~ops'\ntoken_file: token\nfinal_key_secret: {SECRET}\n"
        f"reconciler_source: {SOURCE}\nwip_url: https://x/repo/wip/\n"
        "final_url: https://x/repo/final\nsymlink_url: https://x/repo/symlink\n"
        "poll_interval_seconds: 3\n"
    )
    config = load_config(sourcehut_config(tmp_path, good))
    sh = config.jobs.sourcehut
    assert sh is not None and config.jobs.service == "sourcehut"
    assert (sh.user, sh.wip_url, sh.poll_interval_seconds) == ("ops", "https://x/repo/wip", 3.0)
    assert sh.token_file == tmp_path / "token"
    bad = "user: ops\nfinal_key_secret: not-a-uuid\nwip_url: ftp://x\nbogus: 1\n"
    with pytest.raises(ConfigError) as caught:
        load_config(sourcehut_config(tmp_path, bad))
    text = str(caught.value)
    for problem in (
        "final_key_secret: expected a secret's UUID",
        "wip_url: expected an http:// or https:// URL",
        "unknown key 'bogus'",
        "token_file: missing",
        "symlink_url: missing",
    ):
        assert problem in text
