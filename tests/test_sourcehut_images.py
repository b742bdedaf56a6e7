"""Image jobs on builds.sr.ht, end to end: the fake builds.sr.ht runs the manifest's
tasks for real (the synthetic image job against the final repository the fake
daemon published, then the uploader), the real receiver (waitress on loopback)
takes the uploads, the service collects the job with its task logs, and the
daemon's `ImageStore` publishes the uploaded files only when they match the
checksum block in that log.

Every request to the fake is validated against the real builds.sr.ht schema
(`checked_fake`). Chunks are a few hundred bytes, so the small synthetic image
travels in several.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from reconciler.config.builder import BuilderConfig
from reconciler.config.settings import Config, load_config
from reconciler.config.sourcehut import UPLOAD_FILES_DIR, upload_files_dir
from reconciler.desired.images import desired_images
from reconciler.desired.reader import DesiredReader
from reconciler.execute.images import ImageStore
from reconciler.execute.repos import RefusedError
from reconciler.formats.imagelog import parse_sha256_lines
from reconciler.hooks.tokens import TokenStore
from reconciler.hooks.upload import UploadSettings
from reconciler.hooks.webhook import WebhookSettings
from reconciler.jobs import pmbootstrap_image
from reconciler.jobs.images import JOB_FILE, ImageJob, image_job, image_note, image_script_for
from reconciler.jobs.service import JobServiceError, JobSpec
from reconciler.jobs.sourcehut import uploader
from reconciler.jobs.sourcehut.cache import TrackedJob, prune_uploads
from reconciler.jobs.sourcehut.manifest import UPLOADER_FILE, ManifestSettings, build_submission
from reconciler.jobs.sourcehut.service import SourcehutJobService
from reconciler.model.images import DesiredImage, ImageTarget
from reconciler.model.jobs import JobKey, JobObservation, JobStatus

from .conftest import SAMPLE_TREE
from .fake_clock import FakeClock
from .fake_daemon import converged_fake
from .fake_sourcehut import FakeSourcehut, checked_fake
from .receiver_helpers import Meddler, serving
from .sourcehut_helpers import SECRET, make_service, manifests, settled
from .test_entry_points import EARLIER, MODULE

CALLBACK_SECRET = "99999999-8888-7777-6666-555544443333"
TOKEN_PATH = "~/.reconciler-callback-token"
CHUNK = 256
DATE = "20270101-0000"
SLOT = "20261231-0000"


# --- the published sample tree (module-wide) -----------------------------------------------


@dataclass(frozen=True)
class Published:
    root: Path
    config: Config
    image: DesiredImage

    @property
    def final(self) -> Path:
        return self.config.paths.final_repo


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, key_files: Path) -> Published:
    """The sample tree converged by the fake daemon, with the demo-phone image."""
    root = tmp_path_factory.mktemp("published")
    shutil.copytree(SAMPLE_TREE, root / "pmaports")
    shutil.copytree(key_files, root / "data" / "keys")
    (root / "config.yaml").write_text(
        textwrap.dedent(
            f"""\
            paths: {{data: {root}/data, html_out: {root}/html}}
            builder: {{duration_seconds: 0}}
            retries: {{max_tries: 1, backoff_seconds: 0.05, backoff_max_seconds: 0.2}}
            branches:
              - {{name: main, pmaports: {root}/pmaports, arches: [aarch64]}}
            images:
              devices:
                - {{codename: demo-phone, uis: [demo]}}
            """
        ),
        encoding="utf-8",
    )
    config = load_config(root / "config.yaml")
    converged_fake(config, root, FakeClock())
    trees = {b.name: DesiredReader(config.splitrepos).read_branch(b) for b in config.branches}
    (image,), problems = desired_images(config.images, trees, time.time())
    assert problems == ()
    return Published(root, config, image)


def image_spec(published: Published, builder: BuilderConfig | None = None) -> JobSpec:
    """The job the daemon's executor submits for the image (see execute.executor)."""
    keys = published.config.keys
    index = published.final / "main" / published.image.arch / "APKINDEX.tar.gz"
    job = image_job(
        published.image, 1, DATE, str(index), key_name=keys.final_name, password="147147"
    )
    script, files = image_script_for(
        builder or BuilderConfig(), job, keys.final_public.read_bytes()
    )
    return JobSpec(job.key, script, image_note(job), 600.0, files)


# --- a receiver and a service for each test ----------------------------------------------------


@dataclass
class Setup:
    fake: FakeSourcehut
    service: SourcehutJobService
    uploads: Path
    images: Path
    token: str


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeSourcehut]:
    with checked_fake(tmp_path / "fake", page_size=2) as server:
        yield server


def receiver_settings(tmp_path: Path, **caps: int) -> tuple[WebhookSettings, str]:
    store = TokenStore(tmp_path / "state" / "tokens.json")
    store.create("push-hook")
    token = store.create("job-callback")
    limits = {"max_file_bytes": 2**20, "max_job_bytes": 2**21, "max_total_bytes": 2**22}
    uploads = UploadSettings(tmp_path / "uploads", **(limits | caps), max_chunk_bytes=CHUNK)
    return WebhookSettings(store.path, tmp_path / "triggers", ("main",), uploads=uploads), token


@contextmanager
def running(
    fake: FakeSourcehut,
    tmp_path: Path,
    published: Published | None = None,
    meddler: Meddler | None = None,
    secret_token: str | None = None,
    **caps: int,
) -> Iterator[Setup]:
    """The receiver (behind `meddler`) and a service whose image jobs upload to it;
    the job gets the job-callback token (or `secret_token`) as its secret file."""
    settings, token = receiver_settings(tmp_path, **caps)
    assert settings.uploads is not None
    images = tmp_path / "images"
    with serving(settings, wrap=meddler) as port:
        service = make_service(fake, tmp_path, uploads=settings.uploads.root, images=images)
        final = published.final if published else tmp_path / "final"
        service.manifests = replace(
            service.manifests,
            url_roots=((final, f"{fake.url}/repo/final"),),
            callback_url=f"http://127.0.0.1:{port}/api/job-callback",
            callback_secret=CALLBACK_SECRET,
            upload_url=f"http://127.0.0.1:{port}/api/job-upload",
            upload_chunk_bytes=CHUNK,
            upload_retry_seconds=0.01,
        )
        fake.static["repo/final"] = final
        secret = (secret_token or token).encode()
        fake.secret_files[CALLBACK_SECRET] = (TOKEN_PATH, secret)
        yield Setup(fake, service, settings.uploads.root, images, token)


def script_spec(key: JobKey, script: str) -> JobSpec:
    """An image job that runs `script` as it is (no image.json: nothing to rewrite)."""
    return JobSpec(key, f"#!/bin/bash\nset -eu\n{script}\n", "test image", 60.0)


KEY = JobKey(ImageTarget("main", "demo-phone", "demo", "", SLOT).intent("aarch64"), 1)
TWO_FILES = (
    "head -c 3000 /dev/zero | tr '\\0' a > artifacts/one.img.xz\n"
    "head -c 700 /dev/zero | tr '\\0' b > artifacts/two.txt"
)


def uploaded(uploads: Path) -> list[str]:
    """Every file below the uploads directory but the receiver's lock."""
    if not uploads.exists():
        return []
    return sorted(
        str(p.relative_to(uploads)) for p in uploads.rglob("*") if p.is_file() and p.name != ".lock"
    )


# --- the manifests ------------------------------------------------------------------------


def shipped_files(manifest: dict[str, object]) -> dict[str, bytes]:
    """The files the setup task writes (base64 here-documents), by name."""
    setup = manifest["tasks"][0]["setup"]  # type: ignore[index]
    found = re.findall(r"base64 -d > (\S+) <<'RECONCILER_EOF'\n(.*?)RECONCILER_EOF", setup, re.S)
    return {name.strip("'"): base64.b64decode(text) for name, text in found}


def image_settings(fake: FakeSourcehut, tmp_path: Path, published: Published) -> ManifestSettings:
    return replace(
        manifests(fake, tmp_path),
        url_roots=((published.final, "https://build.example.org/repo/final"),),
        callback_url="https://build.example.org/api/job-callback",
        callback_secret=CALLBACK_SECRET,
        look_now_url="https://build.example.org/api/look-now",
        upload_url="https://build.example.org/api/job-upload",
    )


def test_an_image_manifest_uploads_its_files_and_names_no_token(
    fake: FakeSourcehut, tmp_path: Path, published: Published
) -> None:
    spec = image_spec(published)
    sub = build_submission(spec, image_settings(fake, tmp_path, published))
    manifest = yaml.safe_load(sub.manifest)
    assert [next(iter(task)) for task in manifest["tasks"]] == [
        "setup",
        "image",
        "upload",
        "callback",
    ]
    assert "artifacts" not in manifest and sub.artifact == ""  # nothing kept on builds.sr.ht
    assert manifest["secrets"] == [CALLBACK_SECRET] and sub.secrets  # never the final key
    assert SECRET not in sub.manifest
    upload = manifest["tasks"][2]["upload"]
    assert upload.startswith("set +x\n")
    target = f"https://build.example.org/api/job-upload/{spec.key.job_id}"
    command = f"python3 {UPLOADER_FILE} --chunk-bytes {16 * 2**20} --retry-seconds 2"
    assert f"{command} '{target}'" in upload
    assert '"$HOME"/.reconciler-callback-token artifacts' in upload
    files = shipped_files(manifest)
    assert files[UPLOADER_FILE] == Path(uploader.__file__).read_bytes()
    job = ImageJob.from_json(files[JOB_FILE])
    assert job.index_path == ""  # nothing of this machine's paths
    assert job.index_url == "https://build.example.org/repo/final/main/aarch64/APKINDEX.tar.gz"
    assert str(published.root) not in sub.manifest
    assert {m for m in MODULE.findall(sub.manifest)} <= EARLIER  # no new entry point


def test_a_pmbootstrap_image_manifest_mirrors_the_public_final_repositories(
    fake: FakeSourcehut, tmp_path: Path, published: Published
) -> None:
    settings = replace(
        image_settings(fake, tmp_path, published),
        pmbootstrap_git="https://git.example.org/pmbootstrap.git",
        pmaports_git=(("main", "https://git.example.org/pmaports.git"),),
    )
    spec = image_spec(published, BuilderConfig(kind="pmbootstrap"))
    sub = build_submission(spec, settings)
    manifest = yaml.safe_load(sub.manifest)
    assert {"git", "xz", "python3"} <= set(manifest["packages"])
    setup = manifest["tasks"][0]["setup"]
    assert "git clone --depth 1 -b master https://git.example.org/pmbootstrap.git" in setup
    assert "git clone --depth 1 -b main https://git.example.org/pmaports.git ~/pmaports" in setup
    pmb = pmbootstrap_image.PmbImageJob.from_json(
        shipped_files(manifest)[pmbootstrap_image.JOB_FILE]
    )
    assert pmb.mirror == "https://build.example.org/repo/final/"
    assert "pmb config mirrors.pmaports https://build.example.org/repo/final/" in setup
    assert '"$HOME"/pmbootstrap/pmbootstrap.py --aports "$HOME"/pmaports' in setup
    assert str(published.root) not in sub.manifest
    assert {m for m in MODULE.findall(sub.manifest)} <= EARLIER
    # The real schema takes the submission (the job is not run here).
    fake.decide = lambda job: "stuck"
    service = make_service(fake, tmp_path)
    service.manifests = settings
    assert service.submit(spec).status is JobStatus.QUEUED


def test_image_jobs_need_an_upload_url(fake: FakeSourcehut, tmp_path: Path) -> None:
    service = make_service(fake, tmp_path)
    with pytest.raises(JobServiceError, match="upload_url"):
        service.submit(script_spec(KEY, "true"))
    assert fake.jobs == {}


# --- end to end -------------------------------------------------------------------------------


def test_an_image_job_uploads_in_chunks_resumes_and_is_published(
    fake: FakeSourcehut, tmp_path: Path, published: Published
) -> None:
    """The receiver loses the answer to the 2nd chunk and the 4th chunk itself: the
    uploader asks where the receiver is and goes on from there."""
    meddler = Meddler(lose={2}, refuse={4})
    with running(fake, tmp_path, published, meddler) as setup:
        spec = image_spec(published)
        setup.service.submit(spec)
        obs = settled(setup.service, spec.key)
        assert obs.status is JobStatus.SUCCESS, (obs.reason, fake.jobs[101].log)
        files = upload_files_dir(setup.uploads, spec.key.job_id)
        assert obs.artifacts_dir == str(files) and obs.log_path is not None
        names = sorted(p.name for p in files.iterdir())
        assert len(names) == 4  # image, its .sha256 and .sha512, the package list
        # In chunks, each stored once, in order, despite the lost answer and request.
        assert len(meddler.ranges) > len(names) and meddler.puts == len(meddler.ranges) + 1
        assert len(set(meddler.ranges)) == len(meddler.ranges)
        # The log the daemon checks against: the job's tasks, ending with the block.
        log = Path(obs.log_path).read_text()
        sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files.iterdir()}
        assert parse_sha256_lines(log) == sums
        assert log.index("[image]") < log.index("[upload]") < log.index("[callback]")
        (job,) = fake.jobs.values()
        for text in (job.manifest_text, job.log, log):
            assert setup.token not in text
        store = ImageStore(setup.images, tmp_path / "html" / "logs")
        message = store.publish(obs, published.image)
        assert message.startswith("published 4 file(s)")
        (date_dir,) = setup.images.glob(f"*/demo-phone/demo/{DATE}")
        assert {p.name: p.read_bytes() for p in date_dir.iterdir() if p.name != ".job"} == {
            name: (files / name).read_bytes() for name in names
        }
        # Published: the next poll removes the upload, and the result points nowhere.
        after = setup.service.list_jobs()[spec.key]
        assert after.artifacts_dir is None and after.log_path == obs.log_path
        assert uploaded(setup.uploads) == []
        # A restarted service remembers the log it downloaded.
        again = make_service(fake, tmp_path, uploads=setup.uploads, images=setup.images)
        assert again.list_jobs()[spec.key].log_path == obs.log_path


def test_a_checksum_mismatch_publishes_nothing(
    fake: FakeSourcehut, tmp_path: Path, published: Published
) -> None:
    """A byte flipped on the way: the job succeeds, the daemon refuses its files."""
    with running(fake, tmp_path, published, Meddler(corrupt={1})) as setup:
        spec = image_spec(published)
        setup.service.submit(spec)
        obs = settled(setup.service, spec.key)
        assert obs.status is JobStatus.SUCCESS, obs.reason
        store = ImageStore(setup.images, tmp_path / "html" / "logs")
        with pytest.raises(RefusedError, match="sha256"):
            store.publish(obs, published.image)
        assert not setup.images.exists() or list(setup.images.rglob("*")) == []


def test_a_wrong_token_gets_401_and_nothing_is_kept(fake: FakeSourcehut, tmp_path: Path) -> None:
    with running(fake, tmp_path, secret_token="not-the-token") as setup:
        setup.service.submit(script_spec(KEY, TWO_FILES))
        obs = settled(setup.service, KEY)
        assert obs.status is JobStatus.FAILED
        (job,) = fake.jobs.values()
        assert "HTTP 401" in job.log and "not-the-token" not in job.log
        assert uploaded(setup.uploads) == []


def test_a_size_over_the_cap_fails_the_job_and_its_uploads_go(
    fake: FakeSourcehut, tmp_path: Path
) -> None:
    """one.img.xz (3,000 bytes) arrives, two.txt (700) is over the job's cap of 3,500:
    the job fails, and its upload directory goes with it."""
    with running(fake, tmp_path, max_job_bytes=3500) as setup:
        setup.service.submit(script_spec(KEY, TWO_FILES))
        obs = settled(setup.service, KEY)
        assert obs.status is JobStatus.FAILED
        (job,) = fake.jobs.values()
        assert "HTTP 413" in job.log
        assert uploaded(setup.uploads) == []


def test_a_success_without_uploaded_files_is_a_failed_try(
    fake: FakeSourcehut, tmp_path: Path
) -> None:
    fake.decide = lambda job: "SUCCESS"  # builds.sr.ht says so without running anything
    with running(fake, tmp_path) as setup:
        setup.service.submit(script_spec(KEY, TWO_FILES))
        obs = settled(setup.service, KEY)
        assert obs.status is JobStatus.FAILED
        assert "without uploading its files" in obs.reason


# --- cleanup ----------------------------------------------------------------------------------


def tracked(key: JobKey, status: str, outcome: JobObservation | None = None) -> TrackedJob:
    return TrackedJob(key.attempt, key, status, 0.0, 0.0, outcome=outcome)


def test_upload_directories_go_once_published_failed_or_unknown(tmp_path: Path) -> None:
    root = tmp_path / "uploads"
    keys = [
        JobKey(ImageTarget("main", "demo-phone", ui, "", SLOT).intent("aarch64"), attempt)
        for attempt, ui in enumerate(("demo", "console", "plasma", "gnome", "sway"), start=1)
    ]
    for key in keys:
        (root / key.job_id / UPLOAD_FILES_DIR).mkdir(parents=True)
        (root / key.job_id / UPLOAD_FILES_DIR / "x.img.xz").write_bytes(b"x")
    (root / ".lock").touch()
    (root / ".trash-left-over").mkdir()
    unknown = JobKey(ImageTarget("main", "other", "demo", "", SLOT).intent("aarch64"), 1)
    (root / unknown.job_id / UPLOAD_FILES_DIR).mkdir(parents=True)
    old = time.time() - 7200
    os.utime(root / unknown.job_id, (old, old))
    os.utime(root / unknown.job_id / UPLOAD_FILES_DIR, (old, old))
    fresh = JobKey(ImageTarget("main", "other", "console", "", SLOT).intent("aarch64"), 1)
    (root / fresh.job_id).mkdir()

    def success(key: JobKey) -> JobObservation:
        files = str(upload_files_dir(root, key.job_id))
        return JobObservation(key, JobStatus.SUCCESS, 0.0, 1.0, artifacts_dir=files)

    running_job, waiting, published_job, failed, pruned = keys
    jobs = {
        1: tracked(running_job, "RUNNING"),
        2: tracked(waiting, "SUCCESS", success(waiting)),
        3: tracked(published_job, "SUCCESS", success(published_job)),
        4: tracked(failed, "FAILED", JobObservation(failed, JobStatus.FAILED, 0.0, 1.0)),
        5: tracked(pruned, "SUCCESS", replace(success(pruned), artifacts_dir=None)),
    }
    changed = prune_uploads(root, jobs, time.time(), 3600.0, lambda key: key == published_job)
    left = sorted(p.name for p in root.iterdir())
    assert left == sorted([".lock", running_job.job_id, waiting.job_id, fresh.job_id])
    assert list(changed) == [3] and changed[3].outcome is not None
    assert changed[3].outcome.artifacts_dir is None
