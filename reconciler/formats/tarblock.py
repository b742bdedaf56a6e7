"""Tar blocks and gzip members as apk-tools and abuild write them, and a strict tar reader.

Three header styles occur in apk files (apk-formats.md §1.7):

* `APKINDEX_STYLE`: what `apk index` writes: GNU magic, size and mtime as 12 octal digits
  without NUL, uname/gname `root`.
* `SIGN_STYLE`: what `abuild-sign` writes (GNU tar, numeric owner): GNU magic, 11 digits
  plus NUL, empty uname/gname.
* `POSIX_STYLE`: what abuild's `tar --format=posix` writes for package contents: POSIX
  magic `ustar\\0` `00`, 11 digits plus NUL, uname/gname `root`.

The reader accepts exactly what apk needs (regular files, directories, links, `x`/`g` pax
headers, GNU `L` long names) and raises `TarError` on anything malformed: bad checksums,
sizes that run past the data, non-octal numbers, broken pax records, invalid UTF-8 names.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from reconciler.model.errors import InputError

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
GNU_MAGIC = b"ustar  \x00"
POSIX_MAGIC = b"ustar\x0000"


class TarError(InputError):
    """A tar stream that does not parse; the message says where and what."""


@dataclass(frozen=True, slots=True)
class HeaderStyle:
    magic: bytes
    wide_numbers: bool  # size and mtime as 12 octal digits without a NUL
    owner: bytes  # uname and gname


APKINDEX_STYLE = HeaderStyle(GNU_MAGIC, True, b"root")
SIGN_STYLE = HeaderStyle(GNU_MAGIC, False, b"")
POSIX_STYLE = HeaderStyle(POSIX_MAGIC, False, b"root")


def _octal(value: int, digits: int, what: str) -> bytes:
    if value < 0 or value >= 8**digits:
        raise ValueError(f"tar {what} {value} does not fit in {digits} octal digits")
    return b"%0*o" % (digits, value)


def _number(value: int, style: HeaderStyle, what: str) -> bytes:
    if style.wide_numbers:
        return _octal(value, 12, what)
    return _octal(value, 11, what) + b"\x00"


def header(
    name: bytes,
    *,
    size: int,
    mtime: int,
    style: HeaderStyle,
    mode: int = 0o644,
    typeflag: bytes = b"0",
) -> bytes:
    """One 512-byte header block; `name` is at most 100 bytes (use a pax `path` beyond)."""
    if not name or len(name) > 100 or b"\x00" in name:
        raise ValueError(f"tar entry name {name!r} must be 1 to 100 bytes without NUL")
    buf = bytearray(BLOCK)
    buf[0 : len(name)] = name
    buf[100:108] = _octal(mode, 7, "mode") + b"\x00"
    buf[108:116] = b"0000000\x00"
    buf[116:124] = b"0000000\x00"
    buf[124:136] = _number(size, style, "size")
    buf[136:148] = _number(mtime, style, "mtime")
    buf[148:156] = b" " * 8
    buf[156:157] = typeflag
    buf[257:265] = style.magic
    buf[265 : 265 + len(style.owner)] = style.owner
    buf[297 : 297 + len(style.owner)] = style.owner
    buf[148:156] = b"%06o\x00 " % sum(buf)
    return bytes(buf)


def padded(content: bytes) -> bytes:
    """Content followed by zero bytes up to the next 512-byte boundary."""
    return content + bytes(-len(content) % BLOCK)


def pax_records(records: list[tuple[str, str]]) -> bytes:
    """Encode pax extended header records (`"<len> key=value\\n"`, len counting itself)."""
    out = bytearray()
    for key, value in records:
        payload = f" {key}={value}\n".encode()
        digits = len(str(len(payload)))
        length = len(payload) + digits
        if len(str(length)) != digits:
            length = len(payload) + len(str(length))
        out += str(length).encode() + payload
    return bytes(out)


def gzip_member(data: bytes) -> bytes:
    """One gzip member as `gzip -n -9` and `apk index` write it (header 1f8b08000000000002 03)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31, 8, zlib.Z_DEFAULT_STRATEGY)
    return compressor.compress(data) + compressor.flush()


@dataclass(frozen=True, slots=True)
class TarEntry:
    """One tar entry with pax and GNU long-name headers already applied."""

    name: str
    typeflag: bytes
    mode: int
    mtime: int
    content: bytes
    pax: tuple[tuple[str, str], ...] = ()


def _parse_octal(field: bytes, what: str, offset: int) -> int:
    if field and field[0] & 0x80:
        raise TarError(f"header at offset {offset}: base-256 {what} is not supported")
    text = field.partition(b"\x00")[0].strip(b" ")
    if text.translate(None, b"01234567"):
        raise TarError(f"header at offset {offset}: {what} field {field!r} is not octal")
    return int(text, 8) if text else 0


def _parse_pax(content: bytes, offset: int) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(content):
        space = content.find(b" ", pos, pos + 21)
        length_text = content[pos:space] if space > pos else b""
        if not length_text.isdigit():
            raise TarError(f"pax header at offset {offset}: bad record length at byte {pos}")
        end = pos + int(length_text)
        if end > len(content) or end <= space + 1 or content[end - 1 : end] != b"\n":
            raise TarError(f"pax header at offset {offset}: record at byte {pos} is cut")
        key, sep, value = content[space + 1 : end - 1].partition(b"=")
        if not sep or not key:
            raise TarError(f"pax header at offset {offset}: record at byte {pos} lacks '='")
        try:
            records[key.decode()] = value.decode()
        except UnicodeDecodeError as exc:
            raise TarError(f"pax header at offset {offset}: record is not UTF-8") from exc
        pos = end
    return records


def _name(block: bytes, offset: int) -> str:
    raw = block[0:100].split(b"\x00", 1)[0]
    prefix = block[345:500].split(b"\x00", 1)[0]
    if block[257:265] == POSIX_MAGIC and prefix:
        raw = prefix + b"/" + raw
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise TarError(f"header at offset {offset}: entry name is not UTF-8") from exc


def read_entries(data: bytes) -> list[TarEntry]:
    """Entries of a (possibly cut) tar stream, stopping at the first zero block."""
    entries: list[TarEntry] = []
    pax: dict[str, str] = {}
    longname: str | None = None
    pos = 0
    while pos < len(data):
        block = data[pos : pos + BLOCK]
        if len(block) < BLOCK:
            raise TarError(f"truncated tar header at offset {pos} ({len(block)} bytes)")
        if block == ZERO_BLOCK:
            break
        stored = _parse_octal(block[148:156], "chksum", pos)
        if stored != sum(block[:148]) + 8 * 0x20 + sum(block[156:]):
            raise TarError(f"header at offset {pos}: checksum mismatch")
        size = _parse_octal(block[124:136], "size", pos)
        start = pos + BLOCK
        if start + size > len(data):
            raise TarError(
                f"entry at offset {pos} declares {size} bytes, only {len(data) - start} remain"
            )
        content = data[start : start + size]
        typeflag = block[156:157]
        offset, pos = pos, start + size + (-size % BLOCK)
        if typeflag == b"x":
            pax = _parse_pax(content, offset)
            continue
        if typeflag in (b"g", b"K"):
            continue
        if typeflag == b"L":
            try:
                longname = content.split(b"\x00", 1)[0].decode()
            except UnicodeDecodeError as exc:
                raise TarError(f"long name at offset {offset} is not UTF-8") from exc
            continue
        if "path" in pax:
            name = pax["path"]
        elif longname is not None:
            name = longname
        else:
            name = _name(block, offset)
        mtime = _parse_octal(block[136:148], "mtime", offset)
        mode = _parse_octal(block[100:108], "mode", offset)
        entries.append(TarEntry(name, typeflag, mode, mtime, content, tuple(pax.items())))
        pax, longname = {}, None
    if pax or longname is not None:
        raise TarError("tar stream ends after an extended header without its entry")
    return entries
