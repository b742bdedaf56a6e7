"""Reading a file that could be anything: only a regular file, never blocking, bounded.

A path taken from outside (a pmaports tree, the trigger directory, a key path in
the configuration) may name a FIFO, a device, a socket, a directory or a symlink
to any of them. `read_regular` opens without following the last component,
without blocking and without becoming a controlling terminal, checks type and
size on the open descriptor (so a swap after a look is harmless), and reads at
most the bound plus one byte. A refusal is a `Refused` that says, in words for
a user, what the file is instead ("not a regular file (a FIFO)").
"""

from __future__ import annotations

import errno
import os
import stat

from reconciler.model.errors import InputError

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 64 * 1024
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISLNK, "a symlink"),
)


class Refused(InputError):
    """A file that is not read, and why, in words for a user ("larger than 10 bytes")."""


def file_kind(mode: int) -> str:
    """What a file that is not regular is, in words ("a FIFO")."""
    return next((words for test, words in _KINDS if test(mode)), "an unknown kind of file")


def kind_at(path: str) -> str:
    """What is at `path`, in words, without following a symlink."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "gone"
    return "a regular file" if stat.S_ISREG(mode) else file_kind(mode)


def check_regular(info: os.stat_result, max_bytes: int) -> None:
    """Refused unless `info` is of a regular file of at most `max_bytes`."""
    if not stat.S_ISREG(info.st_mode):
        raise Refused(f"not a regular file ({file_kind(info.st_mode)})")
    if info.st_size > max_bytes:
        raise Refused(f"larger than {max_bytes} bytes")


def read_regular(
    path: str, max_bytes: int, *, follow_symlinks: bool = False
) -> tuple[os.stat_result, bytes]:
    """The fstat and bytes of the regular file at `path` (a symlink as its last
    component refused, unless `follow_symlinks`); Refused for anything else and
    for more than `max_bytes`, OSError when it cannot be opened or read. Reads
    its stat size plus one byte at once (a read of the bound would allocate the
    bound first), then up to the bound."""
    flags = _OPEN_FLAGS & ~os.O_NOFOLLOW if follow_symlinks else _OPEN_FLAGS
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):  # a symlink; a socket
            raise Refused(f"not a regular file ({kind_at(path)})") from exc
        raise
    try:
        info = os.fstat(fd)
        check_regular(info, max_bytes)
        data = os.read(fd, info.st_size + 1)
        if len(data) == info.st_size:  # a short read of a regular file is its end
            return info, data
        parts, total = [data], len(data)
        while total <= max_bytes:
            chunk = os.read(fd, min(max_bytes + 1 - total, _CHUNK))
            if not chunk:
                return info, b"".join(parts)
            parts.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    raise Refused(f"larger than {max_bytes} bytes")
