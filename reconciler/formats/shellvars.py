"""Static reading of shell variable assignments, the way pmbootstrap reads APKBUILDs.

Nothing is executed. A line that starts at column 0 with `NAME=` is an
assignment; its value is a quoted string (single and double quotes alike,
possibly spanning lines, continuation lines stripped and joined by single
spaces) or an unquoted word cut at the first `#`. Values are expanded against
the variables assigned so far with `${var}`, `$var`, `${var/search/replace}`
and `${var#prefix}`. A name not assigned so far expands to nothing, as in the
shell (pmbootstrap would keep `$name` literally): `"$depends_dev bc"` without
`depends_dev` is ` bc`, and the operators above on such a name give "" too.
What is not supported stays literal: `$(cmd)`, `${var%x}` and the other
operators, globs in a pattern, nested expansions, special parameters (`$$`,
`$1`, `$@`, ...), a lone `$`. Used by `reconciler.formats.apkbuild`, which
turns the result into fields and names the lines `assignments` reports in its
error messages.

Two caps keep hostile input from exhausting memory (`a="$a$a"` repeated doubles
each line): one per expanded value and one shared by a whole parse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.model.errors import InputError

MAX_VALUE_CHARS = 65_536
MAX_TOTAL_CHARS = 8 * 1024 * 1024

ASSIGN_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_GLOB_CHARS = frozenset("*?[")
# What follows "$" in the shell's special parameters ($$, $?, $1, ...).
_SPECIAL = frozenset("$?#!@*-0123456789")

# A numbered source line: (1-based line number in the file, text without "\n").
Line = tuple[int, str]


class ShellVarsError(InputError):
    """A syntax problem at a given file line (unterminated quote, oversized value)."""

    def __init__(self, lineno: int, message: str) -> None:
        super().__init__(f"line {lineno}: {message}")
        self.lineno = lineno
        self.message = message


@dataclass(slots=True)
class Budget:
    """Characters a whole parse may still produce; one per parse, never shared."""

    remaining: int = MAX_TOTAL_CHARS

    def spend(self, lineno: int, amount: int) -> None:
        self.remaining -= amount
        if self.remaining < 0:
            raise ShellVarsError(lineno, "expanded values exceed the total size limit")


def _operator(inner: str, value: str) -> str | None:
    """Apply the operator text after NAME inside ${...}; None when unsupported."""
    if not inner:
        return value
    if "$" in inner or "{" in inner:
        return None  # nested expansion: not supported, keep literal
    if inner[0] == "#":
        prefix = inner[2:] if inner.startswith("##") else inner[1:]
        if _GLOB_CHARS & set(prefix):
            return None
        # Without glob characters "#" and "##" remove the same literal prefix.
        return value.removeprefix(prefix)
    if inner[0] == "/" and not inner.startswith("//"):
        search, _, replace = inner[1:].partition("/")
        if _GLOB_CHARS & set(search):
            return None
        return value.replace(search, replace, 1) if search else value
    return None


def expand(text: str, variables: Mapping[str, str], lineno: int = 0) -> str:
    """Expand the supported variable references in `text` in one left-to-right pass.

    Substituted text is not expanded again. A name missing from `variables`
    expands to nothing (so does a supported operator on it); unsupported forms
    are kept verbatim.
    """
    out: list[str] = []
    size = 0
    pos = 0
    while True:
        dollar = text.find("$", pos)
        if dollar < 0:
            out.append(text[pos:])
            size += len(text) - pos
            break
        out.append(text[pos:dollar])
        size += dollar - pos
        piece, pos = _reference(text, dollar, variables)
        out.append(piece)
        size += len(piece)
        if size > MAX_VALUE_CHARS:
            raise ShellVarsError(lineno, f"expanded value longer than {MAX_VALUE_CHARS} characters")
    if size > MAX_VALUE_CHARS:
        raise ShellVarsError(lineno, f"expanded value longer than {MAX_VALUE_CHARS} characters")
    return "".join(out)


def _reference(text: str, dollar: int, variables: Mapping[str, str]) -> tuple[str, int]:
    """Expansion of the reference starting at text[dollar] == "$", and where it ends."""
    start = dollar + 1
    if text.startswith("{", start):
        close = text.find("}", start)
        if close < 0:
            return "$", start
        match = _NAME_RE.match(text, start + 1, close)
        if match is not None:
            # An undefined name is "" to the operators too, as in the shell.
            result = _operator(text[match.end() : close], variables.get(match.group(), ""))
            if result is not None:
                return result, close + 1
        return text[dollar : close + 1], close + 1
    if text[start : start + 1] in _SPECIAL:
        return text[dollar : start + 1], start + 1  # $$, $1, $@, ...: not supported
    match = _NAME_RE.match(text, start)
    if match is None:
        return "$", start
    return variables.get(match.group(), ""), match.end()


def _raw_value(lines: Sequence[Line], index: int, name: str, rest: str) -> tuple[str, int]:
    """The unexpanded value starting on lines[index] and the index of its last line."""
    if rest[:1] not in ("'", '"'):
        return rest.split("#", 1)[0].rstrip(), index
    quote, body = rest[0], rest[1:]
    end = body.find(quote)
    if end >= 0:
        return body[:end], index
    pieces = [body.strip()]
    for offset in range(index + 1, len(lines)):
        text = lines[offset][1]
        end = text.find(quote)
        pieces.append((text if end < 0 else text[:end]).strip())
        if end >= 0:
            return " ".join(piece for piece in pieces if piece), offset
    lineno = lines[index][0]
    raise ShellVarsError(lineno, f"unterminated {quote} quote in the value of {name}")


def assignments(
    lines: Sequence[Line],
    variables: dict[str, str],
    budget: Budget,
    linenos: dict[str, int] | None = None,
) -> list[tuple[str, str]]:
    """Read every column-0 assignment of `lines` in order, updating `variables`.

    Returns the (name, expanded value) pairs in file order. Continuation lines of
    a multi-line quoted value are consumed by it and never read as assignments
    themselves (as in shell; pmbootstrap would also parse them). When `linenos`
    is given, each name assigned gets the line its last assignment starts on
    (the one whose value counts).
    """
    found: list[tuple[str, str]] = []
    index = 0
    while index < len(lines):
        lineno, text = lines[index]
        match = ASSIGN_RE.fullmatch(text)
        if match is None:
            index += 1
            continue
        name = match.group(1)
        raw, last = _raw_value(lines, index, name, match.group(2))
        value = expand(raw, variables, lineno)
        budget.spend(lineno, len(value))
        variables[name] = value
        if linenos is not None:
            linenos[name] = lineno
        found.append((name, value))
        index = last + 1
    return found
