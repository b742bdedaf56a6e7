"""apk version strings: validation, ordering and constraint matching.

This module owns everything about apk package *version strings*
(apk-formats.md §3): whether a string is a valid version, how two versions
order, and whether a version satisfies a dependency constraint such as
``>=1.2-r0`` or ``~3.6``. It does no I/O and has no state.

Two dialects are implemented, selected by `VersionMode`:

* ``VersionMode.APK3`` (default): apk-tools 3.0. Components after a ``.`` that
  start with ``0`` compare as strings, ``~hash`` is allowed, validation is strict.
* ``VersionMode.APK2``: apk-tools 2.14. Leading zeros follow the "k zeros give
  -(k-1)" rule, ``~`` is invalid, validation is lax, 18+ digit numbers are invalid.

Both dialects cut a version into typed tokens and walk the two token lists in
lockstep (§3.2); they differ only in how a string is tokenised and validated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, NamedTuple

from reconciler.model.errors import InputError

if TYPE_CHECKING:
    from _typeshed import SupportsAllComparisons

__all__ = [
    "VERSION_OPERATORS",
    "InvalidVersion",
    "VersionMode",
    "compare",
    "is_valid",
    "satisfies",
    "sort_key",
    "validate",
]

VERSION_OPERATORS = frozenset({"<", "<=", "=", ">=", ">", "~", "<~", ">~"})

# Suffix names and values, pre-release ones first so that "pre" is tried before "p".
_SUFFIXES = (
    ("alpha", -4),
    ("beta", -3),
    ("pre", -2),
    ("rc", -1),
    ("cvs", 0),
    ("svn", 1),
    ("git", 2),
    ("hg", 3),
    ("p", 4),
)
_V2_MAX_DIGITS = 17  # apk 2.14: a number of 18 or more digits is invalid
_UINT64_MAX = 2**64 - 1  # apk 3.0: every number must fit in uint64


class VersionMode(StrEnum):
    """Which apk-tools' version semantics to apply."""

    APK3 = "3.0"
    APK2 = "2.14"


class InvalidVersion(InputError):
    """A string that is not a valid apk version in the given mode."""

    def __init__(self, version: str, reason: str, mode: VersionMode = VersionMode.APK3) -> None:
        super().__init__(f"invalid apk {mode} version {version!r}: {reason}")
        self.version = version
        self.reason = reason
        self.mode = mode


class _Kind(IntEnum):
    """Token types in their §3.2 order (3.0 slots ``HASH`` before the revision)."""

    INVALID = -1  # only seen by the unvalidated 2.14 comparison
    DOT = 0  # "digit-or-zero": a component after "."
    DIGIT = 1
    LETTER = 2
    SUFFIX = 3
    SUFFIX_NO = 4
    HASH = 5
    REVISION = 6
    END = 7

    @property
    def label(self) -> str:
        return self.name.lower().replace("_no", " number").replace("dot", "'.' component")


class _Token(NamedTuple):
    """One token. Equal kinds compare by (num, text)."""

    kind: _Kind
    num: int = 0
    text: str = ""


# (previous, next) kind pairs allowed in 2.14 although next sorts before previous.
_V2_BACKSTEPS = frozenset(
    {(_Kind.DIGIT, _Kind.DOT), (_Kind.SUFFIX_NO, _Kind.SUFFIX), (_Kind.LETTER, _Kind.DIGIT)}
)


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def _run_end(s: str, pos: int, chars: str) -> int:
    """Index just past the run of `chars` starting at pos."""
    while pos < len(s) and s[pos] in chars:
        pos += 1
    return pos


def _match_suffix(s: str, pos: int) -> tuple[str, int] | None:
    for name, value in _SUFFIXES:
        if s.startswith(name, pos):
            return name, value
    return None


def _scan_v2(s: str) -> tuple[list[_Token], str | None]:
    """Tokenise as apk 2.14 does. Returns the tokens (ending in END or INVALID) and,
    when INVALID was reached, why."""
    tokens: list[_Token] = []
    kind = _Kind.DIGIT
    pos = 0
    while True:
        if kind is _Kind.END or pos >= len(s):
            tokens.append(_Token(_Kind.END))
            return tokens, None
        if kind is _Kind.DOT and s[pos] == "0":
            # k leading zeros: value -(k-1), eat k-1 zeros, the rest is a plain number.
            zeros = _run_end(s, pos, "0") - pos
            tokens.append(_Token(_Kind.DOT, -(zeros - 1)))
            pos += zeros - 1
            kind = _Kind.DIGIT
            continue
        if kind is _Kind.LETTER:
            tokens.append(_Token(kind, ord(s[pos])))
            pos += 1
        elif kind is _Kind.SUFFIX:
            match = _match_suffix(s, pos)
            if match is None:
                tokens.append(_Token(_Kind.INVALID))
                return tokens, f"unknown suffix at offset {pos}"
            tokens.append(_Token(kind, match[1]))
            pos += len(match[0])
        else:  # DOT, DIGIT, SUFFIX_NO, REVISION: a decimal number, possibly empty
            end = _run_end(s, pos, "0123456789")
            if end - pos > _V2_MAX_DIGITS:
                tokens.append(_Token(_Kind.INVALID))
                return tokens, f"number {s[pos:end]!r} has 18 or more digits"
            tokens.append(_Token(kind, int(s[pos:end] or "0")))
            pos = end
        kind, pos, reason = _next_kind_v2(s, pos, kind)
        if reason is not None:
            tokens.append(_Token(_Kind.INVALID))
            return tokens, reason


def _next_kind_v2(s: str, pos: int, prev: _Kind) -> tuple[_Kind, int, str | None]:
    """Decide (2.14 rules) what token starts at pos, consuming any separator."""
    if pos >= len(s):
        return _Kind.END, pos, None
    c = s[pos]
    if prev in (_Kind.DIGIT, _Kind.DOT) and "a" <= c <= "z":
        nxt = _Kind.LETTER
    elif prev is _Kind.LETTER and _is_digit(c):
        nxt = _Kind.DIGIT
    elif prev is _Kind.SUFFIX and _is_digit(c):
        nxt = _Kind.SUFFIX_NO
    elif c == ".":
        nxt, pos = _Kind.DOT, pos + 1
    elif c == "_":
        nxt, pos = _Kind.SUFFIX, pos + 1
    elif c == "-" and s.startswith("r", pos + 1):
        nxt, pos = _Kind.REVISION, pos + 2
    elif c == "-":
        return _Kind.INVALID, pos, f"'-' at offset {pos} is not followed by 'r'"
    else:
        return _Kind.INVALID, pos, f"unexpected character {c!r} at offset {pos}"
    if nxt < prev and (prev, nxt) not in _V2_BACKSTEPS:
        return _Kind.INVALID, pos, f"a {nxt.label} may not follow a {prev.label}"
    return nxt, pos, None


def _scan_v3(s: str) -> tuple[list[_Token], str | None]:
    """Tokenise as apk 3.0 does:
    number{.number}[letter]{_suffix[number]}[~hash][-rN].
    Long because it is one pass over the string, part by part, as apk-tools' is."""
    tokens: list[_Token] = []
    digits = "0123456789"

    def number(start: int, what: str) -> tuple[int, str | None]:
        end = _run_end(s, start, digits)
        if end == start:
            return end, f"{what} expected at offset {start}"
        if int(s[start:end]) > _UINT64_MAX:
            return end, f"number {s[start:end]!r} does not fit in 64 bits"
        return end, None

    pos, reason = number(0, "a number")
    if reason is not None:
        return tokens, reason
    tokens.append(_Token(_Kind.DIGIT, int(s[:pos])))
    while s.startswith(".", pos):
        end, reason = number(pos + 1, "a number after '.'")
        if reason is not None:
            return tokens, reason
        component = s[pos + 1 : end]
        if component.startswith("0"):
            # Compared as a string; sorts below every component without a leading 0.
            tokens.append(_Token(_Kind.DOT, -1, component))
        else:
            tokens.append(_Token(_Kind.DOT, int(component)))
        pos = end
    if pos < len(s) and "a" <= s[pos] <= "z":
        tokens.append(_Token(_Kind.LETTER, ord(s[pos])))
        pos += 1
        if pos < len(s) and _is_digit(s[pos]):
            return tokens, f"digit after the letter at offset {pos}"
    while s.startswith("_", pos):
        match = _match_suffix(s, pos + 1)
        if match is None:
            what = "empty suffix" if pos + 1 == len(s) else "unknown suffix"
            return tokens, f"{what} at offset {pos}"
        tokens.append(_Token(_Kind.SUFFIX, match[1]))
        pos += 1 + len(match[0])
        if pos < len(s) and _is_digit(s[pos]):
            end, reason = number(pos, "a suffix number")
            if reason is not None:
                return tokens, reason
            tokens.append(_Token(_Kind.SUFFIX_NO, int(s[pos:end])))
            pos = end
    if s.startswith("~", pos):
        end = _run_end(s, pos + 1, "0123456789abcdef")
        if end == pos + 1:
            return tokens, f"'~' at offset {pos} is not followed by lowercase hex"
        tokens.append(_Token(_Kind.HASH, 0, s[pos + 1 : end]))
        pos = end
    if s.startswith("-r", pos):
        end, reason = number(pos + 2, "a revision number")
        if reason is not None:
            return tokens, reason
        tokens.append(_Token(_Kind.REVISION, int(s[pos + 2 : end])))
        pos = end
    if pos < len(s):
        return tokens, f"unexpected character {s[pos]!r} at offset {pos}"
    tokens.append(_Token(_Kind.END))
    return tokens, None


def _tokenize(version: str, mode: VersionMode) -> list[_Token]:
    """The tokens of a valid version, ending in END; InvalidVersion otherwise."""
    if not version:
        raise InvalidVersion(version, "empty version", mode)
    scan = _scan_v3 if mode is VersionMode.APK3 else _scan_v2
    tokens, reason = scan(version)
    if reason is not None:
        raise InvalidVersion(version, reason, mode)
    return tokens


def _tail(ta: _Token, tb: _Token) -> int:
    """Order two versions whose walk reached tokens of different kinds (§3.2 step 3)."""
    if ta.kind is _Kind.SUFFIX and ta.num < 0:
        return -1  # a pre-release suffix makes the longer version smaller
    if tb.kind is _Kind.SUFFIX and tb.num < 0:
        return 1
    return -1 if ta.kind > tb.kind else 1  # the later kind (END last) is smaller


def _walk(a: list[_Token], b: list[_Token], *, fuzzy: bool = False) -> int:
    """Walk both token lists in lockstep (§3.2). With fuzzy, b ending first while
    everything so far was equal counts as equal (b is a token prefix of a)."""
    for ta, tb in zip(a, b, strict=False):
        if fuzzy and tb.kind is _Kind.END:
            return 0
        if ta.kind is not tb.kind:
            return _tail(ta, tb)
        if ta.kind in (_Kind.END, _Kind.INVALID):
            return 0
        va, vb = (ta.num, ta.text), (tb.num, tb.text)
        if va != vb:
            return -1 if va < vb else 1
    raise AssertionError("token lists always end in END or INVALID")


def _compare_v2_unvalidated(a: str, b: str) -> int:
    """What apk 2.14's ``apk version -t`` prints, which compares without validating:
    both walks stop at the first invalid token, INVALID sorting before every kind.
    Not public: callers must use compare(), which refuses invalid input."""
    return _walk(_scan_v2(a)[0], _scan_v2(b)[0])


def validate(version: str, mode: VersionMode = VersionMode.APK3) -> str:
    """Return version unchanged if valid in mode, else raise InvalidVersion."""
    _tokenize(version, mode)
    return version


def is_valid(version: str, mode: VersionMode = VersionMode.APK3) -> bool:
    """Whether version is a valid apk version in mode (``apk version -c``)."""
    try:
        _tokenize(version, mode)
    except InvalidVersion:
        return False
    return True


def compare(a: str, b: str, mode: VersionMode = VersionMode.APK3) -> int:
    """-1, 0 or 1 as a is older than, equal to or newer than b.

    Raises InvalidVersion if either operand is invalid in mode."""
    return _walk(_tokenize(a, mode), _tokenize(b, mode))


def sort_key(
    mode: VersionMode = VersionMode.APK3,
) -> Callable[[str], SupportsAllComparisons]:
    """A key for sorted()/max() that orders version strings by compare() in mode."""

    def cmp(a: str, b: str) -> int:
        return compare(a, b, mode)

    return functools.cmp_to_key(cmp)


def satisfies(candidate: str, op: str, wanted: str, mode: VersionMode = VersionMode.APK3) -> bool:
    """Whether version candidate satisfies the constraint ``op wanted``.

    ``~`` is a prefix match on tokens: ``3.6.9 ~ 3.6`` and ``3.6_pre1 ~ 3.6`` hold,
    ``3.60 ~ 3.6`` and ``3.8.0 ~ 3.8.1`` do not. ``<~`` and ``>~`` are "less than or
    fuzzy-equal" and "greater than or fuzzy-equal". Raises ValueError for an unknown
    operator and InvalidVersion for an invalid operand."""
    if op not in VERSION_OPERATORS:
        raise ValueError(f"unknown version operator {op!r}")
    a, b = _tokenize(candidate, mode), _tokenize(wanted, mode)
    result = _walk(a, b, fuzzy="~" in op)
    match op:
        case "<":
            return result < 0
        case "<=" | "<~":
            return result <= 0
        case "=" | "~":
            return result == 0
        case ">=" | ">~":
            return result >= 0
        case _:  # ">"
            return result > 0
