"""Hostile input: names that try to escape, and build results that lie."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from reconciler.execute.repos import RefusedError, RepoStore, SigningKeys
from reconciler.formats.apkwrite import build_apk
from reconciler.formats.keys import generate_private_key
from reconciler.model.layout import RepoRoots
from reconciler.model.names import RepoKey
from reconciler.model.packages import PkgSpec

from .conftest import ConfigFactory, DaemonFactory

X86 = RepoKey("main", "", "x86_64")

HOSTILE = {
    # directory name -> APKBUILD text
    "a;touch pwned": 'pkgname="a;touch pwned"\npkgver=1\npkgrel=0\narch="all"\n',
    "dollar": 'pkgname=dollar\npkgver="1$(touch pwned)"\npkgrel=0\narch="all"\n',
    "newline": 'pkgname=newline\npkgver=1\npkgrel=0\narch="all"\nsubpackages="x\n../../etc"\n',
    "badarch": 'pkgname=badarch\npkgver=1\npkgrel=0\narch="../x86_64"\n',
    "dotdot": 'pkgname="../dotdot"\npkgver=1\npkgrel=0\narch="all"\n',
    "nul": 'pkgname=nul\npkgver=1\npkgrel=0\narch="all"\nsubpackages="nul\x00x"\n',
}


def files_outside(root: Path, inside: tuple[Path, ...]) -> set[Path]:
    return {
        p for p in root.rglob("*") if p.is_file() and not any(p.is_relative_to(i) for i in inside)
    }


def test_hostile_apkbuilds_are_refused_and_nothing_escapes(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path, tmp_path: Path
) -> None:
    for name, text in HOSTILE.items():
        directory = pmaports / "main" / name
        directory.mkdir()
        (directory / "APKBUILD").write_text(text)
    config = make_config()
    before = files_outside(tmp_path, (config.paths.data, config.paths.html_out))
    cwd = os.getcwd()
    os.chdir(tmp_path)  # a `touch pwned` that ran would land here
    try:
        daemon = fake_daemon(config)
        desired = daemon.read_desired()["main"]
        reasons = {b.pkgname: b.reason for b in desired.broken}
        assert set(reasons) == set(HOSTILE)
        for name, reason in reasons.items():
            assert f"main/{name}/APKBUILD" in reason, reason
        daemon.converge(max_seconds=120)
    finally:
        os.chdir(cwd)
    assert files_outside(tmp_path, (config.paths.data, config.paths.html_out)) == before
    for path in config.paths.data.rglob("*"):
        assert ".." not in path.relative_to(config.paths.data).parts
    # The rest of the tree still published.
    assert (config.paths.final_repo / "main/x86_64/foo-gui-2.0.1-r0.apk").is_file()


@pytest.fixture
def store(tmp_path: Path) -> RepoStore:
    roots = RepoRoots(tmp_path / "wip", tmp_path / "final", tmp_path / "symlink")
    key = generate_private_key(1024)
    keys = SigningKeys(key, "wip.rsa.pub", key.public_key(), "final.rsa.pub")
    return RepoStore(roots, keys)


def artifact(directory: Path, **fields: str) -> Path:
    values = {"pkgname": "foo", "version": "1-r0", "arch": "x86_64", "origin": "foo", **fields}
    data = build_apk(**values, files={"usr/share/foo": b"foo\n"})  # type: ignore[arg-type]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{values['pkgname']}-{values['version']}.apk"
    path.write_bytes(data)
    return path


SPEC = PkgSpec(X86, "foo", "1-r0", "main/foo", "x86_64")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"origin": "bar"}, "origin is 'bar', expected 'foo'"),
        ({"version": "2-r0"}, "version is '2-r0', expected '1-r0'"),
        ({"arch": "aarch64"}, "arch is 'aarch64', expected 'x86_64' or 'noarch'"),
    ],
)
def test_lying_artifacts_are_refused(
    store: RepoStore, tmp_path: Path, fields: dict[str, str], message: str
) -> None:
    out = tmp_path / "artifacts"
    artifact(out, **fields)
    with pytest.raises(RefusedError, match=re.escape(message)):
        store.import_build(SPEC, out)
    assert not (tmp_path / "wip").exists() or not list((tmp_path / "wip").rglob("*.apk"))


def test_renamed_oversized_and_linked_artifacts_are_refused(
    store: RepoStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "artifacts"
    good = artifact(out)
    good.rename(out / "foo-9-r0.apk")
    with pytest.raises(RefusedError, match=re.escape("does not match its .PKGINFO")):
        store.import_build(SPEC, out)
    (out / "foo-9-r0.apk").unlink()
    (out / "foo-1-r0.apk").symlink_to("/etc/passwd")
    with pytest.raises(RefusedError, match="not a regular file"):
        store.import_build(SPEC, out)
    (out / "foo-1-r0.apk").unlink()
    artifact(out)
    monkeypatch.setattr("reconciler.execute.repos.MAX_APK_BYTES", 100)
    with pytest.raises(RefusedError, match="larger than 100 bytes"):
        store.import_build(SPEC, out)
    monkeypatch.undo()
    assert store.import_build(SPEC, out) == ["foo-1-r0.apk"]
