"""Write real apk v2 packages, as abuild's create_apks does (apk-formats.md §1.9).

The result installs with apk 2.14 and 3.0: a data tar in pax format whose regular files
carry `APK-TOOLS.checksum.SHA1` records, with directory entries, root ownership, every
mtime set to the build date and end-of-archive blocks padded to a 10240-byte record; a
`.PKGINFO` with abuild's key order and `datahash` last in a cut control tar; each part
one `gzip -n -9` member; optionally a `.SIGN.RSA.<key_name>` member in front, signing the
compressed control member with PKCS#1 v1.5 over SHA-1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from reconciler.formats.keys import SIGN_PREFIX, check_key_name, sign_sha1
from reconciler.formats.tarblock import (
    BLOCK,
    POSIX_STYLE,
    SIGN_STYLE,
    gzip_member,
    header,
    padded,
    pax_records,
)
from reconciler.model.names import is_safe_arch, is_safe_name, is_safe_version

RECORD = 10240  # GNU tar's default record size; abuild's data tar is padded to it


def _check_path(path: str) -> None:
    parts = path.split("/")
    if (
        not path
        or any(part in ("", ".", "..") for part in parts)
        or any(ch in path for ch in "\x00\n")
    ):
        raise ValueError(f"package file path {path!r} must be relative, without '.', '..' or ''")


def _posix_entry(
    path: str, content: bytes, *, mtime: int, mode: int, typeflag: bytes, checksum: bool
) -> bytes:
    """One entry in abuild's posix style, with a pax header when needed."""
    raw = path.encode()
    records: list[tuple[str, str]] = []
    if len(raw) > 100:
        records.append(("path", path))
    if checksum:
        records.append(("APK-TOOLS.checksum.SHA1", hashlib.sha1(content).hexdigest()))
    out = b""
    if records:
        pax = pax_records(records)
        directory, _, base = path.rstrip("/").rpartition("/")
        pax_name = f"{directory or '.'}/PaxHeaders/{base}".encode()
        if len(pax_name) > 100:
            pax_name = b"././@PaxHeader"
        out += header(pax_name, size=len(pax), mtime=mtime, style=POSIX_STYLE, typeflag=b"x")
        out += padded(pax)
    out += header(
        raw[:100], size=len(content), mtime=mtime, style=POSIX_STYLE, mode=mode, typeflag=typeflag
    )
    return out + padded(content)


def data_tar(files: Mapping[str, bytes], mtime: int) -> bytes:
    """The uncompressed data tar: parent directories and files sorted like `LC_ALL=C sort`."""
    directories: set[str] = set()
    for path in files:
        _check_path(path)
        parts = path.split("/")
        directories.update("/".join(parts[:i]) for i in range(1, len(parts)))
    clash = directories & set(files)
    if clash:
        raise ValueError(f"package paths used both as file and directory: {sorted(clash)}")
    out = bytearray()
    for path in sorted([*directories, *files], key=lambda p: p.encode()):
        if path in directories:
            out += _posix_entry(
                path + "/", b"", mtime=mtime, mode=0o755, typeflag=b"5", checksum=False
            )
        else:
            content = files[path]
            executable = content.startswith((b"#!", b"\x7fELF"))
            mode = 0o755 if executable else 0o644
            out += _posix_entry(path, content, mtime=mtime, mode=mode, typeflag=b"0", checksum=True)
    out += bytes(2 * BLOCK)
    out += bytes(-len(out) % RECORD)
    return bytes(out)


def _line(key: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f".PKGINFO {key} must not contain a line break: {value!r}")
    return f"{key} = {value}\n"


def _lines(key: str, values: Iterable[str]) -> str:
    out = ""
    for value in values:
        if not value or any(ch.isspace() for ch in value):
            raise ValueError(f".PKGINFO {key} entry {value!r} must be one non-empty token")
        out += _line(key, value)
    return out


def build_apk(
    *,
    pkgname: str,
    version: str,
    arch: str,
    origin: str,
    description: str = "",
    url: str = "",
    license: str = "",
    maintainer: str = "",
    commit: str = "",
    depends: Iterable[str] = (),
    provides: Iterable[str] = (),
    packager: str = "reconciler",
    builddate: int = 0,
    files: Mapping[str, bytes],
    signing_key: RSAPrivateKey | None = None,
    key_name: str = "",
) -> bytes:
    """The bytes of an apk v2 package; signed with `signing_key` as `key_name` if given.

    `commit` and `maintainer` lines are written only when non-empty. Files starting with
    `#!` or an ELF header get mode 0755, others 0644; directories 0755. Long because
    its keyword arguments are the .PKGINFO fields, one line each.
    """
    if not is_safe_name(pkgname) or not is_safe_name(origin):
        raise ValueError(f"unsafe package or origin name {pkgname!r} / {origin!r}")
    if not is_safe_version(version) or not is_safe_arch(arch):
        raise ValueError(f"unsafe version or arch {version!r} / {arch!r}")
    if builddate < 0:
        raise ValueError(f"builddate {builddate} must not be negative")
    if signing_key is not None:
        check_key_name(key_name)
    elif key_name:
        raise ValueError("key_name given without a signing_key")
    data_gz = gzip_member(data_tar(files, builddate))
    installed = sum(len(content) for content in files.values())
    pkginfo = (
        _line("pkgname", pkgname)
        + _line("pkgver", version)
        + _line("pkgdesc", description)
        + _line("url", url)
        + _line("builddate", str(builddate))
        + _line("packager", packager)
        + _line("size", str(installed or (1 if files else 0)))
        + _line("arch", arch)
        + _line("origin", origin)
        + (_line("commit", commit) if commit else "")
        + (_line("maintainer", maintainer) if maintainer else "")
        + _line("license", license)
        + _lines("depend", depends)
        + _lines("provides", provides)
        + _line("datahash", hashlib.sha256(data_gz).hexdigest())
    ).encode()
    control = header(b".PKGINFO", size=len(pkginfo), mtime=builddate, style=POSIX_STYLE)
    control_gz = gzip_member(control + padded(pkginfo))
    if signing_key is None:
        return control_gz + data_gz
    signature = sign_sha1(signing_key, control_gz)
    name = f"{SIGN_PREFIX}RSA.{key_name}".encode()
    sign_tar = header(name, size=len(signature), mtime=builddate, style=SIGN_STYLE)
    return gzip_member(sign_tar + padded(signature)) + control_gz + data_gz
