"""Every module path a job runs by name keeps working, and errors map to exit codes.

Job scripts already in job directories, and builds.sr.ht jobs (which clone the
repository unpinned and run whatever it holds then), name modules with
`python -m`. This test collects the names that this version's scripts and
manifests write, adds those earlier versions wrote, and runs each one.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.main import EXIT_CODES, exit_code
from reconciler.config.builder import BuilderConfig
from reconciler.desired.git import GitError
from reconciler.execute.mirror import MirrorError
from reconciler.execute.repos import RefusedError
from reconciler.formats.apk import ApkError
from reconciler.formats.apkbuild import ApkbuildError
from reconciler.formats.apkversion import InvalidVersion
from reconciler.formats.keys import KeyFileError, SignatureError
from reconciler.hooks.tokens import TokenStoreError
from reconciler.hooks.webhook import WebhookError
from reconciler.jobs import local
from reconciler.jobs.images import image_job, image_script, image_script_for
from reconciler.jobs.indexes import IndexSource
from reconciler.jobs.scripts import build_script, remote_sign_script, sign_script
from reconciler.jobs.service import JobServiceError, JobSpec
from reconciler.jobs.sourcehut.manifest import ManifestSettings, build_submission
from reconciler.model.errors import (
    ConfigError,
    InputError,
    ReconcilerError,
    UnavailableError,
    UsageError,
)
from reconciler.model.images import DesiredImage, ImageTarget, file_prefix
from reconciler.model.jobs import JobIntent, JobKey, JobKind
from reconciler.model.names import RepoKey
from reconciler.model.packages import PkgSpec
from reconciler.operator.triggers import TriggerError

ROOT = Path(__file__).resolve().parent.parent
# Module paths that job scripts of earlier versions name.
EARLIER = {
    "reconciler.signer",
    "reconciler.synthetic",
    "reconciler.jobs.runner",
    "reconciler.jobs.pmbootstrap",
    "reconciler.synthetic_image",
}
MODULE = re.compile(r"-m\s+'?(reconciler(?:\.[a-z_]+)*)")


SLOT = "20270101-0000"


def sample_image() -> DesiredImage:
    target = ImageTarget("main", "demo-phone", "demo", "", SLOT)
    prefix = file_prefix("edge", "demo", "1", "demo-phone")
    return DesiredImage(target, "aarch64", "edge", "Demo", "Demo", "1", ("x",), prefix)


def scripts_of_this_version(tmp_path: Path) -> list[str]:
    """The text of every kind of job this version writes."""
    repo = RepoKey("main", "", "aarch64")
    key = JobKey(JobIntent(JobKind.BUILD, repo, "hello", "1-r0"), 1)
    spec = PkgSpec(repo, "hello", "1-r0", "main/hello", "aarch64")
    index = tmp_path / "repo" / "wip" / "main" / "aarch64" / "APKINDEX.tar.gz"
    public = tmp_path / "wip.rsa.pub"
    public.write_text("PUBLIC KEY\n")
    indexes = [IndexSource(index, public), IndexSource(index, public)]
    texts = [
        build_script(key, spec, BuilderConfig(), indexes, (), "c0ffee")[0],
        build_script(key, spec, BuilderConfig(kind="pmbootstrap"), indexes, (), "c0ffee")[0],
        sign_script(b"index", "a" * 64, tmp_path / "final.rsa", "final.rsa.pub")[0],
        remote_sign_script("https://x/i", "a" * 64, "final.rsa", "final.rsa.pub", "python3"),
        f"python -m {local.RUNNER_MODULE}",
        image_script(image_job(sample_image(), 1, SLOT, str(index), password="x"), b"KEY")[0],
        image_script_for(
            BuilderConfig(kind="pmbootstrap"),
            image_job(sample_image(), 1, SLOT, str(index), key_name="k.rsa.pub", password="x"),
            b"KEY",
        )[0],
    ]
    settings = ManifestSettings(
        image="alpine/edge",
        packages=("python3",),
        reconciler_source="https://git.example.org/reconciler",
        final_key_secret="0a1b2c3d-0000-1111-2222-333344445555",
        final_key_path="~/.final.rsa",
        final_key_name="final.rsa.pub",
        url_roots=((tmp_path / "repo" / "wip", "https://build.example.org/repo/wip"),),
        symlink_url="https://build.example.org/repo/symlink",
    )
    sign = JobKey(JobIntent(JobKind.SIGN, repo, "", "a" * 64), 1)
    for job_key, (script, files) in (
        (key, build_script(key, spec, BuilderConfig(), indexes, (), "c0ffee")),
        (sign, sign_script(b"index", "a" * 64, tmp_path / "final.rsa", "final.rsa.pub")),
    ):
        texts.append(build_submission(JobSpec(job_key, script, "", 60, files), settings).manifest)
    return texts


def test_this_versions_scripts_name_only_known_entry_points(tmp_path: Path) -> None:
    named = {m for text in scripts_of_this_version(tmp_path) for m in MODULE.findall(text)}
    assert named, "no script names a module: the pattern is wrong"
    assert named <= EARLIER, f"a new module path in job scripts: {named - EARLIER}"


@pytest.mark.parametrize("module", sorted(EARLIER))
def test_a_named_module_runs(tmp_path: Path, module: str) -> None:
    """Run as a job would (a fresh interpreter, the checkout on PYTHONPATH, another
    working directory); asked for nothing it can do, it prints its usage."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", module],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert "No module named" not in output and "Traceback" not in output, output
    assert done.returncode == 2 and "usage" in output, output


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("bad argument"), 2),
        (ConfigError(["config.yaml:3: branches: missing"]), 2),
        (TokenStoreError("tokens.json: not a JSON document"), 2),
        (WebhookError("cannot listen on 127.0.0.1:1"), 2),
        (InputError("x: field 'y': expected z"), 1),
        (ApkError("x.apk: not a gzip member"), 1),
        (ApkbuildError("main/x/APKBUILD", "pkgver", "missing"), 1),
        (InvalidVersion("1..0", "two dots"), 1),
        (KeyFileError("k.pub: not a key"), 1),
        (SignatureError("index: no signature verifies"), 1),
        (TriggerError("t.json: field 'type'"), 1),
        (RefusedError("x.apk: origin is 'y'"), 1),
        (UnavailableError("down"), 1),
        (JobServiceError("builds.sr.ht unreachable"), 1),
        (GitError("git fetch: timed out"), 1),
        (MirrorError("rsync exit 10"), 1),
        (ReconcilerError("anything else we raise on purpose"), 1),
    ],
)
def test_each_user_visible_error_has_its_exit_code(error: ReconcilerError, code: int) -> None:
    assert exit_code(error) == code


def test_the_exit_code_table_ends_with_the_base() -> None:
    assert EXIT_CODES[-1][0] is ReconcilerError


def test_every_exception_class_derives_from_the_one_base() -> None:
    """Any exception class defined in the package is a ReconcilerError."""
    found = []
    for path in sorted((ROOT / "reconciler").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        if rel.name == "__main__":
            continue
        module = importlib.import_module(".".join(rel.parts).removesuffix(".__init__"))
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found.append(value)
    assert len(found) > 10
    assert [e.__qualname__ for e in found if not issubclass(e, ReconcilerError)] == []
