"""Publishing to a mirror: a real rsync daemon on loopback receives the final repos."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ConfigFactory, DaemonFactory, set_field, wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def rsync_daemon(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if shutil.which("rsync") is None:
        if os.environ.get("CI"):
            pytest.fail("rsync is missing (.ci/system-packages.sh installs it)")
        pytest.skip("rsync is not installed")
    module = tmp_path / "mirror"
    module.mkdir()
    port = free_port()
    conf = tmp_path / "rsyncd.conf"
    conf.write_text(
        f"pid file = {tmp_path}/rsyncd.pid\nuse chroot = false\naddress = 127.0.0.1\n"
        f"[pmos]\npath = {module}\nread only = false\nuid = root\ngid = root\n"
    )
    proc = subprocess.Popen(
        ["rsync", "--daemon", "--no-detach", f"--port={port}", f"--config={conf}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def accepting() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(accepting, timeout=20)
        yield f"rsync://127.0.0.1:{port}/pmos/", module
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def test_mirror_equals_final_after_each_publish(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    pmaports: Path,
    rsync_daemon: tuple[str, Path],
) -> None:
    target, module = rsync_daemon
    config = make_config(f"mirror:\n  rsync: {target}\n")
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    assert tree(module) == tree(config.paths.final_repo)
    assert (module / "main/x86_64/APKINDEX.tar.gz").is_file()
    assert (module / "extra-repos/systemd/main/armv7/APKINDEX.tar.gz").is_file()

    set_field(pmaports / "main/foo-gui/APKBUILD", "pkgrel", "1")
    shutil.rmtree(pmaports / "main/hello-x86")
    assert daemon.converge(max_seconds=120).all_published
    mirrored = tree(module)
    assert mirrored == tree(config.paths.final_repo)
    assert "main/x86_64/hello-x86-1.0.0-r0.apk" not in mirrored
    assert "main/x86_64/foo-gui-2.0.1-r1.apk" in mirrored

    # An idle pass transfers nothing again.
    result = daemon.run_pass()
    assert result.outcomes == []
