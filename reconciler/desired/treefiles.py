"""Files of a pmaports tree, read as if an attacker had laid the tree out.

git carries names that are not UTF-8 and symlinks to anywhere, and a plain
directory may hold FIFOs, sockets and devices. Only regular files inside the
tree are read (`fs.regularfile` reads them: never blocking, bounded, checked on
the open descriptor); a symlink counts only while its real path stays below the
tree's real root, and names that are not UTF-8 are told apart and escaped. A
refusal is a `Refused` whose words never hold a path outside the tree nor
anything read from there.
"""

from __future__ import annotations

import os

from reconciler.fs.regularfile import Refused


def utf8_name(name: str) -> str | None:
    """A name from os.scandir as text, or None when its bytes are not UTF-8."""
    if name.isascii():
        return name
    try:
        return os.fsencode(name).decode("utf-8")
    except UnicodeDecodeError:
        return None


def escaped_name(name: str) -> str:
    """The name with the bytes that are not UTF-8 escaped (byte 0xff -> `\\xff`)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def inside_target(link: str, real_root: str) -> str:
    """The real path of the symlink at `link`; Refused when it leads out of
    `real_root` (itself a real path). The target is never named."""
    real = os.path.realpath(link)
    if os.path.commonpath((real_root, real)) != real_root:
        raise Refused("a symlink leading out of the pmaports tree")
    return real
