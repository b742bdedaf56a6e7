"""APKINDEX text and APKINDEX.tar.gz archives, as `apk index` and `abuild-sign` write them.

Text (apk-formats.md §2.1-§2.3): one block per package, fields in the order
`C P V A S I T U L o m t c k D p i`, an empty line after every block, blocks sorted by
name (strcasecmp, then strcmp) and ascending apk version. `o`, `m` and `c` are written
when present (not None), as apk 2.14 does, so a parsed real index is re-emitted exactly.

Archive (§2.5, §2.8): `DESCRIPTION` (optional) and `APKINDEX` tar entries in apk's GNU
header style plus 1024 zero bytes, as one gzip member; abuild-sign prepends a gzip member
holding a cut tar of `.SIGN.RSA.<key_name>`, a signature over every byte of the unsigned
archive. Reading refuses anything malformed with IndexFormatError.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from reconciler.formats.apk import ApkError, gunzip_member, split_gzip_members
from reconciler.formats.apkversion import is_valid, sort_key
from reconciler.formats.keys import (
    SIGN_PREFIX,
    SignatureError,
    check_key_name,
    parse_signature_name,
    sign_sha1,
    verify_signature_entry,
)
from reconciler.formats.tarblock import (
    APKINDEX_STYLE,
    BLOCK,
    SIGN_STYLE,
    TarEntry,
    TarError,
    gzip_member,
    header,
    padded,
    read_entries,
)
from reconciler.model.errors import InputError
from reconciler.model.packages import ApkInfo

MAX_INDEX_SIZE = 64 * 1024 * 1024  # decompressed, all members together
_INT_RE = re.compile(r"-?[0-9]{1,19}")


class IndexFormatError(InputError):
    """APKINDEX text or archive that does not parse; names the source, entry and field."""


def _fields(info: ApkInfo, arch: str) -> list[tuple[str, str]]:
    """The (letter, value) lines of an entry, in apk 2.14's order and presence rules."""
    fields: list[tuple[str, str]] = [
        ("C", info.checksum),
        ("P", info.pkgname),
        ("V", info.version),
    ]
    if arch:
        fields.append(("A", arch))
    fields += [
        ("S", str(info.size)),
        ("I", str(info.installed_size)),
        ("T", info.description),
        ("U", info.url),
        ("L", info.license),
    ]
    if info.origin is not None:
        fields.append(("o", info.origin))
    if info.maintainer is not None:
        fields.append(("m", info.maintainer))
    if info.builddate != 0:
        fields.append(("t", str(info.builddate)))
    if info.commit is not None:
        fields.append(("c", info.commit))
    if info.provider_priority != 0:
        fields.append(("k", str(info.provider_priority)))
    for letter, values in (("D", info.depends), ("p", info.provides), ("i", info.install_if)):
        if values:
            fields.append((letter, " ".join(values)))
    return fields


def format_entry(info: ApkInfo, rewrite_arch: str | None = None) -> str:
    """One APKINDEX block including its trailing empty line; a value holding a line
    break is refused, naming its field letter."""
    arch = rewrite_arch if rewrite_arch is not None else info.arch
    lines = []
    for letter, value in _fields(info, arch):
        if "\n" in value or "\r" in value:
            raise IndexFormatError(f"{info.pkgname}: field {letter} contains a line break")
        lines.append(f"{letter}:{value}\n")
    lines.append("\n")
    return "".join(lines)


class _VersionOrder:
    """Orders versions as apk does (invalid ones last, by bytes), parsing only on ties."""

    __slots__ = ("_key", "_version_key", "version")

    def __init__(self, version: str, version_key: Callable[[str], Any]) -> None:
        self.version = version
        self._version_key = version_key
        self._key: tuple[int, Any] | None = None

    def key(self) -> tuple[int, Any]:
        if self._key is None:
            valid = is_valid(self.version)
            self._key = (0, self._version_key(self.version)) if valid else (1, self.version)
        return self._key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _VersionOrder):
            return NotImplemented
        return self.version == other.version or self.key() == other.key()

    def __lt__(self, other: _VersionOrder) -> bool:
        return self.version != other.version and self.key() < other.key()


def _order(info: ApkInfo, version_key: Callable[[str], Any]) -> tuple[Any, ...]:
    name = info.pkgname.encode()
    version = _VersionOrder(info.version, version_key)
    # apk sorts equal name and version with an unstable qsort; arch and checksum make
    # the output deterministic whatever order the entries arrive in.
    return (name.lower(), name, version, info.arch.encode(), info.checksum.encode())


def format_index(entries: Iterable[ApkInfo], rewrite_arch: str | None = None) -> str:
    """The APKINDEX text of `entries`, sorted as `apk index` sorts them (§2.3)."""
    version_key = sort_key()
    ordered = sorted(entries, key=lambda info: _order(info, version_key))
    return "".join(format_entry(info, rewrite_arch) for info in ordered)


# An apk's cached block: (the ApkInfo it was made from, rewrite_arch, sort key, text).
_Block = tuple[ApkInfo, str | None, tuple[Any, ...], str]


class EntryCache:
    """`format_index` that remembers each apk's block and sort key between calls.

    Callers index the same directories again and again with one apk changed; only
    apks not seen in the previous index of the same scope (a directory, say) are
    formatted. Entries are found by object identity (the scanner hands out the
    same ApkInfo while a file is unchanged) and checked with `is`, so an equal but
    distinct object is formatted again rather than trusted. Each scope keeps the
    blocks of its last index only: what left the directory is forgotten.
    """

    def __init__(self) -> None:
        self._scopes: dict[str, dict[int, _Block]] = {}
        self._version_key = sort_key()

    def format_index(
        self, scope: str, entries: Iterable[ApkInfo], rewrite_arch: str | None = None
    ) -> str:
        """The same text as format_index(entries, rewrite_arch)."""
        known = self._scopes.get(scope, {})
        blocks: dict[int, _Block] = {}
        ordered: list[_Block] = []
        for info in entries:
            block = known.get(id(info))
            if block is None or block[0] is not info or block[1] != rewrite_arch:
                text = format_entry(info, rewrite_arch)
                block = (info, rewrite_arch, _order(info, self._version_key), text)
            blocks[id(info)] = block
            ordered.append(block)
        self._scopes[scope] = blocks
        ordered.sort(key=lambda b: b[2])
        return "".join(b[3] for b in ordered)


def _int(value: str, where: str, letter: str) -> int:
    if not _INT_RE.fullmatch(value):
        raise IndexFormatError(f"{where}, field {letter}: {value!r} is not an integer")
    return int(value)


def _entry(lines: list[tuple[int, str]], source: str, number: int) -> ApkInfo:
    where = f"{source}: entry {number}"
    seen: dict[str, str] = {}
    for lineno, line in lines:
        if len(line) < 2 or line[1] != ":":
            raise IndexFormatError(f"{where} (line {lineno}): expected 'X:value', got {line!r}")
        letter, value = line[0], line[2:]
        if letter.islower() and letter not in "omtckpi":
            continue  # unknown lowercase letters are for forward compatibility
        if letter not in "CPVASITULomtckDpi":
            raise IndexFormatError(f"{where} (line {lineno}), field {letter}: unknown field")
        if letter in seen:
            raise IndexFormatError(f"{where} (line {lineno}), field {letter}: repeated")
        seen[letter] = value
    for letter in "CPV":
        if not seen.get(letter):
            raise IndexFormatError(f"{where}, field {letter}: missing or empty")
    return ApkInfo(
        pkgname=seen["P"],
        version=seen["V"],
        arch=seen.get("A", ""),
        size=_int(seen.get("S", "0"), where, "S"),
        installed_size=_int(seen.get("I", "0"), where, "I"),
        checksum=seen["C"],
        description=seen.get("T", ""),
        url=seen.get("U", ""),
        license=seen.get("L", ""),
        origin=seen.get("o"),
        maintainer=seen.get("m"),
        builddate=_int(seen.get("t", "0"), where, "t"),
        commit=seen.get("c"),
        provider_priority=_int(seen.get("k", "0"), where, "k"),
        depends=tuple(seen.get("D", "").split()),
        provides=tuple(seen.get("p", "").split()),
        install_if=tuple(seen.get("i", "").split()),
    )


def parse_index_text(text: str, source: str) -> list[ApkInfo]:
    """The entries of APKINDEX text, in file order. Blank lines separate entries."""
    entries: list[ApkInfo] = []
    block: list[tuple[int, str]] = []
    for lineno, line in enumerate([*text.split("\n"), ""], start=1):
        if line:
            block.append((lineno, line))
        elif block:
            entries.append(_entry(block, source, len(entries) + 1))
            block = []
    return entries


def build_index_archive(text: str, *, description: str | None, mtime: int) -> bytes:
    """The unsigned APKINDEX.tar.gz exactly as `apk index -o` writes it (§2.5)."""
    out = b""
    for name, content in (("DESCRIPTION", description), ("APKINDEX", text)):
        if content is None:
            continue
        raw = content.encode()
        out += header(name.encode(), size=len(raw), mtime=mtime, style=APKINDEX_STYLE)
        out += padded(raw)
    return gzip_member(out + bytes(2 * BLOCK))


def signature_member(entry_name: str, signature: bytes, mtime: int) -> bytes:
    """abuild-sign's gzip member: a cut tar of one `.SIGN.*` entry, numeric owner."""
    tar = header(entry_name.encode(), size=len(signature), mtime=mtime, style=SIGN_STYLE)
    return gzip_member(tar + padded(signature))


def sign_archive(
    unsigned: bytes, private_key: RSAPrivateKey, key_name: str, *, mtime: int = 0
) -> bytes:
    """abuild-sign: prepend a `.SIGN.RSA.<key_name>` member to the unchanged bytes."""
    check_key_name(key_name)
    signature = sign_sha1(private_key, unsigned)
    return signature_member(f"{SIGN_PREFIX}RSA.{key_name}", signature, mtime) + unsigned


@dataclass(frozen=True, slots=True)
class IndexArchive:
    """A read APKINDEX.tar.gz.

    `signatures` holds (tar entry name, e.g. ".SIGN.RSA.x.rsa.pub", signature bytes) in
    file order; `signed_bytes` is the unsigned archive those signatures cover.
    """

    text: str
    description: str | None
    mtime: int
    signatures: tuple[tuple[str, bytes], ...]
    signed_bytes: bytes


def _tar(content: bytes, source: str, what: str) -> list[TarEntry]:
    try:
        return read_entries(content)
    except TarError as exc:
        raise IndexFormatError(f"{source}: {what} is not a valid tar stream: {exc}") from exc


def _decode(entry: TarEntry, source: str) -> str:
    try:
        return entry.content.decode()
    except UnicodeDecodeError as exc:
        raise IndexFormatError(f"{source}: {entry.name} is not UTF-8 text") from exc


def read_index_archive(data: bytes, source: str) -> IndexArchive:
    """Parse a signed or unsigned APKINDEX.tar.gz (at most 64 MiB decompressed)."""
    try:
        members = split_gzip_members(data, source)
        budget = MAX_INDEX_SIZE
        contents: list[bytes] = []
        for number, member in enumerate(members, start=1):
            contents.append(gunzip_member(member, budget, source, f"gzip member {number}"))
            budget -= len(contents[-1])
    except ApkError as exc:
        raise IndexFormatError(str(exc)) from exc
    signatures: list[tuple[str, bytes]] = []
    count = 0  # leading signature members
    while count < len(contents):
        entries = _tar(contents[count], source, f"gzip member {count + 1}")
        if not entries or not entries[0].name.startswith(SIGN_PREFIX):
            break
        for entry in entries:
            if not entry.name.startswith(SIGN_PREFIX):
                raise IndexFormatError(
                    f"{source}: signature member holds {entry.name!r}, expected only .SIGN.*"
                )
            signatures.append((entry.name, entry.content))
        count += 1
    if count == len(contents):
        raise IndexFormatError(f"{source}: only signatures, no APKINDEX")
    body = b"".join(contents[count:])
    offset = sum(len(member) for member in members[:count])
    found = {entry.name: entry for entry in _tar(body, source, "index tar")}
    if "APKINDEX" not in found:
        raise IndexFormatError(f"{source}: no APKINDEX entry in the archive")
    description = found.get("DESCRIPTION")
    return IndexArchive(
        text=_decode(found["APKINDEX"], source),
        description=None if description is None else _decode(description, source),
        mtime=found["APKINDEX"].mtime,
        signatures=tuple(signatures),
        signed_bytes=data[offset:],
    )


def verify_index(
    data: bytes, public_key: RSAPublicKey, source: str, key_name: str | None = None
) -> str:
    """The key name of the first signature (named `key_name`, if given) that verifies.

    Unsigned, tampered, wrongly signed or malformed archives raise SignatureError.
    """
    try:
        archive = read_index_archive(data, source)
    except IndexFormatError as exc:
        raise SignatureError(f"cannot check the signature: {exc}") from exc
    tried: list[str] = []
    for entry_name, signature in archive.signatures:
        parsed = parse_signature_name(entry_name)
        if parsed is None or (key_name is not None and parsed[0] != key_name):
            continue
        tried.append(entry_name)
        verified = verify_signature_entry(public_key, entry_name, signature, archive.signed_bytes)
        if verified is not None:
            return verified
    if not archive.signatures:
        raise SignatureError(f"{source}: index is not signed")
    if not tried:
        raise SignatureError(f"{source}: no signature by key {key_name!r}")
    raise SignatureError(
        f"{source}: no signature verifies with the given key (tried {', '.join(tried)})"
    )
