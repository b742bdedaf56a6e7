"""Image jobs: their identity round-trips through job ids, their input through
`image.json`, and the synthetic image job, run for real by its script against a
final repository the fake daemon published from the sample tree, makes a valid
xz image whose package list is the dependency closure this test computes itself
from the index; an index signed by another key, or one lacking a package, fails
it with a clear message."""

from __future__ import annotations

import hashlib
import lzma
import re
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.config.settings import Config, load_config
from reconciler.desired.images import desired_images
from reconciler.desired.reader import DesiredReader
from reconciler.formats.apkindex import (
    build_index_archive,
    format_index,
    parse_index_text,
    read_index_archive,
    sign_archive,
)
from reconciler.formats.imagelog import parse_sha256_lines
from reconciler.fs.keyfiles import load_private_key
from reconciler.jobs import image_synthetic
from reconciler.jobs.images import (
    JOB_FILE,
    KEY_FILE,
    ImageJob,
    ImageJobError,
    image_job,
    image_note,
    image_script,
)
from reconciler.jobs.service import JobSpec
from reconciler.model.images import (
    DesiredImage,
    ImageTarget,
    image_file_name,
    image_stem,
    packages_file_name,
)
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobStatus
from reconciler.model.names import RepoKey

from . import apkcheck
from .conftest import SAMPLE_TREE
from .fake_clock import FakeClock
from .fake_daemon import converged_fake
from .memory_jobs import InMemoryJobService, JobTable

JOB_ID_CHARS = re.compile(r"[A-Za-z0-9@._+~-]+")
DATE = "20261206-1700"

# --- identity ---------------------------------------------------------------------

TARGETS = [
    ImageTarget("main", "demo-phone", "demo", "", "20250620-0000"),
    ImageTarget("v25.12", "pine64-pinephone", "sxmo-de-sway", "mainline", "20261204-0000"),
    ImageTarget("main", "qemu-amd64", "gnome-mobile", "lts", "20300101-2359"),
    ImageTarget("main", "a1.b", "plasma-mobile", "x+y.z-1", "20250627-0000"),
]


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_an_image_target_round_trips_through_its_job_id(target: ImageTarget) -> None:
    key = JobKey(target.intent("aarch64"), 3)
    job_id = key.job_id
    assert JOB_ID_CHARS.fullmatch(job_id) and "/" not in job_id, job_id
    assert job_id.startswith(f"image@{target.branch}@main@aarch64@{target.device}@")
    back = JobKey.from_job_id(job_id)
    assert back == key and back.intent.kind is JobKind.IMAGE
    assert ImageTarget.from_intent(back.intent) == target


def test_the_only_kernel_leaves_no_field_in_the_id() -> None:
    key = JobKey(TARGETS[0].intent("aarch64"), 1)
    assert key.job_id == "image@main@main@aarch64@demo-phone@20250620-0000~demo@1"
    named = JobKey(TARGETS[1].intent("aarch64"), 1)
    assert named.job_id.endswith("@20261204-0000~sxmo-de-sway~mainline@1")


@pytest.mark.parametrize(
    "intent",
    [
        JobIntent(JobKind.BUILD, RepoKey("main", "", "x86_64"), "hello", "1-r0"),
        JobIntent(JobKind.IMAGE, RepoKey("main", "", "x86_64"), "d", "20250620-0000~"),
        JobIntent(JobKind.IMAGE, RepoKey("main", "", "x86_64"), "d", "20250620-0000~ui~"),
        JobIntent(JobKind.IMAGE, RepoKey("main", "", "x86_64"), "d", "20250620-0000~ui~k~x"),
        JobIntent(JobKind.IMAGE, RepoKey("main", "", "x86_64"), "d", "20251399-0000~ui"),
        JobIntent(JobKind.IMAGE, RepoKey("main", "", "x86_64"), "d", "20250620-0000"),
        JobIntent(JobKind.IMAGE, RepoKey("main", "", "x86_64"), "D_1", "20250620-0000~ui"),
        JobIntent(JobKind.IMAGE, RepoKey("main", "", "x86_64"), "d", "20250620-0000~UI"),
        JobIntent(JobKind.IMAGE, RepoKey("main", "systemd", "x86_64"), "d", "20250620-0000~ui"),
    ],
    ids=str,
)
def test_other_intents_are_not_image_targets(intent: JobIntent) -> None:
    with pytest.raises(ValueError):
        ImageTarget.from_intent(intent)


# --- image.json ---------------------------------------------------------------------


def sample_job(**changes: object) -> ImageJob:
    job = ImageJob(
        target=TARGETS[1],
        arch="aarch64",
        attempt=2,
        date_dir=DATE,
        release="v25.12",
        device_pretty="PINE64 PinePhone",
        ui_pretty="Sxmo (Sway)",
        ui_version="1.17.1",
        packages=("postmarketos-base", "device-pine64-pinephone"),
        tree_names=("so:libfoo.so.1", "postmarketos-base"),
        index_path="/srv/final/v25.12/aarch64/APKINDEX.tar.gz",
        key_name="final.rsa.pub",
        password="147147",
    )
    return replace(job, **changes)  # type: ignore[arg-type]


def test_the_job_input_round_trips_through_json() -> None:
    job = sample_job()
    assert ImageJob.from_json(job.to_json()) == job
    assert job.key == JobKey(TARGETS[1].intent("aarch64"), 2)
    assert job.stem == (
        "20261206-1700-postmarketOS-v25.12-sxmo-de-sway-1.17.1-pine64-pinephone_mainline"
    )
    assert image_note(job) == (
        "image pine64-pinephone (mainline) sxmo-de-sway for v25.12/aarch64"
        " (slot 20261204-0000), try 2"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"[]", "expected an object"),
        (b"{", "not JSON"),
        (sample_job().to_json().replace(b'"date_dir": "', b'"date_dir": "x'), "date_dir"),
        (sample_job().to_json().replace(b'"attempt": 2', b'"attempt": "2"'), "attempt"),
        (sample_job().to_json().replace(b'"slot": "2026', b'"slot": "9999x'), "target"),
        (sample_job().to_json().replace(b'"release": "v25.12"', b'"release": "../x"'), "release"),
        (sample_job().to_json().replace(b'"arch": "aarch64",', b""), "arch"),
    ],
)
def test_a_bad_job_input_is_refused_naming_the_field(text: bytes, message: str) -> None:
    with pytest.raises(ImageJobError, match=message):
        ImageJob.from_json(text)


def test_the_script_runs_the_stable_entry_point_and_carries_the_key() -> None:
    script, files = image_script(sample_job(), b"PUBLIC KEY\n", python="/usr/bin/python3")
    assert script.startswith("#!/bin/bash\n")
    assert "exec /usr/bin/python3 -m reconciler.synthetic_image image.json artifacts\n" in script
    assert files == {JOB_FILE: sample_job().to_json(), KEY_FILE: b"PUBLIC KEY\n"}


def test_a_wrong_command_line_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.synthetic_image", "only-one"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "usage:" in done.stderr


# --- the job, run for real ---------------------------------------------------------------


class Published:
    """The sample tree converged by the fake daemon: its config, trees and final repos."""

    def __init__(self, root: Path, config: Config) -> None:
        self.root = root
        self.config = config
        self.trees = {
            b.name: DesiredReader(config.splitrepos).read_branch(b) for b in config.branches
        }

    def index(self, arch: str = "aarch64") -> Path:
        return self.config.paths.final_repo / "main" / arch / "APKINDEX.tar.gz"

    def image(self) -> DesiredImage:
        (image,), problems = desired_images(self.config.images, self.trees, time.time())
        assert problems == ()
        return image


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, key_files: Path) -> Published:
    root = tmp_path_factory.mktemp("published")
    shutil.copytree(SAMPLE_TREE, root / "pmaports")
    shutil.copytree(key_files, root / "data" / "keys")
    config_file = root / "config.yaml"
    config_file.write_text(
        textwrap.dedent(
            f"""\
            paths: {{data: {root}/data, html_out: {root}/html}}
            builder: {{duration_seconds: 0}}
            retries: {{max_tries: 1, backoff_seconds: 0.05, backoff_max_seconds: 0.2}}
            branches:
              - {{name: main, pmaports: {root}/pmaports, arches: [x86_64, aarch64]}}
            images:
              devices:
                - {{codename: demo-phone, uis: [demo]}}
            """
        ),
        encoding="utf-8",
    )
    config = load_config(config_file)
    converged_fake(config, root, FakeClock())
    assert (config.paths.final_repo / "main" / "aarch64" / "APKINDEX.tar.gz").exists()
    return Published(root, config)


def run_job(
    published: Published,
    directory: Path,
    *,
    index: Path | None = None,
    packages: tuple[str, ...] | None = None,
) -> tuple[int, str, Path]:
    """Write the job's directory as a job service would and run its script."""
    image = published.image()
    if packages is not None:
        image = replace(image, packages=packages)
    keys = published.config.keys
    job = image_job(
        image,
        1,
        DATE,
        str(index or published.index(image.arch)),
        key_name=keys.final_name,
        password=published.config.images.password,
    )
    script, files = image_script(job, keys.final_public.read_bytes())
    directory.mkdir(parents=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    (directory / "script.sh").write_text(script, encoding="utf-8")
    done = subprocess.run(
        ["bash", "script.sh"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr, directory / "artifacts"


def closure_by_the_test(index: Path, names: tuple[str, ...]) -> list[str]:
    """`name-version` of everything installing `names` pulls from the index: a plain
    BFS over the index's D: fields, names found through P: and p:, read with the
    test's own reader; names the index does not have are skipped."""
    entries = apkcheck.read_index(index).entries
    provider: dict[str, dict[str, str]] = {}
    for entry in entries:
        provider.setdefault(entry["P"], entry)
    for entry in entries:
        for token in entry.get("p", "").split():
            provider.setdefault(re.split(r"[<>=~]", token)[0], entry)
    seen: dict[str, dict[str, str]] = {}
    queue = list(names)
    while queue:
        token = queue.pop(0)
        if token.startswith("!"):
            continue
        entry = provider.get(re.split(r"[<>=~]", token)[0])
        if entry is None or entry["P"] in seen:
            continue
        seen[entry["P"]] = entry
        queue.extend(entry.get("D", "").split())
    return sorted(f"{e['P']}-{e['V']}" for e in seen.values())


def test_the_image_lists_the_closure_the_test_computes_and_is_real_xz(
    published: Published, tmp_path: Path
) -> None:
    code, log, artifacts = run_job(published, tmp_path / "job")
    assert code == 0, log
    image = published.image()
    image_name = image_file_name(DATE, image)
    packages_name = packages_file_name(DATE, image)
    assert image_name == "20261206-1700-postmarketOS-edge-demo-1.0-demo-phone.img.xz"
    names = sorted(p.name for p in artifacts.iterdir())
    assert names == sorted(
        [packages_name, image_name, image_name + ".sha256", image_name + ".sha512"]
    )
    # The package list: exactly the closure computed here from the published index.
    expected = closure_by_the_test(published.index(), image.packages)
    listed = (artifacts / packages_name).read_text(encoding="utf-8").splitlines()
    assert listed == expected
    assert "linux-demo-6.12.8-r1" in listed and "postmarketos-mkinitfs-2.4.1-r0" in listed
    assert "left to the upstream distribution: busybox" in log
    # A valid xz file, for the xz tool and for lzma; it holds the list.
    subprocess.run(["xz", "-t", str(artifacts / image_name)], check=True, timeout=60)
    with lzma.open(artifacts / image_name) as file:
        content = file.read()
    assert len(content) % 512 == 0 and content.startswith(b"reconciler synthetic image")
    assert all(line.encode() in content for line in expected)
    # Checksum files as sha256sum/sha512sum write them (and check them).
    data = (artifacts / image_name).read_bytes()
    assert (artifacts / (image_name + ".sha256")).read_text() == (
        f"{hashlib.sha256(data).hexdigest()}  {image_name}\n"
    )
    assert (artifacts / (image_name + ".sha512")).read_text() == (
        f"{hashlib.sha512(data).hexdigest()}  {image_name}\n"
    )
    for tool, suffix in (("sha256sum", ".sha256"), ("sha512sum", ".sha512")):
        subprocess.run([tool, "-c", image_name + suffix], cwd=artifacts, check=True, timeout=60)
    # The log's last block: the sha256 of every file it wrote.
    assert log.rstrip().splitlines()[-1].startswith("sha256 ")
    sums = parse_sha256_lines(log + "\njob ended: success\n")
    assert sums == {
        name: hashlib.sha256((artifacts / name).read_bytes()).hexdigest() for name in names
    }
    assert image_stem(DATE, image) in image_name


def test_an_index_signed_by_another_key_fails_the_job(
    published: Published, tmp_path: Path, key_files: Path
) -> None:
    signed = published.index().read_bytes()
    unsigned = read_index_archive(signed, "final").signed_bytes
    name = published.config.keys.final_name
    forged = tmp_path / "APKINDEX.tar.gz"
    forged.write_bytes(sign_archive(unsigned, load_private_key(key_files / "wip.rsa"), name))
    code, log, artifacts = run_job(published, tmp_path / "job", index=forged)
    assert code == 1, log
    assert f"ERROR: index {forged} is not trusted: " in log
    assert "no signature verifies with the given key" in log
    assert not artifacts.exists() or not any(artifacts.iterdir())


def test_a_package_missing_from_the_index_fails_the_job_naming_it(
    published: Published, tmp_path: Path, key_files: Path
) -> None:
    archive = read_index_archive(published.index().read_bytes(), "final")
    entries = [e for e in parse_index_text(archive.text, "final") if e.pkgname != "linux-demo"]
    unsigned = build_index_archive(format_index(entries), description=None, mtime=0)
    index = tmp_path / "APKINDEX.tar.gz"
    name = published.config.keys.final_name
    index.write_bytes(sign_archive(unsigned, load_private_key(key_files / "final.rsa"), name))
    code, log, _ = run_job(published, tmp_path / "job", index=index)
    assert code == 1, log
    assert "ERROR: cannot resolve linux-demo (needed by device-demo-phone)" in log


def test_a_package_to_install_missing_from_the_index_fails_the_job(
    published: Published, tmp_path: Path
) -> None:
    code, log, _ = run_job(
        published, tmp_path / "job", packages=("postmarketos-base", "device-nope")
    )
    assert code == 1, log
    assert "ERROR: cannot resolve device-nope (needed by the image)" in log


def test_no_published_index_fails_the_job(published: Published, tmp_path: Path) -> None:
    code, log, _ = run_job(published, tmp_path / "job", index=tmp_path / "none" / "APKINDEX")
    assert code == 1 and "does not exist: nothing is published yet" in log, log


def test_the_in_memory_job_service_runs_image_jobs(published: Published, tmp_path: Path) -> None:
    clock = FakeClock()
    service = InMemoryJobService(JobTable(tmp_path / "jobs"), clock)
    image = published.image()
    keys = published.config.keys
    job = image_job(
        image, 1, DATE, str(published.index()), key_name=keys.final_name, password="147147"
    )
    script, files = image_script(job, keys.final_public.read_bytes())
    service.submit(JobSpec(job.key, script, image_note(job), 600.0, files))
    (observed,) = service.list_jobs().values()
    assert observed.status is JobStatus.SUCCESS, observed
    assert observed.log_path is not None and observed.artifacts_dir is not None
    sums = parse_sha256_lines(Path(observed.log_path).read_text(encoding="utf-8"))
    artifacts = Path(observed.artifacts_dir)
    assert sorted(sums) == sorted(p.name for p in artifacts.iterdir())
    assert image_file_name(DATE, image) in sums
    assert image_synthetic.main(["x"]) == 2
