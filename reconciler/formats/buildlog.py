"""A build log's excerpt: the few lines that say why a job failed.

Pure. Takes the tail of a log as text and picks what a maintainer reads first:
the last lines that report an error (pmbootstrap's and abuild's `ERROR:`, make's
`Error N`, a compiler's `error:`), or, when none does, the last lines printed.
Terminal colour codes and other control characters are dropped, long lines are
cut, and the whole excerpt is bounded, so it fits a page and a JSON document.
"""

from __future__ import annotations

import re

# How much of a log's end is read for its excerpt.
TAIL_BYTES = 64 * 1024
MAX_LINES = 6
MAX_LINE_CHARS = 240

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ERROR = re.compile(r"\bERROR\b|\b[Ee]rror:|\bError \d+\b|\bFAILED\b")
# Lines that say an error happened but not which (they follow the real one).
_NOISE = re.compile(r"^(?:ERROR: )?(?:see also|run 'pmbootstrap log'|\(\d+/\d+\) )", re.I)


def clean_line(line: str) -> str:
    """One line without colour codes or control characters, cut to a readable length."""
    text = _CONTROL.sub("", _ANSI.sub("", line)).rstrip()
    if len(text) > MAX_LINE_CHARS:
        text = text[: MAX_LINE_CHARS - 1] + "…"
    return text


def log_excerpt(tail: str) -> str:
    """The lines of a log's tail that say why it failed, at most MAX_LINES of them,
    in their order ("" for an empty log). Error lines win; without any, the last
    lines printed."""
    lines = [clean_line(raw) for raw in tail.splitlines()]
    lines = [line for line in lines if line.strip()]
    errors = [line for line in lines if _ERROR.search(line) and not _NOISE.match(line)]
    picked = errors[-MAX_LINES:] if errors else lines[-MAX_LINES:]
    return "\n".join(picked)


def excerpt_of_bytes(tail: bytes) -> str:
    """log_excerpt of raw bytes from a log's end (the first, maybe partial, line of a
    cut tail is dropped; invalid UTF-8 is replaced)."""
    text = tail.decode("utf-8", errors="replace")
    if len(tail) >= TAIL_BYTES:
        text = text.partition("\n")[2]
    return log_excerpt(text)
