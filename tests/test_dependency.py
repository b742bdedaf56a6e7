"""Dependency token parsing against apk-formats.md §2.2."""

from __future__ import annotations

import re

import pytest

from reconciler.formats.apkversion import VersionMode, is_valid
from reconciler.formats.dependency import (
    Dependency,
    is_plain_version,
    parse_dependencies,
    parse_dependency,
    strip_operator,
)

# (token, name, op, version, conflict, tag)
VALID = [
    ("so:libc.musl-x86_64.so.1", "so:libc.musl-x86_64.so.1", None, None, False, None),
    ("!vlan", "vlan", None, None, True, None),
    ("busybox>=1.0", "busybox", ">=", "1.0", False, None),
    ("foo=1.0-r0", "foo", "=", "1.0-r0", False, None),
    ("/bin/sh", "/bin/sh", None, None, False, None),
    ("name@testing", "name", None, None, False, "testing"),
    ("name><Q1abc=", "name", "><", "Q1abc=", False, None),
    ("cmd:sh=1.37.0-r30", "cmd:sh", "=", "1.37.0-r30", False, None),
    ("cmd:ssh", "cmd:ssh", None, None, False, None),
    ("pc:glib-2.0", "pc:glib-2.0", None, None, False, None),
    ("so:libstdc++.so.6", "so:libstdc++.so.6", None, None, False, None),
    ("g++", "g++", None, None, False, None),
    ("py3-foo_bar", "py3-foo_bar", None, None, False, None),
    ("lib[x],y", "lib[x],y", None, None, False, None),
    ("foo<1", "foo", "<", "1", False, None),
    ("foo<=1", "foo", "<=", "1", False, None),
    ("foo>2.0_rc1", "foo", ">", "2.0_rc1", False, None),
    ("foo~3.6", "foo", "~", "3.6", False, None),
    ("foo<~3.6", "foo", "<~", "3.6", False, None),
    ("foo>~3.6", "foo", ">~", "3.6", False, None),
    ("foo=1.0~ab12-r3", "foo", "=", "1.0~ab12-r3", False, None),
    ("!foo@edge<2", "foo", "<", "2", True, "edge"),
    ("linux-firmware@pmos>=20240101-r0", "linux-firmware", ">=", "20240101-r0", False, "pmos"),
    (
        "busybox><Q1oJ2C2TcU9ptwLUqSsqeTRbSf8Qk=",
        "busybox",
        "><",
        "Q1oJ2C2TcU9ptwLUqSsqeTRbSf8Qk=",
        False,
        None,
    ),
]


@pytest.mark.parametrize(("token", "name", "op", "version", "conflict", "tag"), VALID)
def test_parse_valid(
    token: str, name: str, op: str | None, version: str | None, conflict: bool, tag: str | None
) -> None:
    dep = parse_dependency(token)
    assert dep == Dependency(name=name, op=op, version=version, conflict=conflict, tag=tag)
    assert str(dep) == token
    assert strip_operator(token) == name


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "empty token"),
        ("!", "missing name"),
        (">=1.0", "missing name"),
        ("!=1.0", "missing name"),
        ("@testing", "missing name"),
        ("foo bar", "character ' '"),
        (" foo", "character ' '"),
        ("foo\x00", "character '\\x00'"),
        ("foo\tbar", "character '\\t'"),
        ("!!vlan", "character '!'"),
        ("foo$", "character '$'"),
        ("foo>=", "operator '>=' without a version"),
        ("foo=", "operator '=' without a version"),
        ("foo><", "operator '><' without a version"),
        ("foo><Q1 abc", "checksum"),
        ("foo@", "empty tag"),
        ("foo@>=1.0", "empty tag"),
        ("foo@te:st", "not allowed in a tag"),
        ("foo@a@b", "not allowed in a tag"),
        ("foo>=1.0_foo", "invalid apk 3.0 version '1.0_foo'"),
        ("foo==1.0", "invalid apk 3.0 version '=1.0'"),
        ("foo=>1.0", "invalid apk 3.0 version '>1.0'"),
        ("foo>=1.0 ", "invalid apk 3.0 version '1.0 '"),
        ("foo>=1.0a1", "digit after the letter"),
    ],
)
def test_parse_malformed(token: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"^dependency ") as info:
        parse_dependency(token)
    assert str(info.value).startswith(f"dependency {token!r}: ")
    assert message in str(info.value)
    with pytest.raises(ValueError):
        strip_operator(token)


def test_version_mode_is_honoured() -> None:
    assert parse_dependency("foo>=1.0a1", mode=VersionMode.APK2).version == "1.0a1"
    assert strip_operator("foo>=1.0a1", mode=VersionMode.APK2) == "foo"
    with pytest.raises(ValueError, match=re.escape("invalid apk 2.14 version '1.0~ab'")):
        parse_dependency("foo>=1.0~ab", mode=VersionMode.APK2)
    assert parse_dependency("foo>=1.0~ab").version == "1.0~ab"


def test_parse_dependencies_real_index_line() -> None:
    # D: and p: values from real Alpine data (apk-formats.md §2.2)
    assert parse_dependencies("!vlan bridge so:libc.musl-x86_64.so.1") == (
        Dependency("vlan", None, None, True, None),
        Dependency("bridge", None, None, False, None),
        Dependency("so:libc.musl-x86_64.so.1", None, None, False, None),
    )
    assert parse_dependencies("/bin/sh cmd:sh=1.37.0-r30") == (
        Dependency("/bin/sh", None, None, False, None),
        Dependency("cmd:sh", "=", "1.37.0-r30", False, None),
    )
    assert parse_dependencies("") == ()


def test_parse_dependencies_reports_the_bad_token() -> None:
    with pytest.raises(ValueError, match=r"^dependency 'b>=x': "):
        parse_dependencies("a b>=x c")


def test_dependency_is_frozen() -> None:
    dep = parse_dependency("foo")
    with pytest.raises(AttributeError):
        dep.name = "bar"  # type: ignore[misc]


def test_plain_versions_are_valid_in_every_mode() -> None:
    """The tokenizer's shortcut never calls an invalid version valid."""
    parts = ["0", "1", "01", "10", "9" * 17, "9" * 18, "99999999999999999999"]
    tails = ["", "a", "_rc", "_rc1", "_p", "_pre2", "_pre_p1", "_x", "_git20240101", "_", "~1f"]
    revisions = ["", "-r0", "-r12", "-r", "-x1", "-r" + "9" * 18]
    plain = 0
    for first in parts:
        for rest in ("", ".0", ".00", ".2.3", "..1", ".", ".9" + "9" * 17):
            for tail in tails:
                for revision in revisions:
                    version = first + rest + tail + revision
                    if is_plain_version(version):
                        plain += 1
                        assert is_valid(version, VersionMode.APK2), version
                        assert is_valid(version, VersionMode.APK3), version
    assert plain > 100
    assert is_plain_version("8.17.11_rc5-r3") and is_plain_version("1.2")
    assert not is_plain_version("1.0a-r0") and not is_plain_version("1.0-r" + "1" * 18)
