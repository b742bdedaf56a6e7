"""The branch grid cut into pages of bounded size, by package name.

Pure. A branch of Alpine's size has 15,000 packages: one grid page of all of them
is megabytes, no phone shows it, and re-rendering it for every changed package
costs more than everything else a change costs. So a branch whose grid has more
rows than a page holds is cut by the names' first characters, as a printed
index is: every name starting with one character is one page, and a character
with too many names is cut again by the next character, and so on. Then the
neighbouring pages of one cut (the children of one prefix that were not cut
again) are joined while they fit on one page, so that a character with five
packages does not get a page of its own: "pa–pe".

The layout depends only on the names (and how many rows each has: one per split
repository), never on states: a package's row stays on its page whatever
happens to it, and only a package that appears or goes can move boundaries,
and then only among the pages of its prefix's cut.

A page's file is named by the prefix it starts with (`branch/main/py3-a.html`),
with every character but a-z, 0-9 and "-" escaped as `_` and two hex digits
(pkgnames may hold ".", "+", "_" and capitals: no dot-files, no case clashes).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import NamedTuple

GRID_PAGE_ROWS = 256  # at most this many rows on one grid page (unless one name has more)
SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


class GridPart(NamedTuple):
    """One page of a branch's grid: the names from `first` (a name or a prefix of
    one) through those starting with `last`."""

    key: str  # the page's file name without .html ("" for a branch on one page)
    first: str  # the prefix of its first cut
    last: str  # the prefix of its last cut ("" when the page is one cut)
    lowest: str  # its first name: a name's page is the last whose lowest is not after it
    highest: str  # its last name
    rows: int


def file_key(prefix: str) -> str:
    """A prefix as a file name: a-z, 0-9 and "-" kept, every other character as
    `_` and the hex digits of its UTF-8 bytes."""
    if all(c in SAFE for c in prefix):
        return prefix
    return "".join(c if c in SAFE else "".join(f"_{b:02x}" for b in c.encode()) for c in prefix)


def label(part: GridPart) -> str:
    """The page's range as a person reads it: "pa" or "pa–pe"."""
    return f"{part.first}–{part.last}" if part.last else part.first


def grid_parts(
    names: Sequence[tuple[str, int]], max_rows: int = GRID_PAGE_ROWS
) -> tuple[GridPart, ...]:
    """The pages of a grid whose rows are `names` (sorted, each with its number of
    rows): one page ("" key) when they all fit."""
    total = sum(rows for _, rows in names)
    if total <= max_rows:
        first, last = (names[0][0], names[-1][0]) if names else ("", "")
        return (GridPart("", "", "", first, last, total),)
    return tuple(_cut(names, 0, max(max_rows, 1)))


def _cut(names: Sequence[tuple[str, int]], depth: int, max_rows: int) -> list[GridPart]:
    """The pages of `names`, which share their first `depth` characters and do not
    fit on one page: cut by the next character; a cut that does not fit either is
    cut again, the others are joined with their neighbours while they fit."""
    groups: list[tuple[str, list[tuple[str, int]]]] = []
    for name, rows in names:
        prefix = name[: depth + 1]
        if groups and groups[-1][0] == prefix:
            groups[-1][1].append((name, rows))
        else:
            groups.append((prefix, [(name, rows)]))
    if len(groups) == 1 and len(groups[0][1]) > 1:  # one prefix: cut it deeper, no page of it
        return _cut(groups[0][1], depth + 1, max_rows)
    parts: list[GridPart] = []
    run: list[tuple[str, list[tuple[str, int]]]] = []  # neighbouring cuts joined on one page
    run_rows = 0

    def close() -> None:
        nonlocal run, run_rows
        if run:
            last = run[-1][0] if len(run) > 1 else ""
            parts.append(
                GridPart(
                    file_key(run[0][0]),
                    run[0][0],
                    last,
                    run[0][1][0][0],
                    run[-1][1][-1][0],
                    run_rows,
                )
            )
        run, run_rows = [], 0

    for prefix, members in groups:
        rows = sum(r for _, r in members)
        if rows > max_rows and len(members) > 1:
            close()
            parts += _cut(members, depth + 1, max_rows)
            continue
        if run_rows + rows > max_rows:
            close()
        run.append((prefix, members))
        run_rows += rows
    close()
    return parts


def part_of(lowest: Sequence[str], name: str) -> int:
    """The index of the page that holds `name`, given each page's lowest name."""
    return max(bisect_right(lowest, name) - 1, 0)
