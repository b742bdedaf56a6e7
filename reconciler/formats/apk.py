"""Read, check and write apk v2 packages (apk-formats.md §1).

An `.apk` is gzip members concatenated: an optional signature member (`.SIGN.*` tar
entries), the control member (`.PKGINFO` and install scripts) and the data member. The
package's identity (`C:`) is `"Q1"` + base64(sha1(compressed control member)); the control
member's `datahash` pins the data member (sha256 of its compressed bytes).

Reading treats every input as hostile: members are found with `zlib.decompressobj` and
`unused_data` (never by searching for the gzip magic), decompression is bounded, and every
malformed input raises `ApkError` (a ValueError naming the file and what was expected).
`read_apk_bytes` checks a data member pinned by `datahash` by its sha256 without inflating
it, as `apk index` reads only up to the control member (files already in a repository);
with `inflate_data` (the intake of build artifacts) it inflates it as well. Reading the
file is `fs.apkfiles`' job, writing a package `apkwrite`'s.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import zlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from reconciler.formats.keys import SIGN_PREFIX, SignatureError, verify_signature_entry
from reconciler.formats.tarblock import TarEntry, TarError, read_entries
from reconciler.model.errors import InputError
from reconciler.model.packages import ApkInfo

__all__ = [
    "ApkError",
    "checksum_of",
    "gunzip_member",
    "parse_pkginfo",
    "read_apk_bytes",
    "split_gzip_members",
    "verify_apk_signature",
]

MAX_CONTROL_SIZE = 1024 * 1024
MAX_MEMBERS = 64
# Bounds the CPU time a decompression bomb can cost (real data members inflate to a few GB).
MAX_MEMBER_OUTPUT = 16 * 1024**3
_CHUNK = 64 * 1024
_OUTPUT_STEP = 1024 * 1024
_INT_RE = re.compile(r"[0-9]{1,18}")
_DATAHASH_RE = re.compile(r"[0-9a-f]{64}")
_INTERNED_KEYS = frozenset(
    ("pkgname", "pkgver", "arch", "pkgdesc", "url", "license", "origin", "maintainer", "commit")
)


class ApkError(InputError):
    """A package file that is not a well-formed apk v2 package."""


def _member_end(data: bytes, start: int, source: str, number: int) -> int:
    """Where the gzip member starting at `start` ends (inflating it, output discarded)."""
    what = f"gzip member {number}"
    return _walk_member(data, start, source, number, what, MAX_MEMBER_OUTPUT, keep=False)[1]


def split_gzip_members(data: bytes, source: str, *, max_members: int = MAX_MEMBERS) -> list[bytes]:
    """The compressed bytes of each gzip member of `data`, in order.

    Each member is inflated (output discarded, at most 1 MiB at a time) to find where
    it ends; `unused_data` tells where the next one starts. Garbage, truncation, trailing
    bytes and more than `max_members` members raise ApkError.
    """
    if not data:
        raise ApkError(f"{source}: empty file, expected gzip members")
    members: list[bytes] = []
    start = 0
    while start < len(data):
        if len(members) >= max_members:
            raise ApkError(f"{source}: more than {max_members} gzip members")
        end = _member_end(data, start, source, len(members) + 1)
        members.append(data[start:end])
        start = end
    return members


def gunzip_member(member: bytes, limit: int, source: str, what: str) -> bytes:
    """Decompress one gzip member, refusing more than `limit` bytes of output."""
    decomp = zlib.decompressobj(31)
    try:
        out = decomp.decompress(member, limit + 1)
    except zlib.error as exc:
        raise ApkError(f"{source}: {what} is not valid gzip: {exc}") from exc
    if len(out) > limit:
        raise ApkError(f"{source}: {what} decompresses to more than {limit} bytes")
    if not decomp.eof or decomp.unused_data:
        raise ApkError(f"{source}: {what} is not exactly one complete gzip member")
    return out


def checksum_of(control_member: bytes) -> str:
    """The APKINDEX `C:` value of a package: "Q1" + base64(sha1(control member))."""
    return "Q1" + base64.b64encode(hashlib.sha1(control_member).digest()).decode()


def _inflate(data: bytes, start: int, source: str, number: int, what: str) -> tuple[bytes, int]:
    """Inflate the signature or control member at `start`: (output, where it ends)."""
    return _walk_member(data, start, source, number, what, MAX_CONTROL_SIZE, keep=True)


def _walk_member(
    data: bytes, start: int, source: str, number: int, what: str, limit: int, *, keep: bool
) -> tuple[bytes, int]:
    """Inflate the gzip member at `start`, refusing more than `limit` bytes of output:
    (the output when `keep`, else b"", the offset where the member ends).

    Feeds at most _CHUNK bytes at a time, so a large following member is not copied;
    at eof, unused_data is the unread suffix of what was fed, i.e. of data[:pos].
    """
    view = memoryview(data)
    decomp = zlib.decompressobj(31)
    pos = start
    parts: list[bytes] = []
    total = 0
    try:
        while not decomp.eof:
            if decomp.unconsumed_tail:
                chunk: bytes | memoryview = decomp.unconsumed_tail
            else:
                chunk = view[pos : pos + _CHUNK]
                pos += len(chunk)
            out = decomp.decompress(chunk, min(limit + 1 - total, _OUTPUT_STEP))
            total += len(out)
            if total > limit:
                raise ApkError(f"{source}: {what} decompresses to more than {limit} bytes")
            if not chunk and not out:
                raise ApkError(f"{source}: gzip member {number} at offset {start} is truncated")
            if keep:
                parts.append(out)
    except zlib.error as exc:
        raise ApkError(
            f"{source}: gzip member {number} at offset {start} is corrupt: {exc}"
        ) from exc
    content = parts[0] if len(parts) == 1 else b"".join(parts)
    return content, pos - len(decomp.unused_data)


def _entries(content: bytes, source: str, what: str) -> list[TarEntry]:
    try:
        return read_entries(content)
    except TarError as exc:
        raise ApkError(f"{source}: {what} is not a valid tar stream: {exc}") from exc


def _int(value: str, key: str, source: str) -> int:
    if not _INT_RE.fullmatch(value):
        raise ApkError(f"{source}: .PKGINFO {key} = {value!r}, expected a decimal integer")
    return int(value)


def parse_pkginfo(text: str, source: str, *, size: int, checksum: str) -> ApkInfo:
    """An ApkInfo from .PKGINFO text, following apk's reading rules (§1.4).

    Lines that are empty, start with '#' or lack " = " are ignored; scalar keys keep their
    last value; `depend`, `provides` and `install_if` append (space-separated tokens).
    """
    scalars: dict[str, str] = {}
    lists: dict[str, list[str]] = {"depend": [], "provides": [], "install_if": []}
    for line in text.split("\n"):
        if not line or line.startswith("#") or " = " not in line:
            continue
        key, _, value = line.partition(" = ")
        if key in lists:
            lists[key].extend(value.split())
        else:
            scalars[key] = value
    for required in ("pkgname", "pkgver"):
        if not scalars.get(required):
            raise ApkError(f"{source}: .PKGINFO lacks a non-empty {required!r} line")
    datahash = scalars.get("datahash")
    if datahash is not None and not _DATAHASH_RE.fullmatch(datahash):
        raise ApkError(f"{source}: .PKGINFO datahash {datahash!r} is not 64 lowercase hex digits")
    # Interned: the same names, versions, texts and dependency tokens recur in
    # every arch and branch of a repository set, and in the indexes listing them.
    fields = {k: sys.intern(v) for k, v in scalars.items() if k in _INTERNED_KEYS}
    return ApkInfo(
        pkgname=fields["pkgname"],
        version=fields["pkgver"],
        arch=fields.get("arch", ""),
        size=size,
        installed_size=_int(scalars.get("size", "0"), "size", source),
        checksum=sys.intern(checksum),
        description=fields.get("pkgdesc", ""),
        url=fields.get("url", ""),
        license=fields.get("license", ""),
        origin=fields.get("origin"),
        maintainer=fields.get("maintainer"),
        builddate=_int(scalars.get("builddate", "0"), "builddate", source),
        commit=fields.get("commit"),
        provider_priority=_int(scalars.get("provider_priority", "0"), "provider_priority", source),
        depends=tuple(map(sys.intern, lists["depend"])),
        provides=tuple(map(sys.intern, lists["provides"])),
        install_if=tuple(map(sys.intern, lists["install_if"])),
        datahash=datahash,
    )


@dataclass(frozen=True, slots=True)
class _Parsed:
    info: ApkInfo
    signatures: tuple[tuple[str, bytes], ...]  # (tar entry name, signature bytes)
    control: bytes  # compressed control member
    data: memoryview  # compressed data member


def _parse(data: bytes, source: str, *, inflate_data: bool = True) -> _Parsed:
    if not data:
        raise ApkError(f"{source}: empty file, expected gzip members")
    content, first_end = _inflate(data, 0, source, 1, "gzip member 1")
    first = _entries(content, source, "gzip member 1")
    signatures: list[tuple[str, bytes]] = []
    if first and first[0].name.startswith(SIGN_PREFIX):
        for entry in first:
            if not entry.name.startswith(SIGN_PREFIX):
                raise ApkError(f"{source}: signature member holds {entry.name!r}, not .SIGN.*")
            signatures.append((entry.name, entry.content))
        if first_end >= len(data):
            raise ApkError(f"{source}: expected a control gzip member after the signature")
        content, control_end = _inflate(data, first_end, source, 2, "control")
        control_start, control = first_end, _entries(content, source, "control")
    else:
        control_start, control_end, control = 0, first_end, first
    if control_end >= len(data):
        raise ApkError(f"{source}: expected a data gzip member after the control member")
    control_member = data[control_start:control_end]
    pkginfo = [entry for entry in control if entry.name in (".PKGINFO", "./.PKGINFO")]
    if len(pkginfo) != 1 or pkginfo[0].typeflag not in (b"0", b"\x00"):
        raise ApkError(f"{source}: control member must hold exactly one regular .PKGINFO")
    try:
        text = pkginfo[0].content.decode()
    except UnicodeDecodeError as exc:
        raise ApkError(f"{source}: .PKGINFO is not UTF-8 text") from exc
    info = parse_pkginfo(text, source, size=len(data), checksum=checksum_of(control_member))
    data_member = memoryview(data)[control_end:]
    if inflate_data or info.datahash is None:
        data_number = 3 if signatures else 2
        if _member_end(data, control_end, source, data_number) != len(data):
            raise ApkError(f"{source}: expected nothing after gzip member {data_number} (data)")
    if info.datahash is not None and hashlib.sha256(data_member).hexdigest() != info.datahash:
        raise ApkError(f"{source}: data member does not match .PKGINFO datahash")
    return _Parsed(info, tuple(signatures), control_member, data_member)


def read_apk_bytes(data: bytes, source: str, *, inflate_data: bool = True) -> ApkInfo:
    """Parse a package held in memory; `source` names it in error messages.

    With `inflate_data=False`, a data member pinned by `datahash` is checked by its
    sha256 only, not inflated (see `read_apk`); legacy packages are always inflated.
    """
    return _parse(data, source, inflate_data=inflate_data).info


def verify_apk_signature(data: bytes, public_key: RSAPublicKey, source: str) -> str:
    """The key name of the first `.SIGN.*` entry that verifies with `public_key`.

    With `datahash` the signature covers the compressed control member and the data
    member must hash to `datahash`; without it (legacy) the signature covers control and
    data together. Anything else, including a malformed package, raises SignatureError.
    """
    try:
        parsed = _parse(data, source)
    except ApkError as exc:
        raise SignatureError(f"cannot check the signature: {exc}") from exc
    if not parsed.signatures:
        raise SignatureError(f"{source}: package is not signed")
    datahash = parsed.info.datahash
    signed = parsed.control if datahash is not None else parsed.control + parsed.data
    for entry_name, signature in parsed.signatures:
        key_name = verify_signature_entry(public_key, entry_name, signature, signed)
        if key_name is None:
            continue
        return key_name
    names = ", ".join(name for name, _ in parsed.signatures)
    raise SignatureError(f"{source}: no signature verifies with the given key (have {names})")
