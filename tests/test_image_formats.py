"""The pure parts of image jobs: which packages installing some names pulls from
an index (apk's provider rules), and the checksum block of an image job's log."""

from __future__ import annotations

import re

import pytest

from reconciler.formats.imagelog import (
    HEADER,
    ImageLogError,
    parse_sha256_lines,
    sha256_block,
)
from reconciler.formats.installset import InstallError, resolve_install
from reconciler.model.packages import ApkInfo

# --- resolving an install set -------------------------------------------------------


def pkg(
    name: str,
    version: str = "1-r0",
    *,
    depends: str = "",
    provides: str = "",
    install_if: str = "",
    priority: int = 0,
    checksum: str = "",
) -> ApkInfo:
    return ApkInfo(
        pkgname=name,
        version=version,
        arch="aarch64",
        size=1,
        installed_size=1,
        checksum=checksum or f"Q1{name}=",
        provider_priority=priority,
        depends=tuple(depends.split()),
        provides=tuple(provides.split()),
        install_if=tuple(install_if.split()),
    )


INDEX = [
    pkg("base", depends="libc so:libfoo.so.1 cmd:tool busybox"),
    pkg("libfoo", "1.2-r1", provides="so:libfoo.so.1=1"),
    pkg("libfoo-old", "0.9-r0", provides="so:libfoo.so.1=0"),
    pkg("tool", "2-r0", provides="cmd:tool=2-r0"),
    pkg("tool-fancy", "3-r0", provides="cmd:tool=3-r0", priority=10),
    pkg("libc", "1-r0"),
    pkg("libc", "2-r0"),
    pkg("sh-a", provides="/bin/sh"),
    pkg("sh-b", provides="/bin/sh", priority=5),
    pkg("sh-c", provides="/bin/sh", priority=5),
    pkg("ui", depends="base /bin/sh"),
    pkg("ui-lang", install_if="ui lang"),
    pkg("base-openrc", install_if="base openrc"),
    pkg("openrc", depends="!systemd"),
    pkg("systemd"),
    pkg("pinned", depends="libc><Q1other="),
    pkg("needs-new", depends="libfoo>=2"),
]

# (names to install, the packages chosen, the names left to upstream)
RESOLVED = [
    # Own names first, the highest version; so:/cmd: through versioned provides,
    # the highest provider_priority first; Alpine names are external.
    (
        ("base",),
        ["base-1-r0", "libc-2-r0", "libfoo-1.2-r1", "tool-fancy-3-r0"],
        ("busybox",),
    ),
    # A virtual provide is chosen only with a priority; among equals the shortest
    # name, then the name.
    (
        ("ui",),
        ["base-1-r0", "libc-2-r0", "libfoo-1.2-r1", "sh-b-1-r0", "tool-fancy-3-r0", "ui-1-r0"],
        ("busybox",),
    ),
    # install_if joins once all its conditions hold.
    (
        ("base", "openrc"),
        [
            "base-1-r0",
            "base-openrc-1-r0",
            "libc-2-r0",
            "libfoo-1.2-r1",
            "openrc-1-r0",
            "tool-fancy-3-r0",
        ],
        ("busybox",),
    ),
    # A name already provided by a chosen package is not chosen again.
    (("tool", "cmd:tool"), ["tool-2-r0"], ()),
]  # fmt: skip


@pytest.mark.parametrize(("names", "chosen", "external"), RESOLVED)
def test_an_install_set_follows_apks_provider_rules(
    names: tuple[str, ...], chosen: list[str], external: tuple[str, ...]
) -> None:
    found = resolve_install(INDEX, names)
    assert found.lines() == chosen
    assert found.external == external
    assert [p.pkgname for p in found.packages] == sorted(p.pkgname for p in found.packages)


# (names, names the index must provide, the error's text)
FAILING = [
    (("nope",), (), "cannot resolve nope (needed by the image)"),
    (("base",), ("busybox",), "cannot resolve busybox (needed by base)"),
    (("needs-new",), (), "cannot resolve libfoo>=2 (needed by needs-new): the index has libfoo"),
    (("sh-a", "/bin/sh"), (), None),  # satisfied by the chosen sh-a
    (
        ("pinned",),
        (),
        "cannot resolve libc><Q1other= (needed by pinned): the index has libc 1-r0, libc 2-r0",
    ),
    (("openrc", "systemd"), (), "openrc conflicts with systemd (!systemd)"),
]


@pytest.mark.parametrize(("names", "internal", "message"), FAILING)
def test_what_cannot_be_installed_is_named_with_what_needed_it(
    names: tuple[str, ...], internal: tuple[str, ...], message: str | None
) -> None:
    if message is None:
        assert resolve_install(INDEX, names, internal).lines() == ["sh-a-1-r0"]
        return
    with pytest.raises(InstallError) as info:
        resolve_install(INDEX, names, internal)
    assert str(info.value).startswith(message), str(info.value)


def test_a_virtual_name_without_a_priority_cannot_be_chosen() -> None:
    index = [pkg("a", provides="virt"), pkg("b", provides="virt"), pkg("c", depends="virt")]
    with pytest.raises(InstallError, match=r"cannot resolve virt \(needed by c\): only virtual"):
        resolve_install(index, ("c",))


def test_a_checksum_pin_takes_that_very_package() -> None:
    index = [pkg("libc", "1-r0", checksum="Q1one="), pkg("libc", "2-r0", checksum="Q1two=")]
    index.append(pkg("app", depends="libc><Q1one="))
    assert resolve_install(index, ("app",)).lines() == ["app-1-r0", "libc-1-r0"]


def test_a_malformed_token_of_the_index_is_an_error() -> None:
    with pytest.raises(InstallError, match="app: depends: dependency 'a>=': "):
        resolve_install([pkg("app", depends="a>=")], ("app",))


# --- the checksum block -------------------------------------------------------------

A, B = "a" * 64, "0123456789abcdef" * 4


def test_the_block_round_trips() -> None:
    block = sha256_block({"z.img.xz": A, "a-packages.txt": B})
    assert block == f"{HEADER}\nsha256 {B} a-packages.txt\nsha256 {A} z.img.xz\n"
    assert parse_sha256_lines(block) == {"a-packages.txt": B, "z.img.xz": A}


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        # The last block counts; what a runner appends after it does not.
        (
            f"x\n{HEADER}\nsha256 {B} old\n...\n{HEADER}\nsha256 {A} f.img.xz\n\njob ended\n",
            {"f.img.xz": A},
        ),
        (f"{HEADER}\nsha256 {A} a\nsha256 {B} b\nsha256 {A} c d\n", {"a": A, "b": B}),
        (f"{HEADER}\r\nsha256 {A} a\r\n", {"a": A}),
    ],
)
def test_the_last_block_of_a_log_is_read(log: str, expected: dict[str, str]) -> None:
    assert parse_sha256_lines(log) == expected


@pytest.mark.parametrize(
    ("log", "message"),
    [
        ("no block here\n", "no 'image files (sha256):' block"),
        (f"{HEADER}\nsomething else\n", "lists no file"),
        (f"{HEADER}\nsha256 {A} a\nsha256 {B} a\n", "lists 'a' twice"),
        (f"{HEADER}\nsha256 {A} ..\n", "unusable name '..'"),
        (f"{HEADER}\nsha256 {A} a/b\n", "unusable name 'a/b'"),
    ],
)
def test_a_log_without_a_usable_block_is_refused(log: str, message: str) -> None:
    with pytest.raises(ImageLogError, match=re.escape(message)):
        parse_sha256_lines(log)


@pytest.mark.parametrize("files", [{"a/b": A}, {"a": "A" * 64}, {"a": "a" * 63}, {" ": A}])
def test_the_block_lists_only_plain_names_and_sums(files: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        sha256_block(files)
