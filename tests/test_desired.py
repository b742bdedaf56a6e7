"""pmaports tree -> desired packages: arch filtering, dependency resolution across
split repos, broken APKBUILDs, the parse cache, the commit of a git checkout, and
hostile trees (names that are not UTF-8, APKBUILDs that are not regular files of
the tree or are too large)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.config.branches import BranchConfig
from reconciler.desired.parsecache import ParseCache
from reconciler.desired.reader import DesiredReader
from reconciler.model.names import RepoKey
from reconciler.model.packages import BranchDesired, BrokenPackage, DepRef, PkgSpec

from .bounded_call import in_time
from .conftest import git, set_field

ARCHES = ("x86_64", "aarch64", "armv7")

MAIN_PACKAGES = {
    "x86_64": {
        "crossdirect", "device-demo-laptop", "foo-gui", "foo-utils", "gcc-aarch64",
        "gcc-armv7", "hello-x86", "libfoo", "postmarketos-base", "postmarketos-mkinitfs",
        "postmarketos-ui-console", "postmarketos-ui-demo",
    },
    "aarch64": {
        "crossdirect", "device-demo-phone", "firmware-demo", "foo-gui", "foo-utils",
        "libfoo", "linux-demo", "postmarketos-base", "postmarketos-mkinitfs",
        "postmarketos-ui-console", "postmarketos-ui-demo",
    },
    "armv7": {
        "crossdirect", "foo-utils", "libfoo", "linux-demo", "postmarketos-base",
        "postmarketos-mkinitfs", "postmarketos-ui-console",
    },
}  # fmt: skip
SYSTEMD_PACKAGES = {"foo-utils", "postmarketos-base-systemd", "systemd"}
NOARCH = {
    "postmarketos-base",
    "postmarketos-ui-console",
    "postmarketos-ui-demo",
    "postmarketos-base-systemd",
}


def branch_of(tree: Path, name: str = "main") -> BranchConfig:
    return BranchConfig(name=name, pmaports=tree, arches=ARCHES)


def read(tree: Path, reader: DesiredReader | None = None) -> BranchDesired:
    return (reader or DesiredReader(("systemd",))).read_branch(branch_of(tree))


def main_repo(arch: str) -> RepoKey:
    return RepoKey("main", "", arch)


def systemd_repo(arch: str) -> RepoKey:
    return RepoKey("main", "systemd", arch)


@pytest.fixture
def desired(pmaports: Path) -> BranchDesired:
    return read(pmaports)


def spec(desired: BranchDesired, repo: RepoKey, name: str) -> PkgSpec:
    return desired.repos[repo][name]


# --- package sets ----------------------------------------------------------------


def test_repositories_and_package_sets(desired: BranchDesired) -> None:
    assert desired.branch == "main"
    assert desired.commit == ""  # a plain directory
    assert desired.broken == ()
    assert set(desired.repos) == {main_repo(a) for a in ARCHES} | {systemd_repo(a) for a in ARCHES}
    for arch in ARCHES:
        assert set(desired.repos[main_repo(arch)]) == MAIN_PACKAGES[arch], arch
        assert set(desired.repos[systemd_repo(arch)]) == SYSTEMD_PACKAGES, arch
        for repo in (main_repo(arch), systemd_repo(arch)):
            for name, pkg in desired.repos[repo].items():
                assert (pkg.pkgname, pkg.repo) == (name, repo)


def test_archived_devices_never_appear(desired: BranchDesired) -> None:
    for specs in desired.repos.values():
        assert "device-old-phone" not in specs
        assert not any(s.path.startswith("device/archived/") for s in specs.values())
    assert desired.broken == ()


def test_unconfigured_split_repos_are_ignored(pmaports: Path) -> None:
    without = DesiredReader(()).read_branch(branch_of(pmaports))
    assert set(without.repos) == {main_repo(a) for a in ARCHES}
    assert without.repos == {k: v for k, v in read(pmaports).repos.items() if not k.splitrepo}


def test_versions_paths_and_fields(desired: BranchDesired) -> None:
    libfoo = spec(desired, main_repo("x86_64"), "libfoo")
    assert (libfoo.version, libfoo.path, libfoo.pkgarch) == ("1.2.3-r1", "main/libfoo", "x86_64")
    assert libfoo.license == "LGPL-2.1-or-later"
    assert libfoo.maintainer == "Jane Doe <jane@example.org>"
    base = spec(desired, main_repo("armv7"), "postmarketos-base")
    assert base.depends == ("foo-utils", "busybox")
    assert base.version == "32-r1"
    gcc = spec(desired, main_repo("x86_64"), "gcc-aarch64")
    assert (gcc.version, gcc.path) == ("13.2.1_p20240113-r0", "cross/gcc-aarch64")
    assert gcc.options == ("!check", "!strip")


def test_systemd_foo_utils_is_a_separate_package(desired: BranchDesired) -> None:
    for arch in ARCHES:
        main = spec(desired, main_repo(arch), "foo-utils")
        fork = spec(desired, systemd_repo(arch), "foo-utils")
        assert (main.version, main.path) == ("0.9.1_git20250101-r0", "main/foo-utils")
        assert (fork.version, fork.path) == ("999948.0-r0", "extra-repos/systemd/foo-utils")
        assert fork.depends == ("libfoo", "systemd")
        assert [s.name for s in main.subpackages] == ["foo-utils-doc"]
        assert fork.subpackages == ()
        # The fork builds against systemd from its own repo and libfoo from main.
        assert set(fork.build_deps) == {
            DepRef(main_repo(arch), "libfoo"),
            DepRef(systemd_repo(arch), "systemd"),
        }
        assert main.build_deps == (DepRef(main_repo(arch), "libfoo"),)


# --- dependency resolution -------------------------------------------------------


def test_device_build_deps_go_through_the_versioned_provide(desired: BranchDesired) -> None:
    phone = spec(desired, main_repo("aarch64"), "device-demo-phone")
    assert set(phone.build_deps) == {
        DepRef(main_repo("aarch64"), "postmarketos-base"),
        DepRef(main_repo("aarch64"), "linux-demo"),
        DepRef(main_repo("aarch64"), "postmarketos-mkinitfs"),  # depends="... mkinitfs"
    }
    assert len(phone.build_deps) == 3
    assert phone.depends == ("postmarketos-base", "linux-demo", "mkinitfs")


def test_unsatisfied_versioned_dependency_is_external(pmaports: Path) -> None:
    set_field(
        pmaports / "device/main/device-demo-phone/APKBUILD",
        "depends",
        '"postmarketos-base linux-demo mkinitfs>=99"',
    )
    phone = spec(read(pmaports), main_repo("aarch64"), "device-demo-phone")
    assert {d.pkgname for d in phone.build_deps} == {"postmarketos-base", "linux-demo"}


def test_dev_subpackage_resolves_to_its_origin(desired: BranchDesired) -> None:
    for arch in ARCHES:
        foo = spec(desired, main_repo(arch), "foo-utils")
        assert foo.build_deps == (DepRef(main_repo(arch), "libfoo"),)  # libfoo-dev + libfoo
    gui = spec(desired, main_repo("x86_64"), "foo-gui")
    assert set(gui.build_deps) == {
        DepRef(main_repo("x86_64"), "libfoo"),
        DepRef(main_repo("x86_64"), "foo-utils"),
    }
    assert len(gui.build_deps) == 2  # qt6-qtbase-dev is external


def test_split_repo_dependencies_prefer_their_own_repo(desired: BranchDesired) -> None:
    for arch in ARCHES:
        base = spec(desired, systemd_repo(arch), "postmarketos-base-systemd")
        assert set(base.build_deps) == {
            DepRef(main_repo(arch), "postmarketos-base"),
            DepRef(systemd_repo(arch), "systemd"),
            DepRef(systemd_repo(arch), "foo-utils"),
        }
        assert DepRef(main_repo(arch), "foo-utils") not in base.build_deps
        by_name = {d.pkgname: d.repo for d in base.build_deps}
        assert by_name["foo-utils"] == systemd_repo(arch)
        assert by_name["postmarketos-base"] == main_repo(arch)
        # The main repo never depends on a split repo.
        for pkg in desired.repos[main_repo(arch)].values():
            assert all(not d.repo.splitrepo for d in pkg.build_deps), pkg.pkgname


def test_build_deps_stay_within_the_arch(desired: BranchDesired) -> None:
    for repo, specs in desired.repos.items():
        for pkg in specs.values():
            for dep in pkg.build_deps:
                assert dep.repo.arch == repo.arch
                assert dep.pkgname in desired.repos[dep.repo], (pkg.pkgname, dep)
                assert dep.pkgname != pkg.pkgname


def test_native_deps_of_foreign_arches(desired: BranchDesired) -> None:
    for arch in ARCHES:
        for repo in (main_repo(arch), systemd_repo(arch)):
            for pkg in desired.repos[repo].values():
                if arch == "x86_64":
                    assert pkg.native_deps == (), pkg.pkgname
                    continue
                other = "armv7" if arch == "aarch64" else "aarch64"
                assert f"gcc-{arch}" in pkg.native_deps, (repo, pkg.pkgname)
                assert f"gcc-{other}" not in pkg.native_deps, (repo, pkg.pkgname)
                if pkg.pkgname != "crossdirect":
                    assert "crossdirect" in pkg.native_deps, (repo, pkg.pkgname)
                assert pkg.pkgname not in pkg.native_deps
    assert spec(desired, main_repo("aarch64"), "crossdirect").native_deps == ("gcc-aarch64",)


def test_noarch_packages(desired: BranchDesired) -> None:
    for repo, specs in desired.repos.items():
        for name, pkg in specs.items():
            expected = "noarch" if name in NOARCH else repo.arch
            assert pkg.pkgarch == expected, (repo, name)


def test_subpackage_arches(desired: BranchDesired) -> None:
    for arch in ARCHES:
        systemd = spec(desired, systemd_repo(arch), "systemd")
        assert {s.name: systemd.arch_of(s) for s in systemd.subpackages} == {
            "systemd-dev": arch,
            "systemd-openrc": "noarch",  # explicit systemd-openrc:openrc:noarch
        }
        libfoo = spec(desired, main_repo(arch), "libfoo")
        assert {s.name: libfoo.arch_of(s) for s in libfoo.subpackages} == {
            "libfoo-dev": arch,
            "libfoo-doc": "noarch",
        }
        base = spec(desired, main_repo(arch), "postmarketos-base")
        assert {s.name: base.arch_of(s) for s in base.subpackages} == {
            "postmarketos-base-openrc": "noarch"
        }
    phone = spec(desired, main_repo("aarch64"), "device-demo-phone")
    (firmware,) = phone.subpackages
    assert (firmware.name, phone.arch_of(firmware)) == (
        "device-demo-phone-nonfree-firmware",
        "aarch64",
    )
    assert firmware.depends == ("firmware-demo",)
    assert firmware.description == "GPU/WiFi/BT/Modem/Video firmware"


# --- broken APKBUILDs -----------------------------------------------------------

GOOD_APKBUILD = 'pkgname={name}\npkgver=1.0\npkgrel=0\narch="all"\nlicense="MIT"\n'


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        pytest.param(
            "bad-syntax",
            b'pkgname=bad-syntax\npkgver=1.0\npkgrel=0\narch="all\npkgdesc=x\n',
            "unterminated",
            id="unterminated-quote",
        ),
        pytest.param(
            "bad-version",
            GOOD_APKBUILD.format(name="bad-version").replace("1.0", "1.0_foo").encode(),
            "not a valid apk version",
            id="bad-version",
        ),
        pytest.param(
            "bad-chars",
            GOOD_APKBUILD.format(name="bad-chars").replace("1.0", "1.0$(rm)").encode(),
            "pkgver",
            id="unsafe-pkgver",
        ),
        pytest.param(
            "bad-name",
            GOOD_APKBUILD.format(name="other-name").encode(),
            "does not match the directory",
            id="pkgname-mismatch",
        ),
        pytest.param(
            "bad-utf8",
            GOOD_APKBUILD.format(name="bad-utf8").encode() + b'pkgdesc="\xff"\n',
            "not UTF-8",
            id="not-utf8",
        ),
        pytest.param(
            "bad-crlf",
            GOOD_APKBUILD.format(name="bad-crlf").replace("\n", "\r\n").encode(),
            "CRLF",
            id="crlf",
        ),
    ],
)
def test_broken_apkbuild_is_reported_and_the_rest_resolves(
    pmaports: Path, name: str, content: bytes, why: str
) -> None:
    reader = DesiredReader(("systemd",))
    before = read(pmaports, reader)
    directory = pmaports / "main" / name
    directory.mkdir()
    (directory / "APKBUILD").write_bytes(content)
    after = read(pmaports, reader)
    assert len(after.broken) == 1, after.broken
    (broken,) = after.broken
    assert (broken.path, broken.pkgname) == (f"main/{name}", name)
    assert f"main/{name}/APKBUILD" in broken.reason
    assert why in broken.reason
    assert after.repos == before.repos
    assert all(name not in specs for specs in after.repos.values())


def test_broken_package_in_a_split_repo(pmaports: Path) -> None:
    apkbuild = pmaports / "extra-repos/systemd/systemd/APKBUILD"
    apkbuild.write_text(apkbuild.read_text().replace("pkgver=257.2", 'pkgver="257.2'))
    desired = read(pmaports)
    (broken,) = desired.broken
    assert broken.path == "extra-repos/systemd/systemd"
    assert "extra-repos/systemd/systemd/APKBUILD" in broken.reason
    for arch in ARCHES:
        assert set(desired.repos[systemd_repo(arch)]) == SYSTEMD_PACKAGES - {"systemd"}
        assert set(desired.repos[main_repo(arch)]) == MAIN_PACKAGES[arch]


def test_duplicate_pkgname_in_one_repo_is_broken(pmaports: Path) -> None:
    shutil.copytree(pmaports / "main/hello-x86", pmaports / "device/community/hello-x86")
    desired = read(pmaports)
    (broken,) = desired.broken
    assert broken.pkgname == "hello-x86"
    assert "also in" in broken.reason
    assert spec(desired, main_repo("x86_64"), "hello-x86").path in {
        "main/hello-x86",
        "device/community/hello-x86",
    }


# --- the parse cache -------------------------------------------------------------


def apkbuilds(tree: Path) -> list[str]:
    """Every APKBUILD the reader should parse, as `dir/APKBUILD` relative to the tree."""
    return sorted(
        p.relative_to(tree).as_posix()
        for p in tree.rglob("APKBUILD")
        if not p.relative_to(tree).as_posix().startswith("device/archived/")
    )


def test_unchanged_tree_is_not_parsed_again(pmaports: Path, parse_calls: list[str]) -> None:
    reader = DesiredReader(("systemd",))
    first = read(pmaports, reader)
    assert sorted(parse_calls) == apkbuilds(pmaports)
    assert len(parse_calls) == 18
    parse_calls.clear()
    second = read(pmaports, reader)
    assert parse_calls == []
    assert second == first


def test_touching_one_apkbuild_reparses_only_it(pmaports: Path, parse_calls: list[str]) -> None:
    reader = DesiredReader(("systemd",))
    read(pmaports, reader)
    parse_calls.clear()
    target = pmaports / "main/libfoo/APKBUILD"
    stat = target.stat()
    older = stat.st_mtime_ns - 5_000_000_000  # different, and safely in the past
    os.utime(target, ns=(older, older))
    read(pmaports, reader)
    assert parse_calls == ["main/libfoo/APKBUILD"]

    # A change of content (and mtime) is seen, and parsed once.
    parse_calls.clear()
    set_field(target, "pkgrel", "7")
    os.utime(target, ns=(older - 10**9, older - 10**9))
    changed = read(pmaports, reader)
    assert parse_calls == ["main/libfoo/APKBUILD"]
    assert spec(changed, main_repo("x86_64"), "libfoo").version == "1.2.3-r7"
    parse_calls.clear()
    read(pmaports, reader)
    assert parse_calls == []


def test_new_reader_parses_again(pmaports: Path, parse_calls: list[str]) -> None:
    read(pmaports, DesiredReader(("systemd",)))
    read(pmaports, DesiredReader(("systemd",)))
    assert len(parse_calls) == 36


# --- git checkouts ----------------------------------------------------------------


@pytest.fixture
def checkout(pmaports: Path) -> Path:
    git(pmaports, "init", "-q", "-b", "master")
    git(pmaports, "add", "-A")
    git(pmaports, "commit", "-q", "-m", "initial")
    return pmaports


def test_commit_of_a_git_checkout(checkout: Path) -> None:
    head = git(checkout, "rev-parse", "HEAD")
    assert len(head) == 40
    desired = read(checkout)
    assert desired.commit == head
    # .git is not part of the tree: the packages are the same as without git.
    assert set(desired.repos[main_repo("x86_64")]) == MAIN_PACKAGES["x86_64"]
    assert desired.broken == ()

    set_field(checkout / "main/libfoo/APKBUILD", "pkgrel", "2")
    git(checkout, "commit", "-q", "-am", "bump")
    second = git(checkout, "rev-parse", "HEAD")
    assert second != head
    assert read(checkout).commit == second


def test_commit_after_pack_refs(checkout: Path) -> None:
    head = git(checkout, "rev-parse", "HEAD")
    git(checkout, "pack-refs", "--all")
    assert not (checkout / ".git/refs/heads/master").exists()
    assert head in (checkout / ".git/packed-refs").read_text()
    assert read(checkout).commit == head


def test_commit_of_a_detached_head(checkout: Path) -> None:
    head = git(checkout, "rev-parse", "HEAD")
    git(checkout, "checkout", "-q", "--detach")
    assert (checkout / ".git/HEAD").read_text().strip() == head
    assert read(checkout).commit == head


def test_commit_of_a_worktree(checkout: Path, tmp_path: Path) -> None:
    main_head = git(checkout, "rev-parse", "HEAD")
    worktree = tmp_path / "worktree"
    git(checkout, "worktree", "add", "-q", "-b", "topic", str(worktree))
    assert (worktree / ".git").is_file()
    assert read(worktree).commit == main_head

    set_field(worktree / "main/libfoo/APKBUILD", "pkgrel", "5")
    git(worktree, "commit", "-q", "-am", "topic change")
    topic_head = git(worktree, "rev-parse", "HEAD")
    assert topic_head != main_head
    desired = read(worktree)
    assert desired.commit == topic_head
    assert spec(desired, main_repo("x86_64"), "libfoo").version == "1.2.3-r5"
    assert read(checkout).commit == main_head  # the main checkout did not move

    git(checkout, "pack-refs", "--all")
    assert read(worktree).commit == topic_head
    assert read(checkout).commit == main_head


# --- hostile files: only regular files inside the tree are read ------------------------

CANARY = f"CANARY-{uuid.uuid4()}"


def read_in_time(tree: Path, reader: DesiredReader) -> BranchDesired:
    return in_time(lambda: read(tree, reader), tree)


def canary(tmp_path: Path) -> Path:
    """A file outside the tree that would be a good APKBUILD: its marker is in its
    content and in its path."""
    directory = tmp_path / CANARY
    directory.mkdir(exist_ok=True)
    path = directory / "APKBUILD"
    path.write_text(GOOD_APKBUILD.format(name="hostile") + f'pkgdesc="{CANARY}"\n')
    return path


def make_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        cwd = os.getcwd()
        os.chdir(path.parent)  # a relative name: tmp paths may be longer than sun_path
        try:
            sock.bind(path.name)
        finally:
            os.chdir(cwd)


def apkbuild_larger_than(size: int) -> bytes:
    """A good APKBUILD of `size` + 1 bytes."""
    good = GOOD_APKBUILD.format(name="hostile").encode()
    return good + b"#" * (size - len(good)) + b"\n"


# name -> (make the APKBUILD main/hostile/APKBUILD given it and tmp_path, the reason's words)
HOSTILE_FILES: dict[str, tuple[Callable[[Path, Path], object], str]] = {
    "symlink-to-dev-zero": (
        lambda f, _: f.symlink_to("/dev/zero"),
        "a symlink leading out of the pmaports tree",
    ),
    "symlink-to-etc-shadow": (
        lambda f, _: f.symlink_to("/etc/shadow"),
        "a symlink leading out of the pmaports tree",
    ),
    "symlink-to-a-file-outside": (
        lambda f, tmp: f.symlink_to(canary(tmp)),
        "a symlink leading out of the pmaports tree",
    ),
    "relative-symlink-out": (
        lambda f, tmp: f.symlink_to(os.path.relpath(canary(tmp), f.parent)),
        "a symlink leading out of the pmaports tree",
    ),
    "dangling-symlink-out": (
        lambda f, tmp: f.symlink_to(tmp / CANARY / "missing"),
        "a symlink leading out of the pmaports tree",
    ),
    "fifo": (lambda f, _: os.mkfifo(f), "not a regular file (a FIFO)"),
    "socket": (lambda f, _: make_socket(f), "not a regular file (a socket)"),
    "directory": (lambda f, _: f.mkdir(), "not a regular file (a directory)"),
    "symlink-to-the-tree": (lambda f, _: f.symlink_to("../.."), "not a regular file (a directory)"),
    "symlink-to-a-fifo-inside": (
        lambda f, _: (os.mkfifo(f.parent / "fifo"), f.symlink_to("fifo")),
        "not a regular file (a FIFO)",
    ),
    "dangling-symlink": (lambda f, _: f.symlink_to("nothing"), "cannot read: No such file"),
    "symlink-loop": (lambda f, _: f.symlink_to("APKBUILD"), "cannot read: Too many levels"),
    "oversized": (
        lambda f, _: f.write_bytes(apkbuild_larger_than(1024 * 1024)),
        "larger than 1048576 bytes",
    ),
}


@pytest.mark.parametrize(("make", "why"), HOSTILE_FILES.values(), ids=HOSTILE_FILES)
def test_an_apkbuild_that_is_not_a_regular_file_of_the_tree_is_refused(
    pmaports: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[Path, Path], object],
    why: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    reader = DesiredReader(("systemd",))
    before = read(pmaports, reader)
    (pmaports / "main/hostile").mkdir()
    make(pmaports / "main/hostile/APKBUILD", tmp_path)
    after = read_in_time(pmaports, reader)
    assert [(b.path, b.pkgname) for b in after.broken] == [("main/hostile", "hostile")]
    reason = after.broken[0].reason
    assert reason.startswith("main/hostile/APKBUILD: "), reason
    assert why in reason, reason
    assert after.repos == before.repos  # the rest of the tree still read
    # Nothing outside the tree shows: neither the target's path nor its content.
    assert CANARY not in repr(after) and CANARY not in caplog.text
    assert str(tmp_path) not in reason
    # A refusal is the same object on the next walk: nothing is resolved again.
    assert read_in_time(pmaports, reader) is after


@pytest.mark.parametrize(
    ("parts", "path", "pkgname"),
    [
        pytest.param((b"main", b"\xff"), "main/\\xff", "\\xff", id="package-directory"),
        pytest.param((b"device", b"\xff", b"p"), "device/\\xff/p", "p", id="category"),
        pytest.param(
            (b"extra-repos", b"systemd", b"caf\xe9"),
            "extra-repos/systemd/caf\\xe9",
            "caf\\xe9",
            id="latin-1-in-a-split-repo",
        ),
    ],
)
def test_a_name_that_is_not_utf8_is_refused(
    pmaports: Path,
    caplog: pytest.LogCaptureFixture,
    parts: tuple[bytes, ...],
    path: str,
    pkgname: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    before = read(pmaports)
    directory = os.path.join(os.fsencode(pmaports), *parts)
    os.makedirs(directory)
    with open(os.path.join(directory, b"APKBUILD"), "w", encoding="utf-8") as apkbuild:
        apkbuild.write(GOOD_APKBUILD.format(name="p"))
    after = read(pmaports)
    (broken,) = after.broken
    assert (broken.path, broken.pkgname) == (path, pkgname)
    bad = path if len(parts) == 2 or parts[0] == b"extra-repos" else "device/\\xff"
    assert broken.reason == f"{path}/APKBUILD: the name is not UTF-8 ({bad})"
    assert after.repos == before.repos
    for text in (broken.path, broken.pkgname, broken.reason, caplog.text):
        text.encode("utf-8")  # no surrogate


def test_a_utf8_name_is_not_refused_for_its_bytes(pmaports: Path) -> None:
    directory = pmaports / "main/café"
    directory.mkdir()
    (directory / "APKBUILD").write_text(GOOD_APKBUILD.format(name="café"), encoding="utf-8")
    (broken,) = read(pmaports).broken
    assert broken.path == "main/café"
    assert broken.reason == "main/café/APKBUILD: line 1: pkgname: unsafe package name 'café'"


def test_a_symlink_inside_the_tree_is_read(pmaports: Path, tmp_path: Path) -> None:
    shared = pmaports / ".shared"
    shared.mkdir()
    (shared / "linked").write_text(GOOD_APKBUILD.format(name="linked"))
    (pmaports / "main/linked").mkdir()
    (pmaports / "main/linked/APKBUILD").symlink_to("../../.shared/linked")
    # The tree's root may itself be reached through a symlink: it is resolved.
    link = tmp_path / "tree-link"
    link.symlink_to(pmaports)
    for tree in (pmaports, link):
        desired = read(tree)
        assert desired.broken == ()
        assert spec(desired, main_repo("armv7"), "linked").path == "main/linked"


def test_the_size_bound_is_the_readers(pmaports: Path) -> None:
    size = len((pmaports / "main/libfoo/APKBUILD").read_bytes())
    desired = DesiredReader(("systemd",), max_apkbuild_bytes=size).read_branch(branch_of(pmaports))
    assert "libfoo" in desired.repos[main_repo("x86_64")]
    smaller = DesiredReader(("systemd",), max_apkbuild_bytes=size - 1)
    desired = smaller.read_branch(branch_of(pmaports))
    assert "libfoo" not in desired.repos[main_repo("x86_64")]
    assert (
        BrokenPackage(
            "main/libfoo", "libfoo", f"main/libfoo/APKBUILD: larger than {size - 1} bytes"
        )
        in desired.broken
    )


def test_a_cached_parse_is_not_trusted_past_the_checks(pmaports: Path, tmp_path: Path) -> None:
    """A parse kept by (inode, size, mtime) is used only for a file that still passes:
    moved out of the tree with its identity and linked back, or too large for a
    reader with a smaller bound, it is refused."""
    apkbuild = pmaports / "main/libfoo/APKBUILD"
    largest = max(p.stat().st_size for p in pmaports.rglob("APKBUILD"))
    with apkbuild.open("a") as padding:
        padding.write("#" * largest + "\n")  # the largest APKBUILD of the tree
    size = apkbuild.stat().st_size
    state = tmp_path / "state"
    reader = DesiredReader(("systemd",), ParseCache(state))
    assert read(pmaports, reader).broken == ()
    smaller = DesiredReader(("systemd",), ParseCache(state), max_apkbuild_bytes=size - 1)
    (broken,) = read(pmaports, smaller).broken
    assert broken.reason == f"main/libfoo/APKBUILD: larger than {size - 1} bytes"

    outside = tmp_path / CANARY
    outside.mkdir()
    os.rename(apkbuild, outside / "APKBUILD")  # the same inode, size and mtime
    apkbuild.symlink_to(outside / "APKBUILD")
    for again in (reader, DesiredReader(("systemd",), ParseCache(state))):
        (broken,) = read(pmaports, again).broken
        assert broken.reason == "main/libfoo/APKBUILD: a symlink leading out of the pmaports tree"


def test_a_file_swapped_after_the_stat_is_checked_on_the_open_file(
    pmaports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What is read is what the open descriptor is: a FIFO put in place of a
    regular file between the walk's stat and the open is refused, not waited on."""
    target = pmaports / "main/libfoo/APKBUILD"
    real_scandir = os.scandir

    class Entry:
        """A DirEntry (a C type: it cannot be patched) whose stat swaps the target."""

        def __init__(self, entry: os.DirEntry[str]) -> None:
            self._entry = entry
            self.name, self.path = entry.name, entry.path

        def is_dir(self, *, follow_symlinks: bool = True) -> bool:
            return self._entry.is_dir(follow_symlinks=follow_symlinks)

        def is_symlink(self) -> bool:
            return self._entry.is_symlink()

        def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
            info = self._entry.stat(follow_symlinks=follow_symlinks)
            if self.path == str(target):
                target.unlink()
                os.mkfifo(target)
            return info

    @contextlib.contextmanager
    def scandir(path: str) -> Iterator[list[Entry]]:
        with real_scandir(path) as listing:
            yield [Entry(e) for e in listing]

    monkeypatch.setattr(os, "scandir", scandir)
    desired = read_in_time(pmaports, DesiredReader(("systemd",)))
    (broken,) = desired.broken
    assert broken.reason == "main/libfoo/APKBUILD: not a regular file (a FIFO)"


def test_an_unlistable_directory_is_skipped_and_logged_once(
    pmaports: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_scandir = os.scandir
    hidden = os.path.join(os.fsencode(pmaports), b"main", b"libfoo")

    def scandir(path: str) -> Iterator[os.DirEntry[str]]:
        if os.fsencode(path) == hidden:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    reader = DesiredReader(("systemd",))
    with caplog.at_level(logging.WARNING):
        desired = read(pmaports, reader)
    assert "libfoo" not in desired.repos[main_repo("x86_64")] and desired.broken == ()
    assert [r.getMessage() for r in caplog.records] == [
        f"pmaports tree {pmaports}: main/libfoo: cannot list the directory: Permission denied"
    ]
    caplog.clear()
    read(pmaports, reader)
    assert caplog.records == []  # the same problem again is not logged again


def test_deep_nesting_is_walked(pmaports: Path) -> None:
    depth = sys.getrecursionlimit() + 100
    levels = [os.path.join(os.fsencode(pmaports), b"main", b"d")]
    for _ in range(depth - 1):
        levels.append(os.path.join(levels[-1], b"d"))
    try:
        for level in levels:  # os.makedirs and shutil.rmtree would recurse as deep
            os.mkdir(level)
        with open(os.path.join(levels[-1], b"APKBUILD"), "w", encoding="utf-8") as apkbuild:
            apkbuild.write(GOOD_APKBUILD.format(name="d"))
        desired = read(pmaports)
        assert desired.broken == ()
        assert spec(desired, main_repo("x86_64"), "d").path == "main/" + "/".join(["d"] * depth)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(levels[-1], b"APKBUILD"))
        for level in reversed(levels):
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(level)


# --- what a broken package says (issue 15) ------------------------------------------

KNOWN = "aarch64, armhf, armv7, loongarch64, ppc64le, riscv64, s390x, x86, x86_64"
# directory -> (APKBUILD text, (reason, version, line) when broken, None when not)
REASON_TREE: dict[str, tuple[str, tuple[str, str, int | None] | None]] = {
    "badver": (
        'pkgname=badver\npkgver=1.0-beta\npkgrel=0\narch="all"\n',
        ("main/badver/APKBUILD: line 2: pkgver: invalid characters in '1.0-beta'", "", 2),
    ),
    "apkbadver": (
        'pkgname=apkbadver\npkgrel=0\n\npkgver=1.0_foo\narch="all"\n',
        ("main/apkbadver/APKBUILD: line 4: pkgver: '1.0_foo' is not a valid apk version",
         "1.0_foo-r0", 4),
    ),
    "badrel": (
        'pkgname=badrel\npkgver=1.0\npkgrel=1a\narch="all"\n',
        ("main/badrel/APKBUILD: line 3: pkgrel: "
         "'1a' is not a non-negative integer without leading zeros", "", 3),
    ),
    "badname": (
        'pkgname="bad;name"\npkgver=1.0\npkgrel=0\narch="all"\n',
        ("main/badname/APKBUILD: line 1: pkgname: unsafe package name 'bad;name'", "", 1),
    ),
    "noarch": (
        "pkgname=noarch\npkgver=1.0\npkgrel=0\n",
        ("main/noarch/APKBUILD: arch: missing", "", None),
    ),
    "badarch": (
        '# comment\npkgname=badarch\npkgver=1.0\npkgrel=2\narch="x86_65"\n',
        (f"main/badarch/APKBUILD: line 5: arch: 'x86_65' is not an arch apk knows ({KNOWN})",
         "1.0-r2", 5),
    ),
    "negbadarch": (
        'pkgname=negbadarch\npkgver=1.0\npkgrel=0\narch="all\n\t!x86_65"\n',
        ("main/negbadarch/APKBUILD: line 4: arch: "
         f"'x86_65' is not an arch apk knows ({KNOWN})", "1.0-r0", 4),
    ),
    "armonly": ('pkgname=armonly\npkgver=1.0\npkgrel=0\narch="armhf"\n', None),
    "mipsonly": ('pkgname=mipsonly\npkgver=1.0\npkgrel=0\narch="mips64el"\n', None),
    "notarm": ('pkgname=notarm\npkgver=1.0\npkgrel=0\narch="all !armhf"\n', None),
    "usesundef": (
        'pkgname=usesundef\npkgver=1.0\npkgrel=0\narch="all"\nmakedepends="$depends_dev bc"\n',
        None,
    ),
    "bc": ('pkgname=bc\npkgver=1.0\npkgrel=0\narch="noarch"\n', None),
}  # fmt: skip


def write_tree(root: Path, apkbuilds: dict[str, str]) -> Path:
    for name, text in apkbuilds.items():
        (root / "main" / name).mkdir(parents=True)
        (root / "main" / name / "APKBUILD").write_text(text, encoding="utf-8")
    return root


def test_broken_packages_name_file_line_and_what(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", {name: text for name, (text, _) in REASON_TREE.items()})
    branch = BranchConfig(name="main", pmaports=tree, arches=("x86_64",))
    desired = DesiredReader(()).read_branch(branch)
    expected = {
        f"main/{name}": BrokenPackage(f"main/{name}", name, *broken)
        for name, (_, broken) in REASON_TREE.items()
        if broken is not None
    }
    assert {b.path: b for b in desired.broken} == expected
    repo = main_repo("x86_64")
    # A known arch this branch does not build is nowhere here, and not broken.
    assert set(desired.repos[repo]) == {"notarm", "usesundef", "bc"}
    # An undefined variable is nothing: the only build dependency is bc.
    assert desired.repos[repo]["usesundef"].build_deps == (DepRef(repo, "bc"),)


def test_an_arch_the_branch_is_configured_with_is_known(tmp_path: Path) -> None:
    tree = write_tree(
        tmp_path / "tree",
        {
            "custom": 'pkgname=custom\npkgver=1.0\npkgrel=0\narch="myarch"\n',
            "typo": 'pkgname=typo\npkgver=1.0\npkgrel=0\narch="x86_64 myarhc"\n',
        },
    )
    branch = BranchConfig(name="main", pmaports=tree, arches=("x86_64", "myarch"))
    desired = DesiredReader(()).read_branch(branch)
    assert set(desired.repos[main_repo("myarch")]) == {"custom"}
    assert desired.repos[main_repo("x86_64")] == {}
    (typo,) = desired.broken
    listed = "aarch64, armhf, armv7, loongarch64, myarch, ppc64le, riscv64, s390x, x86, x86_64"
    assert typo == BrokenPackage(
        "main/typo",
        "typo",
        f"main/typo/APKBUILD: line 4: arch: 'myarhc' is not an arch apk knows ({listed})",
        "1.0-r0",
        4,
    )
