"""The excerpt of a failed build's log: the lines a maintainer reads first."""

from __future__ import annotations

import pytest

from reconciler.formats.buildlog import (
    MAX_LINE_CHARS,
    MAX_LINES,
    TAIL_BYTES,
    excerpt_of_bytes,
    log_excerpt,
)

PMBOOTSTRAP_TAIL = """\
(023/118) Installing gcc (14.2.0-r4)
>>> foo-utils: Building foo-utils 1.0-r0
make: *** [Makefile:12: all] Error 2
>>> ERROR: foo-utils: build failed
ERROR: Failed to build foo-utils
See also: <https://postmarketos.org/troubleshooting>
Run 'pmbootstrap log' for details.
"""


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("", ""),
        ("\n\n", ""),
        # No error line: the last lines printed.
        ("one\ntwo\nthree\n", "one\ntwo\nthree"),
        # Error lines win over the noise after them, in their order.
        (
            PMBOOTSTRAP_TAIL,
            "make: *** [Makefile:12: all] Error 2\n>>> ERROR: foo-utils: build failed\n"
            "ERROR: Failed to build foo-utils",
        ),
        # A compiler's error, not a word that merely contains "error".
        (
            "gcc -Werror -c error.c\nfoo.c:3:1: error: expected ';'\n",
            "foo.c:3:1: error: expected ';'",
        ),
        # Colour codes and control characters are dropped; markup stays text.
        ("\x1b[1;31mERROR:\x1b[0m <script>x</script>\x07\n", "ERROR: <script>x</script>"),
    ],
    ids=["empty", "blank", "no-error", "pmbootstrap", "compiler", "control"],
)
def test_excerpt(tail: str, expected: str) -> None:
    assert log_excerpt(tail) == expected


def test_excerpt_is_bounded() -> None:
    errors = "".join(f"ERROR: {i} {'x' * 1000}\n" for i in range(50))
    lines = log_excerpt(errors).splitlines()
    assert len(lines) == MAX_LINES
    assert lines[-1].startswith("ERROR: 49 ")
    assert all(len(line) <= MAX_LINE_CHARS for line in lines)


def test_a_cut_tail_drops_its_partial_first_line() -> None:
    tail = ("ERROR: the middle of a line\n" + "ok\n" * (TAIL_BYTES // 3)).encode()[-TAIL_BYTES:]
    assert "ERROR" not in excerpt_of_bytes(tail)
    assert excerpt_of_bytes(b"\xff\xfeERROR: bad bytes\n") == "\ufffd\ufffdERROR: bad bytes"
