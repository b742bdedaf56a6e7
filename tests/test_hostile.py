"""Hostile input: names that try to escape, files in the tree that are not what
they seem (names that are not UTF-8, devices, FIFOs, links out of the tree, huge
files), and build results that lie."""

from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path

import pytest

from reconciler.execute.repos import RefusedError, RepoStore, SigningKeys
from reconciler.formats.apkwrite import build_apk
from reconciler.formats.keys import generate_private_key
from reconciler.model.layout import RepoRoots
from reconciler.model.names import RepoKey
from reconciler.model.packages import PkgSpec
from reconciler.model.progress import PkgState

from .apkcheck import read_index
from .bounded_call import in_time
from .conftest import ConfigFactory, DaemonFactory
from .sample_tree import version_of

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


def final_listing(final: Path) -> dict[str, set[str]]:
    """Every final repository's index: repository -> the apk files it lists."""
    return {
        str(index.parent.relative_to(final)): {
            f"{e['P']}-{e['V']}.apk" for e in read_index(index).entries
        }
        for index in final.rglob("APKINDEX.tar.gz")
    }


def hostile_tree(pmaports: Path, outside: Path) -> dict[str, str]:
    """Files the reader must refuse, added to a published tree: the path of each
    package -> its reason. The tree's published hello-x86 becomes a FIFO."""

    def apkbuild(directory: str) -> Path:
        (pmaports / directory).mkdir(parents=True)
        return pmaports / directory / "APKBUILD"

    good = 'pkgname={}\npkgver=1\npkgrel=0\narch="all"\nlicense="MIT"\n'
    category = os.path.join(os.fsencode(pmaports), b"device", b"\xff")
    os.makedirs(os.path.join(category, b"p"))
    with open(os.path.join(category, b"p", b"APKBUILD"), "w", encoding="utf-8") as p:
        p.write(good.format("p"))
    apkbuild("main/zero").symlink_to("/dev/zero")
    os.mkfifo(apkbuild("main/fifo"))
    apkbuild("main/canary").symlink_to(outside)
    big = good.format("big")
    apkbuild("main/big").write_text(big + "#" * (1024 * 1024 - len(big)) + "\n")  # 1 MiB + 1
    hello = pmaports / "main/hello-x86/APKBUILD"
    hello.unlink()
    os.mkfifo(hello)
    return {
        "device/\\xff/p": "device/\\xff/p/APKBUILD: the name is not UTF-8 (device/\\xff)",
        "main/zero": "main/zero/APKBUILD: a symlink leading out of the pmaports tree",
        "main/fifo": "main/fifo/APKBUILD: not a regular file (a FIFO)",
        "main/canary": "main/canary/APKBUILD: a symlink leading out of the pmaports tree",
        "main/big": "main/big/APKBUILD: larger than 1048576 bytes",
        "main/hello-x86": "main/hello-x86/APKBUILD: not a regular file (a FIFO)",
    }


def test_hostile_files_are_broken_and_the_rest_stays_published(
    make_config: ConfigFactory,
    fake_daemon: DaemonFactory,
    pmaports: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A name that is not UTF-8, APKBUILDs that are devices, FIFOs, links out of
    the tree or too large: each is a broken package with its reason, the daemon
    carries on, what was published stays (the published package whose APKBUILD
    became a FIFO too), and nothing of the file outside the tree shows anywhere."""
    caplog.set_level(logging.DEBUG)
    marker = f"CANARY-{uuid.uuid4()}"
    outside = tmp_path / marker / "APKBUILD"
    outside.parent.mkdir()
    outside.write_text(f'pkgname=canary\npkgver=1\npkgrel=0\narch="all"\npkgdesc="{marker}"\n')
    config = make_config()
    daemon = fake_daemon(config)
    daemon.converge(max_seconds=3600)
    final = config.paths.final_repo
    published = final_listing(final)
    hello = f"hello-x86-{version_of(pmaports / 'main/hello-x86/APKBUILD')}.apk"
    assert hello in published["main/x86_64"]

    expected = hostile_tree(pmaports, outside)
    result = in_time(lambda: daemon.converge(max_seconds=3600), pmaports)

    desired = daemon.read_desired()["main"]
    assert {b.path: b.reason for b in desired.broken} == expected
    broken = {b.pkgname for b in desired.broken}
    assert broken == {"p", "zero", "fifo", "canary", "big", "hello-x86"}
    shown = {s.pkgname: s for s in result.plan.packages if s.repo == X86}
    for name in broken:  # each has a state of its own, with its reason
        assert shown[name].state is PkgState.BROKEN, name
        assert shown[name].reason in expected.values(), name
    # The rest of the tree stays published, and so does the broken hello-x86.
    assert final_listing(final) == published
    assert (final / "main/x86_64" / hello).is_file()
    # Nothing with a surrogate, nothing from outside the tree.
    for b in desired.broken:
        for text in (b.path, b.pkgname, b.reason):
            text.encode("utf-8")
    assert marker not in repr(desired)
    assert marker not in caplog.text
    caplog.text.encode("utf-8")
    for root in (config.paths.html_out, config.paths.data):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert marker.encode() not in path.read_bytes(), path
    assert (config.paths.html_out / "index.html").is_file()


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


def test_the_configured_apkbuild_size_cap_is_the_daemons(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    apkbuild = pmaports / "main/hello-x86/APKBUILD"
    apkbuild.write_text(apkbuild.read_text() + "# padding\n" * 200)  # about 2 KiB
    config = make_config(extra="inputs: {max_apkbuild_bytes: 1024}\n")
    desired = fake_daemon(config).read_desired()["main"]
    reasons = {b.path: b.reason for b in desired.broken}
    assert reasons["main/hello-x86"] == "main/hello-x86/APKBUILD: larger than 1024 bytes"
    sizes = {p.parent.relative_to(pmaports): p.stat().st_size for p in pmaports.rglob("APKBUILD")}
    assert set(reasons) == {str(path) for path, size in sizes.items() if size > 1024}
