"""apk dependency tokens: ``[!]name[@tag][op version]`` (apk-formats.md §2.2).

This module owns the syntax of one dependency token as it appears in APKINDEX
``D:``/``p:``/``i:`` lines, ``.PKGINFO`` and APKBUILD ``depends``: splitting it
into conflict marker, name, repository tag, operator and version, and refusing
malformed tokens with a message that names the token. Version strings are
checked with `reconciler.apkversion`; what a constraint *means* (does version X
satisfy it) is `apkversion.satisfies`, not this module's business. Pure: no I/O,
no state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

from reconciler.formats.apkversion import InvalidVersion, VersionMode, validate

__all__ = [
    "DEPENDENCY_OPERATORS",
    "Dependency",
    "is_plain_version",
    "parse_dependencies",
    "parse_dependency",
    "strip_operator",
]

# Two-character operators first: the longest operator at a position wins.
DEPENDENCY_OPERATORS = ("<=", ">=", "<~", ">~", "><", "<", "=", ">", "~")
_OPERATOR_CHARS = frozenset("<>=~")
# Package names, plus ":" "/" "," "[" "]" for provides such as so:libc.musl-x86_64.so.1,
# cmd:sh, pc:glib-2.0 and /bin/sh.
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-:/,[]")
_TAG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-")
# Versions valid in every apk mode, known without tokenizing: numbers of at most
# 17 digits (apk 2.14's limit) joined by dots, one suffix, a revision.
_PLAIN_VERSION = re.compile(
    r"[0-9]{1,17}(?:\.[0-9]{1,17})*"
    r"(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]{0,17})?(?:-r[0-9]{1,17})?"
)
# A "><" checksum pin: "Q1" + base64 (or hex), so base64 characters only.
_CHECKSUM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=")


@dataclass(frozen=True, slots=True)
class Dependency:
    """One parsed dependency token.

    ``op`` and ``version`` are both None or both set. For the checksum pin ``><``,
    ``version`` holds the checksum (``Q1...``), not a version. ``conflict`` is the
    leading ``!``; ``tag`` is the repository tag after ``@``.
    """

    name: str
    op: str | None
    version: str | None
    conflict: bool
    tag: str | None

    def __str__(self) -> str:
        """The token in apk's own spelling; parse_dependency(str(d)) == d."""
        text = ("!" if self.conflict else "") + self.name
        if self.tag is not None:
            text += "@" + self.tag
        if self.op is not None and self.version is not None:
            text += self.op + self.version
        return text


def is_plain_version(version: str) -> bool:
    """Whether `version` has the common shape (``1.2.3_rc1-r0``) that is valid in
    every mode; False says nothing: ask `apkversion.is_valid`."""
    return _PLAIN_VERSION.fullmatch(version) is not None


def _first_bad(text: str, allowed: frozenset[str]) -> str | None:
    for char in text:
        if char not in allowed:
            return char
    return None


def parse_dependency(token: str, *, mode: VersionMode = VersionMode.APK3) -> Dependency:
    """Parse one token ``[!]name[@tag][op version]``.

    The version after an operator must be valid in mode (default apk 3.0). Raises
    ValueError with a message of the form "dependency 'x': why".
    """

    if token and _NAME_CHARS.issuperset(token):
        return Dependency(token, None, None, False, None)  # a bare name: the usual token

    def fail(why: str) -> NoReturn:
        raise ValueError(f"dependency {token!r}: {why}")

    if not token:
        fail("empty token")
    conflict = token.startswith("!")
    rest = token[1:] if conflict else token

    op_at = next((i for i, char in enumerate(rest) if char in _OPERATOR_CHARS), len(rest))
    head, constraint = rest[:op_at], rest[op_at:]
    name, at_sign, tag = head.partition("@")

    if not name:
        fail("missing name" if not constraint else f"missing name before {constraint!r}")
    bad = _first_bad(name, _NAME_CHARS)
    if bad is not None:
        fail(f"character {bad!r} is not allowed in a name")
    if at_sign:
        if not tag:
            fail("empty tag after '@'")
        bad = _first_bad(tag, _TAG_CHARS)
        if bad is not None:
            fail(f"character {bad!r} is not allowed in a tag")

    if not constraint:
        return Dependency(name, None, None, conflict, tag if at_sign else None)
    op = next(o for o in DEPENDENCY_OPERATORS if constraint.startswith(o))
    version = constraint[len(op) :]
    if not version:
        fail(f"operator {op!r} without a version")
    if op == "><":
        bad = _first_bad(version, _CHECKSUM_CHARS)
        if bad is not None:
            fail(f"character {bad!r} is not allowed in a checksum")
    elif not is_plain_version(version):
        try:
            validate(version, mode)
        except InvalidVersion as exc:
            fail(str(exc))
    return Dependency(name, op, version, conflict, tag if at_sign else None)


def parse_dependencies(
    field: str, *, mode: VersionMode = VersionMode.APK3
) -> tuple[Dependency, ...]:
    """Parse a space-separated list of tokens (an APKINDEX D:, p: or i: value)."""
    return tuple(parse_dependency(token, mode=mode) for token in field.split())


def strip_operator(token: str, *, mode: VersionMode = VersionMode.APK3) -> str:
    """The bare name of a token: ``!foo@edge>=1.0`` gives ``foo``.

    The token is fully parsed (its version checked in mode), so a malformed one
    raises ValueError.
    """
    return parse_dependency(token, mode=mode).name
