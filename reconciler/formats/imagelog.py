"""The checksum block an image job prints at the end of its log, and its reader.

Pure. The block is what the daemon verifies an image job's files against before
it publishes them, so its shape is exact:

    image files (sha256):
    sha256 <64 lowercase hex digits> <file name>
    ...

one line per file the job wrote into `artifacts/`, sorted by name, each name a
plain file name (no `/`, no spaces). `parse_sha256_lines` reads the last such
block of a log (lines after the last header line, up to the first line that is
not a checksum line); anything a job printed earlier, or a runner appends after
it, does not count.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from reconciler.model.errors import InputError

HEADER = "image files (sha256):"
_LINE = re.compile(r"sha256 ([0-9a-f]{64}) (\S+)")
# What a listed file name may be: a plain name, safe in a path.
_FILE_NAME = re.compile(r"[A-Za-z0-9._+~-]+")


class ImageLogError(InputError):
    """An image job's log has no usable checksum block."""


def sha256_block(files: Mapping[str, str]) -> str:
    """The block for these files (name -> sha256 hex), ending in a newline."""
    lines = [HEADER]
    for name in sorted(files):
        if not is_listed_name(name) or not re.fullmatch(r"[0-9a-f]{64}", files[name]):
            raise ValueError(f"cannot list {name!r} with sha256 {files[name]!r}")
        lines.append(f"sha256 {files[name]} {name}")
    return "\n".join(lines) + "\n"


def is_listed_name(name: str) -> bool:
    """A file name the block may list: a plain name, not `.` or `..`."""
    return bool(_FILE_NAME.fullmatch(name)) and name not in {".", ".."}


def parse_sha256_lines(log_text: str) -> dict[str, str]:
    """File name -> sha256 hex from the last checksum block of a log.

    Raises ImageLogError when the log has no block, the block lists nothing, a
    line of it names an unusable file name, or a name is listed twice."""
    lines = log_text.splitlines()
    starts = [number for number, line in enumerate(lines) if line.rstrip() == HEADER]
    if not starts:
        raise ImageLogError(f"no {HEADER!r} block in the log")
    found: dict[str, str] = {}
    for line in lines[starts[-1] + 1 :]:
        match = _LINE.fullmatch(line.rstrip())
        if match is None:
            break
        digest, name = match.groups()
        if not is_listed_name(name):
            raise ImageLogError(f"the log's checksum block lists an unusable name {name!r}")
        if name in found:
            raise ImageLogError(f"the log's checksum block lists {name!r} twice")
        found[name] = digest
    if not found:
        raise ImageLogError(f"the log's {HEADER!r} block lists no file")
    return found
