"""Independent checks of what the daemon published, for the end-to-end tests.

Written against the format description, not the project's code: gzip members are
split with zlib, tar entries read with the stdlib tarfile, signatures checked
with `cryptography` directly.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def gzip_members(data: bytes) -> list[bytes]:
    members = []
    rest = data
    while rest:
        d = zlib.decompressobj(31)
        d.decompress(rest)
        assert d.eof, "truncated gzip member"
        used = len(rest) - len(d.unused_data)
        members.append(rest[:used])
        rest = d.unused_data
    return members


def tar_entries(member: bytes) -> dict[str, bytes]:
    raw = zlib.decompress(member, 31) + b"\0" * 1024
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        return {
            m.name: (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


@dataclass
class Index:
    signature_name: str | None
    signature: bytes | None
    signed_part: bytes
    entries: list[dict[str, str]]
    description: str | None


def read_index(path: Path) -> Index:
    data = path.read_bytes()
    members = gzip_members(data)
    first = tar_entries(members[0])
    sig_name = sig = None
    signed_part = data
    if all(name.startswith(".SIGN.") for name in first):
        ((sig_name, sig),) = first.items()
        signed_part = data[len(members[0]) :]
        members = members[1:]
    assert len(members) == 1, "an index is one gzip member after its signature"
    files = tar_entries(members[0])
    entries = []
    for block in files["APKINDEX"].decode().split("\n\n"):
        if block.strip():
            entries.append({line[0]: line[2:] for line in block.splitlines()})
    desc = files.get("DESCRIPTION")
    return Index(sig_name, sig, signed_part, entries, desc.decode() if desc is not None else None)


def verifies(index: Index, public_key_pem: bytes) -> bool:
    key = serialization.load_pem_public_key(public_key_pem)
    assert isinstance(key, rsa.RSAPublicKey)
    if index.signature is None:
        return False
    try:
        key.verify(index.signature, index.signed_part, padding.PKCS1v15(), hashes.SHA1())
    except InvalidSignature:
        return False
    return True


def apk_checksum(path: Path) -> str:
    """C: of an apk: Q1 + base64(sha1(control member)); the control member is the
    one holding .PKGINFO."""
    for member in gzip_members(path.read_bytes()):
        if ".PKGINFO" in tar_entries(member):
            return "Q1" + base64.b64encode(hashlib.sha1(member).digest()).decode()
    raise AssertionError(f"{path}: no .PKGINFO")


def pkginfo(path: Path) -> dict[str, str]:
    for member in gzip_members(path.read_bytes()):
        entries = tar_entries(member)
        if ".PKGINFO" in entries:
            result: dict[str, str] = {}
            for line in entries[".PKGINFO"].decode().splitlines():
                if " = " in line and not line.startswith("#"):
                    key, value = line.split(" = ", 1)
                    result.setdefault(key, value)
            return result
    raise AssertionError(f"{path}: no .PKGINFO")
