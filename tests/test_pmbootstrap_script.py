"""The pmbootstrap build script, run for real by bash with a fake `pmbootstrap` first on PATH.

The fake records every call (arguments and PMB_APK_FORCE_MISSING_REPOSITORIES)
and, for `build`, writes apks where pmbootstrap does (`<work>/packages/<channel>/
<arch>/`), or prints nothing and hangs when told to, for the silence timeout.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from reconciler.config.builder import BuilderConfig
from reconciler.config.settings import load_config
from reconciler.jobs.indexes import IndexSource
from reconciler.jobs.pmbootstrap_build import JOB_FILE, PmbJob, mirror_base
from reconciler.jobs.scripts import build_script
from reconciler.jobs.service import JobSpec
from reconciler.jobs.silence import main
from reconciler.jobs.sourcehut.manifest import ManifestSettings, build_submission
from reconciler.model.errors import ConfigError
from reconciler.model.jobs import JobIntent, JobKey, JobKind
from reconciler.model.names import RepoKey
from reconciler.model.packages import PkgSpec

ROOT = Path(__file__).resolve().parent.parent

FAKE_PMBOOTSTRAP = r"""#!/bin/bash
# A fake pmbootstrap: records its calls, writes apks for `build`.
force=${PMB_APK_FORCE_MISSING_REPOSITORIES:-unset}
printf '%s\n' "$(printf '%q ' "$@")| force=$force" >> "$FAKE_CALLS"
args=" $* "
if [[ $args == *" config work "* ]]; then echo "$FAKE_WORK"; exit 0; fi
if [[ $args == *" build "* ]]; then
    if [ -n "${FAKE_SILENT:-}" ]; then sleep 60; exit 0; fi
    arch="${@: -2:1}"; pkg="${@: -1}"
    echo "building $pkg for $arch"
    dir="$FAKE_WORK/packages/edge/$arch"
    mkdir -p "$dir"
    echo "apk of $pkg" > "$dir/$pkg-1.0-r0.apk"
    echo "apk of $pkg-doc" > "$dir/$pkg-doc-1.0-r0.apk"
    echo "done"
fi
exit 0
"""


@dataclass
class Run:
    code: int
    log: str
    calls: list[str]
    artifacts: dict[str, bytes]
    work: Path
    seconds: float

    def build_call(self) -> str:
        (call,) = [c for c in self.calls if " build " in c]
        return call


def index(path: Path, key_name: str) -> None:
    """A stand-in APKINDEX.tar.gz whose first member is a `.SIGN.RSA.<key_name>` signature."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(f".SIGN.RSA.{key_name}")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"sig"))
    path.write_bytes(buffer.getvalue())


def package(name: str, repo: RepoKey) -> PkgSpec:
    return PkgSpec(repo, name, "1.0-r0", f"main/{name}", repo.arch)


def setup_repos(tmp_path: Path, *, wip: bool, final: bool, split: str = "") -> list[IndexSource]:
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    (keys / "wip.rsa.pub").write_text("WIP PUBLIC KEY\n")
    (keys / "final.rsa.pub").write_text("FINAL PUBLIC KEY\n")
    prefix = f"extra-repos/{split}/" if split else ""
    wip_index = tmp_path / "repo" / "wip" / f"{prefix}main/aarch64/APKINDEX.tar.gz"
    final_index = tmp_path / "repo" / "final" / f"{prefix}main/aarch64/APKINDEX.tar.gz"
    if wip:
        index(wip_index, "wip.rsa.pub")
    if final:
        index(final_index, "test-final.rsa.pub")
    return [
        IndexSource(wip_index, keys / "wip.rsa.pub", present=wip, key_name="wip.rsa.pub"),
        IndexSource(
            final_index, keys / "final.rsa.pub", present=final, key_name="test-final.rsa.pub"
        ),
    ]


def run_build(
    tmp_path: Path,
    pkgname: str,
    indexes: list[IndexSource],
    *,
    builder: BuilderConfig | None = None,
    silent: bool = False,
) -> Run:
    builder = builder or BuilderConfig(kind="pmbootstrap")
    repo = RepoKey("main", "", "aarch64")
    key = JobKey(JobIntent(JobKind.BUILD, repo, pkgname, "1.0-r0"), 1)
    script, files = build_script(key, package(pkgname, repo), builder, indexes, (), "c0ffee")
    bindir, work, job = tmp_path / "bin", tmp_path / "work", tmp_path / "job"
    for directory in (bindir, work / "packages" / "edge" / "aarch64", job / "artifacts"):
        directory.mkdir(parents=True, exist_ok=True)
    fake = bindir / "pmbootstrap"
    fake.write_text(FAKE_PMBOOTSTRAP)
    fake.chmod(0o755)
    stale = work / "packages" / "edge" / "aarch64" / "old-0.1-r0.apk"  # an earlier build's
    stale.write_text("old\n")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    (job / "script.sh").write_text(script)
    for name, data in files.items():
        (job / name).write_bytes(data)
    env = {
        **os.environ,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "FAKE_CALLS": str(tmp_path / "calls"),
        "FAKE_WORK": str(work),
    }
    env.pop("PMB_APK_FORCE_MISSING_REPOSITORIES", None)
    if silent:
        env["FAKE_SILENT"] = "1"
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", "script.sh"],
        cwd=job,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
        check=False,
    )
    calls = (tmp_path / "calls").read_text().splitlines()
    artifacts = {p.name: p.read_bytes() for p in sorted((job / "artifacts").iterdir())}
    return Run(
        proc.returncode,
        proc.stdout.decode(),
        calls,
        artifacts,
        work,
        time.monotonic() - started,
    )


def test_strict_build_with_wip_and_final_mirrors(tmp_path: Path) -> None:
    run = run_build(tmp_path, "hello", setup_repos(tmp_path, wip=True, final=True))
    assert run.code == 0, run.log
    build = run.build_call()
    assert build.startswith("--details-to-stdout --timeout 900 build ")
    assert "build --no-depends --force --strict --arch aarch64 hello |" in build
    assert build.endswith("force=unset")
    wip_root, final_root = tmp_path / "repo" / "wip", tmp_path / "repo" / "final"
    assert f"config mirrors.pmaports_custom {wip_root}/ | force=unset" in run.calls
    assert f"config mirrors.pmaports {final_root}/ | force=unset" in run.calls
    assert "config -r mirrors.systemd_custom | force=unset" in run.calls
    keys = run.work / "config_apk_keys"
    assert (keys / "wip.rsa.pub").read_text() == "WIP PUBLIC KEY\n"
    assert (keys / "test-final.rsa.pub").read_text() == "FINAL PUBLIC KEY\n"
    # Only what this build wrote, not the earlier build's apk.
    assert sorted(run.artifacts) == ["hello-1.0-r0.apk", "hello-doc-1.0-r0.apk"]
    for data in run.artifacts.values():
        assert hashlib.sha256(data).hexdigest() in run.log
        assert hashlib.sha512(data).hexdigest() in run.log
    assert "building hello for aarch64" in run.log


def test_excluded_package_without_strict_and_a_branch_without_final_index(
    tmp_path: Path,
) -> None:
    run = run_build(tmp_path, "gcc-armv7", setup_repos(tmp_path, wip=False, final=False))
    assert run.code == 0, run.log
    build = run.build_call()
    assert "build --no-depends --force --arch aarch64 gcc-armv7 |" in build
    assert "--strict" not in build
    assert build.endswith("force=1")
    # No WIP index yet: no WIP mirror, no key; the final mirror is still set.
    assert "config -r mirrors.pmaports_custom | force=unset" in run.calls
    assert f"config mirrors.pmaports {tmp_path}/repo/final/ | force=unset" in run.calls
    assert not any(c.startswith("config mirrors.pmaports_custom") for c in run.calls)
    assert not list((run.work / "config_apk_keys").iterdir())
    assert sorted(run.artifacts) == ["gcc-armv7-1.0-r0.apk", "gcc-armv7-doc-1.0-r0.apk"]


def test_split_repository_mirrors_and_configured_strict_exclude(tmp_path: Path) -> None:
    indexes = setup_repos(tmp_path, wip=True, final=True)
    indexes += setup_repos(tmp_path, wip=True, final=True, split="systemd")
    builder = BuilderConfig(kind="pmbootstrap", strict_exclude=("hel*",))
    run = run_build(tmp_path, "hello", indexes, builder=builder)
    assert run.code == 0, run.log
    assert "--strict" not in run.build_call()
    systemd = f"{tmp_path}/repo/wip/extra-repos/systemd/"
    assert f"config mirrors.systemd_custom {systemd} | force=unset" in run.calls
    assert f"config mirrors.systemd {tmp_path}/repo/final/extra-repos/systemd/ | force=unset" in (
        run.calls
    )


def test_a_silent_build_is_stopped_with_a_clear_line(tmp_path: Path) -> None:
    builder = BuilderConfig(kind="pmbootstrap", silence_timeout_seconds=1)
    indexes = setup_repos(tmp_path, wip=True, final=True)
    run = run_build(tmp_path, "hello", indexes, builder=builder, silent=True)
    assert run.code != 0
    assert "silence timeout: the build printed nothing for 1 s" in run.log
    assert "--timeout 1 build" in run.build_call()
    assert run.seconds < 30  # the fake would sleep 60 s
    assert run.artifacts == {}


def test_watchdog_passes_output_and_exit_code_through(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "reconciler.jobs.pmbootstrap", "watch", "5", "--"),
            *("bash", "-c", "echo one; echo two >&2; exit 3"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 3
    assert proc.stdout == "one\ntwo\n"
    assert main(["watch", "x", "--", "true"]) == 2


def test_mirror_base_of_index_locations() -> None:
    assert mirror_base("/r/wip/main/x86_64/APKINDEX.tar.gz") == ("/r/wip/", "")
    assert mirror_base("https://h/repo/final/extra-repos/systemd/v25.12/armv7/APKINDEX.tar.gz") == (
        "https://h/repo/final/extra-repos/systemd/",
        "systemd",
    )


def test_the_sourcehut_manifest_clones_pmbootstrap_and_uses_public_urls(tmp_path: Path) -> None:
    indexes = setup_repos(tmp_path, wip=True, final=True)
    builder = BuilderConfig(kind="pmbootstrap")
    repo = RepoKey("v25.12", "", "aarch64")
    key = JobKey(JobIntent(JobKind.BUILD, repo, "hello", "1.0-r0"), 1)
    # v25.12 has a WIP index and no final index yet.
    indexes = [
        replace(i, path=Path(str(i.path).replace("/main/", "/v25.12/")), present=not n % 2)
        for n, i in enumerate(indexes)
    ]
    script, files = build_script(key, package("hello", repo), builder, indexes, (), "c0ffee")
    settings = ManifestSettings(
        image="alpine/edge",
        packages=("python3",),
        reconciler_source="https://git.example.org/~ops/reconciler",
        final_key_secret="0a1b2c3d-0000-1111-2222-333344445555",
        final_key_path="~/.final.rsa",
        final_key_name="test.rsa.pub",
        url_roots=(
            (tmp_path / "repo" / "wip", "https://build.example.org/repo/wip"),
            (tmp_path / "repo" / "final", "https://build.example.org/repo/final"),
        ),
        symlink_url="https://build.example.org/repo/symlink",
        pmbootstrap_git="https://git.example.org/pmbootstrap.git",
        pmbootstrap_branches=(("v25.12", "3.6.x"),),
        pmaports_git=(("v25.12", "https://git.example.org/pmaports.git"),),
    )
    sub = build_submission(JobSpec(key, script, "note", 60.0, files), settings)
    manifest = yaml.safe_load(sub.manifest)
    setup = manifest["tasks"][0]["setup"]
    assert "git clone --depth 1 -b 3.6.x https://git.example.org/pmbootstrap.git" in setup
    assert "-b v25.12 https://git.example.org/pmaports.git ~/pmaports" in setup
    assert "checkout --detach c0ffee" in setup
    assert "git" in manifest["packages"]
    assert str(tmp_path) not in sub.manifest, "a local path reached the guest"
    assert "pmb config mirrors.pmaports_custom https://build.example.org/repo/wip/" in setup
    assert "pmb config mirrors.pmaports https://build.example.org/repo/final/" in setup
    assert "export PMB_APK_FORCE_MISSING_REPOSITORIES=1" in setup  # no final index yet
    job = PmbJob.from_json(files[JOB_FILE])
    assert job.commit == "c0ffee" and job.branch == "v25.12"
    shipped = json.dumps(manifest)
    assert "keys/wip.rsa.pub" in shipped

    # A staging branch of v25.12 clones its own pmaports branch from v25.12's
    # remote, with v25.12's pmbootstrap branch.
    staged = PmbJob.from_json(files[JOB_FILE])
    staged_files = {**files, JOB_FILE: replace(staged, branch="v25.12_staging_try").to_json()}
    sub = build_submission(JobSpec(key, script, "note", 60.0, staged_files), settings)
    setup = yaml.safe_load(sub.manifest)["tasks"][0]["setup"]
    assert "git clone --depth 1 -b 3.6.x https://git.example.org/pmbootstrap.git" in setup
    assert "-b v25.12_staging_try https://git.example.org/pmaports.git ~/pmaports" in setup


def test_the_builder_section_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    branches = (
        "branches:\n"
        "  - {name: main, pmaports: /tmp, arches: [x86_64], remote: 'https://git.example.org/p'}\n"
        "  - {name: v25.12, pmaports: /tmp, arches: [x86_64]}\n"
    )
    path.write_text(
        branches + "builder:\n  kind: pmbootstrap\n  silence_timeout_seconds: 30\n"
        "  pmbootstrap_branches: {v25.12: 3.6.x}\n"
    )
    builder = load_config(path).builder
    assert builder.silence_timeout_seconds == 30.0
    assert builder.pmbootstrap_branches == (("v25.12", "3.6.x"),)
    path.write_text(
        branches + "builder:\n  pmbootstrap_branches: {nope: master, main: 'a b'}\n"
        "  pmaports_git: git@example.org:p.git\n  silence_timeout_seconds: soon\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    for problem in (
        "builder.pmbootstrap_branches: unknown key 'nope'",
        "builder.pmbootstrap_branches.main: 'a b' is not a branch name",
        "builder.pmaports_git: expected an http:// or https:// git URL",
        "builder.silence_timeout_seconds: expected a number",
    ):
        assert problem in text
