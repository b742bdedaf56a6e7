"""Tests for reconciler.formats.shellvars: expansion (undefined names as in the
shell), what stays literal, the size caps and the lines of assignments."""

from __future__ import annotations

import pytest

from reconciler.formats.shellvars import (
    MAX_VALUE_CHARS,
    Budget,
    ShellVarsError,
    assignments,
    expand,
)

VARIABLES = {"a": "x", "s": "1.2.3", "v": "v1.2", "empty": ""}

# (id, text, expansion against VARIABLES)
EXPANSIONS = [
    # defined names
    ("plain", "$a-y", "x-y"),
    ("braces", "${a}y", "xy"),
    ("replace first", "${s/./-}", "1-2.3"),
    ("prefix", "${v#v}", "1.2"),
    ("defined but empty", "<$empty>", "<>"),
    # undefined names expand to nothing, as in the shell
    ("undefined plain", "$depends_dev bc", " bc"),
    ("undefined braces", "a${nope}b", "ab"),
    ("undefined replace", "a${nope/a/b}b", "ab"),
    ("undefined replace to empty", "a${nope/a/}b", "ab"),
    ("undefined replace without slash", "a${nope/a}b", "ab"),
    ("undefined prefix", "a${nope#x}b", "ab"),
    ("undefined double-hash prefix", "a${nope##x}b", "ab"),
    ("undefined then defined", "$nope$a", "x"),
    ("undefined longest name", "$ab", ""),
    ("only undefined", "$nope", ""),
    # unsupported forms stay literal, defined or not
    ("command substitution", "$(uname -m)", "$(uname -m)"),
    ("suffix on undefined", "${nope%x}", "${nope%x}"),
    ("suffix on defined", "${s%.*}", "${s%.*}"),
    ("replace-all", "${nope//a/b}", "${nope//a/b}"),
    ("default value", "${nope:-x}", "${nope:-x}"),
    ("length", "${#a}", "${#a}"),
    ("glob prefix", "${nope#*.}", "${nope#*.}"),
    ("glob search", "${nope/*/y}", "${nope/*/y}"),
    ("nested", "${nope/$a/}", "${nope/$a/}"),
    ("nested braces", "${s/${a}/}", "${s/${a}/}"),
    ("empty braces", "${}", "${}"),
    ("lone dollar", "a $ b", "a $ b"),
    ("trailing dollar", "a$", "a$"),
    ("unterminated brace", "${a", "${a"),
    ("pid", "a$$b", "a$$b"),
    ("positional", "$1$a", "$1x"),
    ("all arguments", "$@", "$@"),
    ("status", "$?", "$?"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in EXPANSIONS], ids=[c[0] for c in EXPANSIONS]
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, VARIABLES) == expected


def test_undefined_expansion_keeps_the_value_cap() -> None:
    assert expand("$nope" * MAX_VALUE_CHARS, {}) == ""
    with pytest.raises(ShellVarsError, match="longer than"):
        expand("${nope%x}" * MAX_VALUE_CHARS, {}, lineno=7)


def test_total_budget_still_applies() -> None:
    lines = [(1, "a=" + "x" * 100), *((n, 'b="$a$nope"') for n in range(2, 12))]
    with pytest.raises(ShellVarsError) as caught:
        assignments(lines, {}, Budget(remaining=550))
    assert caught.value.lineno == 6  # 6 values of 100 characters each


# (id, lines of text, {name: line of its last assignment})
LINENOS = [
    ("one per line", "a=1\nb=2", {"a": 1, "b": 2}),
    ("last assignment counts", "a=1\nb=2\na=3", {"a": 3, "b": 2}),
    ("multi-line value: its first line", 'a="1\n2\n3"\nb=4', {"a": 1, "b": 4}),
    ("continuation is no assignment", 'a="1\nb=2"\nc=3', {"a": 1, "c": 3}),
    ("indented and comments skipped", "\tb=1\n# c=2\na=3", {"a": 3}),
    ("empty value", "a=\nb=", {"a": 1, "b": 2}),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in LINENOS], ids=[c[0] for c in LINENOS]
)
def test_assignment_lines(text: str, expected: dict[str, int]) -> None:
    lines = list(enumerate(text.split("\n"), start=1))
    linenos: dict[str, int] = {}
    variables: dict[str, str] = {}
    found = assignments(lines, variables, Budget(), linenos)
    assert linenos == expected
    # Without the dict, the same pairs and values.
    again: dict[str, str] = {}
    assert assignments(lines, again, Budget()) == found and again == variables


def test_undefined_names_in_assignments_are_empty() -> None:
    lines = [(1, 'makedepends="$depends_dev bc"'), (2, "depends_dev=a-dev"), (3, "x=$depends_dev")]
    variables: dict[str, str] = {}
    assert assignments(lines, variables, Budget()) == [
        ("makedepends", " bc"),
        ("depends_dev", "a-dev"),
        ("x", "a-dev"),
    ]
