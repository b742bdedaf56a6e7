"""Shared fixtures: a private copy of the sample tree and a config around it."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import reconciler.desired.reader
from reconciler.config.settings import Config, load_config
from reconciler.formats.apkbuild import Apkbuild, parse_apkbuild
from reconciler.formats.keys import generate_private_key
from reconciler.fs.keyfiles import write_private_key, write_public_key
from reconciler.loop import Daemon

from .fake_clock import FakeClock
from .fake_daemon import fake_daemon as make_fake_daemon
from .memory_jobs import JobTable

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_TREE = ROOT / "examples" / "pmaports"


@pytest.fixture
def pmaports(tmp_path: Path) -> Path:
    """A copy of the sample pmaports tree that a test may change."""
    target = tmp_path / "pmaports"
    shutil.copytree(SAMPLE_TREE, target)
    return target


ConfigFactory = Callable[..., Config]


@pytest.fixture(scope="session")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The WIP and final key pairs, made once per run (RSA key generation is slow)."""
    directory = tmp_path_factory.mktemp("keys")
    for name in ("wip.rsa", "final.rsa"):
        key = generate_private_key(2048)
        write_private_key(directory / name, key)
        write_public_key(directory / f"{name}.pub", key)
    return directory


@pytest.fixture
def make_config(tmp_path: Path, pmaports: Path, key_files: Path) -> ConfigFactory:
    """Write a config for the sample tree under tmp_path; keyword args add YAML. The
    daemon finds its keys already made (copies of this run's), as after a first start."""

    def factory(
        extra: str = "",
        branches: str | None = None,
        builder: str = "duration_seconds: 0",
        loop: str = "poll_interval_seconds: 0.5, settle_seconds: 0",
        paths: str | None = None,
        retries: str = "backoff_seconds: 0.05, backoff_max_seconds: 0.2",
    ) -> Config:
        branches_yaml = branches or textwrap.dedent(
            f"""\
            branches:
              - name: main
                pmaports: {pmaports}
                arches: [x86_64, aarch64, armv7]
            """
        )
        text = (
            textwrap.dedent(
                f"""\
                paths: {{{paths or f"data: {tmp_path}/data, html_out: {tmp_path}/html"}}}
                jobs:
                  max_parallel: 2
                builder: {{{builder}}}
                retries: {{{retries}}}
                loop: {{{loop}}}
                """
            )
            + branches_yaml
            + textwrap.dedent(extra)
        )
        path = tmp_path / "config.yaml"
        path.write_text(text, encoding="utf-8")
        config = load_config(path)
        keys = config.keys.wip_private.parent
        if not keys.exists():
            shutil.copytree(key_files, keys)
        return config

    return factory


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def job_table(tmp_path: Path) -> JobTable:
    """The in-memory job service's side: it outlives every daemon of a test. Its
    job directories are where the configs put the local service's (data/jobs)."""
    return JobTable(tmp_path / "data" / "jobs" / "memory")


DaemonFactory = Callable[[Config], Daemon]


@pytest.fixture
def fake_daemon(clock: FakeClock, job_table: JobTable) -> DaemonFactory:
    """Daemons on the fake clock with the in-memory job service: a scenario runs
    through builds, backoffs and restarts without sleeping. Each call is a
    (re)started daemon over the same jobs."""

    def factory(config: Config) -> Daemon:
        return make_fake_daemon(config, clock, job_table)

    return factory


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, step: float = 0.02) -> None:
    """Poll a condition on the file system until it holds (or fail the test)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(step)


def set_field(apkbuild: Path, field: str, value: str) -> None:
    """Rewrite one top-level `field=` line of an APKBUILD."""
    lines = apkbuild.read_text(encoding="utf-8").splitlines()
    out = [f"{field}={value}" if line.startswith(f"{field}=") else line for line in lines]
    assert out != lines or f"{field}={value}" in lines, f"{field} not in {apkbuild}"
    apkbuild.write_text("\n".join(out) + "\n", encoding="utf-8")


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` with a fixed identity and no user or system configuration."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
        "LC_ALL": "C",
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.strip()


@pytest.fixture
def parse_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The APKBUILDs the desired-state reader parses (it still parses them)."""
    calls: list[str] = []
    real: Callable[[str, str], Apkbuild] = parse_apkbuild

    def counting(text: str, path: str) -> Apkbuild:
        calls.append(path)
        return real(text, path)

    monkeypatch.setattr(reconciler.desired.reader, "parse_apkbuild", counting)
    return calls


@pytest.fixture
def tiny_mount(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs the test can fill up."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the disk-full tests need root to mount a tmpfs")
        pytest.skip("needs root to mount a tmpfs")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path) -> Path:
    """Fill the file system up to the last byte."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 4096, 512, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler
