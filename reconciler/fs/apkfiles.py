"""apk package files on disk: read with a size bound, then parsed by `formats.apk`.

A file is read with one os.read of its stat size plus one byte (a buffered
read(max_size + 1) would allocate max_size bytes first, which costs more than
parsing a small package); a file that grows past the bound while read is refused.
Every problem is an ApkError that names the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.formats.apk import ApkError, read_apk_bytes
from reconciler.model.packages import ApkInfo

MAX_APK_BYTES = 512 * 1024 * 1024
_CHUNK = 64 * 1024


def read_apk(path: Path, max_size: int = MAX_APK_BYTES, *, inflate_data: bool = False) -> ApkInfo:
    """Parse the package file at `path` (refusing files larger than `max_size`).

    Like `apk index`, this reads what an index entry needs: by default a data member
    pinned by `.PKGINFO` `datahash` is checked by its sha256 (so its bytes are exactly
    what the control member, and through `C:` the index, names) but not inflated.
    """
    try:
        data = read_limited(path, max_size)
    except OSError as exc:
        raise ApkError(f"{path}: cannot read package: {exc.strerror or exc}") from exc
    return read_apk_bytes(data, str(path), inflate_data=inflate_data)


def read_limited(path: Path, max_size: int) -> bytes:
    """The file's bytes; ApkError when it has (or grows to) more than `max_size`."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        if size > max_size:
            raise ApkError(f"{path}: larger than {max_size} bytes, refusing to read it")
        data = os.read(fd, size + 1)
        if len(data) == size:  # a short read of a regular file is its end
            return data
        parts, total = [data], len(data)
        while total <= max_size:
            chunk = os.read(fd, min(max_size + 1 - total, _CHUNK))
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    raise ApkError(f"{path}: larger than {max_size} bytes, refusing to read it")
