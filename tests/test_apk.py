"""apk v2 packages: build_apk output checked with independent code, and hostile input."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.formats.apk import (
    ApkError,
    parse_pkginfo,
    read_apk_bytes,
    split_gzip_members,
    verify_apk_signature,
)
from reconciler.formats.apkwrite import build_apk, data_tar
from reconciler.formats.keys import SignatureError, generate_private_key
from reconciler.formats.tarblock import (
    POSIX_STYLE,
    SIGN_STYLE,
    _parse_pax,
    header,
    padded,
    pax_records,
)
from reconciler.fs.apkfiles import read_apk

from .apkcheck import gzip_members

FILES = {
    "usr/bin/hello": b"#!/bin/sh\necho hello\n",
    "usr/share/doc/hello/README": b"read me\n" * 100,
    "etc/hello.conf": b"",
    "usr/share/hello/" + "d" * 120: b"a file with a long name",
}
BUILDDATE = 1700000000


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return generate_private_key(1024)


@pytest.fixture(scope="module")
def signed(key: rsa.RSAPrivateKey) -> bytes:
    return build_apk(
        pkgname="hello",
        version="1.0-r0",
        arch="x86_64",
        origin="hello",
        description="test package",
        url="https://example.com",
        license="MIT",
        maintainer="Test <t@example.com>",
        commit="0123456789abcdef0123456789abcdef01234567",
        depends=("so:libc.musl-x86_64.so.1", "busybox>=1.0"),
        provides=("cmd:hello=1.0-r0",),
        builddate=BUILDDATE,
        files=FILES,
        signing_key=key,
        key_name="test.rsa.pub",
    )


def unsigned_apk(**overrides: object) -> bytes:
    args: dict[str, object] = {
        "pkgname": "tiny", "version": "2-r1", "arch": "noarch", "origin": "tiny",
        "files": {"usr/share/tiny": b"x"},
    }  # fmt: skip
    args.update(overrides)
    return build_apk(**args)  # type: ignore[arg-type]


def test_round_trip(signed: bytes) -> None:
    info = read_apk_bytes(signed, "hello.apk")
    members = gzip_members(signed)
    assert len(members) == 3
    assert info.pkgname == "hello" and info.version == "1.0-r0" and info.arch == "x86_64"
    assert info.size == len(signed)
    assert info.installed_size == sum(len(c) for c in FILES.values())
    assert info.checksum == "Q1" + base64.b64encode(hashlib.sha1(members[1]).digest()).decode()
    assert info.datahash == hashlib.sha256(members[2]).hexdigest()
    assert (info.description, info.url, info.license) == (
        "test package",
        "https://example.com",
        "MIT",
    )
    assert info.origin == "hello" and info.maintainer == "Test <t@example.com>"
    assert info.commit == "0123456789abcdef0123456789abcdef01234567"
    assert info.builddate == BUILDDATE and info.provider_priority == 0
    assert info.depends == ("so:libc.musl-x86_64.so.1", "busybox>=1.0")
    assert info.provides == ("cmd:hello=1.0-r0",) and info.install_if == ()
    assert info.filename == "hello-1.0-r0.apk"


def test_gzip_members_are_gzip_n_9(signed: bytes) -> None:
    for member in gzip_members(signed):
        assert member[:10] == bytes.fromhex("1f8b0800000000000203")
    assert split_gzip_members(signed, "x") == gzip_members(signed)


def test_signature_verifies_with_cryptography(signed: bytes, key: rsa.RSAPrivateKey) -> None:
    sig_member, control_member, _ = gzip_members(signed)
    sig_tar = zlib.decompress(sig_member, 31)
    assert sig_tar[:22] == b".SIGN.RSA.test.rsa.pub" and len(sig_tar) == 1024  # cut
    assert sig_tar[257:265] == b"ustar  \x00" and sig_tar[265:297] == bytes(32)
    signature = sig_tar[512 : 512 + 128]
    key.public_key().verify(signature, control_member, padding.PKCS1v15(), hashes.SHA1())
    assert verify_apk_signature(signed, key.public_key(), "hello.apk") == "test.rsa.pub"


def test_pkginfo_order_and_cut_control_tar(signed: bytes) -> None:
    control = zlib.decompress(gzip_members(signed)[1], 31)
    assert control[:9] == b".PKGINFO\x00" and control[257:265] == b"ustar\x0000"
    size = int(control[124:135], 8)
    assert len(control) == 512 + size + (-size % 512)  # no end-of-archive blocks
    lines = control[512 : 512 + size].decode().splitlines()
    keys = [line.split(" = ")[0] for line in lines]
    assert keys == [
        "pkgname", "pkgver", "pkgdesc", "url", "builddate", "packager", "size", "arch",
        "origin", "commit", "maintainer", "license", "depend", "depend", "provides", "datahash",
    ]  # fmt: skip
    assert "packager = reconciler" in lines


def test_data_tar_with_stdlib_tarfile(signed: bytes) -> None:
    data = zlib.decompress(gzip_members(signed)[2], 31)
    assert len(data) % 10240 == 0 and data.endswith(bytes(1024))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names, key=lambda n: n.encode())
        dirs = {m.name for m in members if m.isdir()}
        assert dirs == {"etc", "usr", "usr/bin", "usr/share", "usr/share/doc",
                        "usr/share/doc/hello", "usr/share/hello"}  # fmt: skip
        files = {m.name: m for m in members if m.isfile()}
        assert set(files) == set(FILES)
        for member in members:
            assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "root", "root")
            assert member.mtime == BUILDDATE
        for name, member in files.items():
            extracted = tar.extractfile(member)
            assert extracted is not None
            content = extracted.read()
            assert content == FILES[name]
            expected = hashlib.sha1(content).hexdigest()
            assert member.pax_headers["APK-TOOLS.checksum.SHA1"] == expected
        assert files["usr/bin/hello"].mode == 0o755
        assert files["etc/hello.conf"].mode == 0o644


def test_data_tar_keeps_end_of_archive_blocks() -> None:
    # pax header (2 blocks) + header + 8704 bytes of content end exactly on a record
    tar = data_tar({"f": b"x" * 8704}, 0)
    assert tar[10240 - 8704 : 10240] == b"x" * 8704
    assert len(tar) == 20480 and tar[10240:] == bytes(10240)


def test_whole_package_is_one_tar_stream(signed: bytes, tmp_path: Path) -> None:
    stream = gzip.decompress(signed)  # all members concatenated
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        names = tar.getnames()
    assert names[:2] == [".SIGN.RSA.test.rsa.pub", ".PKGINFO"]
    assert set(FILES) <= set(names)
    if shutil.which("tar") is None:
        pytest.skip("no tar binary")
    path = tmp_path / "hello-1.0-r0.apk"
    path.write_bytes(signed)
    listed = subprocess.run(
        ["tar", "-tzf", str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert listed[:2] == [".SIGN.RSA.test.rsa.pub", ".PKGINFO"]
    assert set(FILES) <= set(listed) and "usr/bin/" in listed


def test_unsigned_package(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    data = unsigned_apk()
    assert len(gzip_members(data)) == 2
    path = tmp_path / "tiny-2-r1.apk"
    path.write_bytes(data)
    info = read_apk(path)
    assert info.pkgname == "tiny" and info.arch == "noarch" and info.installed_size == 1
    assert info.maintainer is None and info.commit is None and info.builddate == 0
    assert info.checksum == read_apk_bytes(data, "x").checksum
    with pytest.raises(SignatureError, match="not signed"):
        verify_apk_signature(data, key.public_key(), "tiny")
    with pytest.raises(ApkError, match="larger than"):
        read_apk(path, max_size=len(data) - 1)
    with pytest.raises(ApkError, match=r"missing\.apk"):
        read_apk(tmp_path / "missing.apk")


def test_installed_size_rules() -> None:
    assert read_apk_bytes(unsigned_apk(files={"a": b""}), "x").installed_size == 1
    assert read_apk_bytes(unsigned_apk(files={}), "x").installed_size == 0


def test_wrong_key_and_tampering(signed: bytes, key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(SignatureError, match="no signature verifies"):
        verify_apk_signature(signed, generate_private_key(1024).public_key(), "hello.apk")
    sig_member, control_member, _ = gzip_members(signed)
    other_data = gzip_members(unsigned_apk())[1]
    with pytest.raises(ApkError, match="datahash"):
        read_apk_bytes(sig_member + control_member + other_data, "swapped")
    with pytest.raises(SignatureError, match="datahash"):
        verify_apk_signature(sig_member + control_member + other_data, key.public_key(), "s")
    other_control = gzip_members(unsigned_apk())[0]
    with pytest.raises(SignatureError):
        verify_apk_signature(sig_member + other_control + gzip_members(unsigned_apk())[1],
                             key.public_key(), "s")  # fmt: skip


def test_legacy_package_without_datahash(key: rsa.RSAPrivateKey) -> None:
    pkginfo = b"pkgname = old\npkgver = 1-r0\narch = x86\nsize = 3\n"
    control = gzip_n(header(b".PKGINFO", size=len(pkginfo), mtime=0, style=POSIX_STYLE)
                     + padded(pkginfo))  # fmt: skip
    data = gzip_members(unsigned_apk())[1]
    signature = key.sign(control + data, padding.PKCS1v15(), hashes.SHA1())
    sig = gzip_n(header(b".SIGN.RSA.k.rsa.pub", size=len(signature), mtime=0, style=SIGN_STYLE)
                 + padded(signature))  # fmt: skip
    info = read_apk_bytes(sig + control + data, "old")
    assert info.datahash is None and info.origin is None
    assert verify_apk_signature(sig + control + data, key.public_key(), "old") == "k.rsa.pub"
    other = gzip_members(unsigned_apk(files={"b": b"y"}))[1]
    with pytest.raises(SignatureError):
        verify_apk_signature(sig + control + other, key.public_key(), "old")


def gzip_n(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def control_with(pkginfo: bytes) -> bytes:
    tar = header(b".PKGINFO", size=len(pkginfo), mtime=0, style=POSIX_STYLE) + padded(pkginfo)
    return gzip_n(tar) + gzip_members(unsigned_apk())[1]


def test_parse_pkginfo_rules() -> None:
    text = (
        "# Generated by abuild 3.14.1-r4\n\npkgname = p\npkgver = 1-r0\nnot a pair\n"
        "depend = a b\ndepend = c\nprovides = x=1\ninstall_if = p2 q=1\n"
        "url = first\nurl = second\nreplaces = r\ntriggers = /usr\norigin = \ncommit = \n"
        "junk=1\nsize = 12\nprovider_priority = 5\n"
    )
    info = parse_pkginfo(text, "t", size=9, checksum="Q1x")
    assert info.depends == ("a", "b", "c") and info.provides == ("x=1",)
    assert info.install_if == ("p2", "q=1") and info.url == "second"
    assert info.origin == "" and info.commit == "" and info.maintainer is None
    assert (info.installed_size, info.provider_priority, info.size) == (12, 5, 9)
    assert info.arch == "" and info.datahash is None


@pytest.mark.parametrize(
    ("pkginfo", "message"),
    [
        (b"pkgver = 1-r0\n", "pkgname"),
        (b"pkgname = \npkgver = 1-r0\n", "pkgname"),
        (b"pkgname = p\n", "pkgver"),
        (b"pkgname = p\npkgver = 1\nsize = -1\n", "size"),
        (b"pkgname = p\npkgver = 1\nbuilddate = soon\n", "builddate"),
        (b"pkgname = p\npkgver = 1\ndatahash = XYZ\n", "datahash"),
        (b"pkgname = p\npkgver = 1\ndatahash = " + b"0" * 64 + b"\n", "datahash"),
        (b"pkgname = \xff\xfe\npkgver = 1\n", "UTF-8"),
    ],
)
def test_bad_pkginfo(pkginfo: bytes, message: str) -> None:
    with pytest.raises(ApkError, match=message):
        read_apk_bytes(control_with(pkginfo), "bad.apk")


def test_hostile_structures() -> None:
    good = unsigned_apk()
    control, data = gzip_members(good)
    big = b"# " + b"x" * (1024 * 1024) + b"\npkgname = p\npkgver = 1\n"
    cases = {
        "empty": b"",
        "random": b"\x00\x01garbage" * 10,
        "truncated": good[:-3],
        "trailing garbage": good + b"\x00",
        "control only": control,
        "three data members": control + data + data,
        "huge control": control_with(big),
        "no pkginfo": gzip_n(header(b".other", size=0, mtime=0, style=POSIX_STYLE)) + data,
        "signature only": gzip_members(build_apk(
            pkgname="s", version="1", arch="x86", origin="s", files={},
            signing_key=generate_private_key(1024), key_name="k.pub"))[0],
    }  # fmt: skip
    # a header that declares far more content than the member holds
    declared = bytearray(header(b".PKGINFO", size=100, mtime=0, style=POSIX_STYLE))
    declared[124:136] = b"77777777777\x00"
    declared[148:156] = b" " * 8
    declared[148:156] = b"%06o\x00 " % sum(declared)
    cases["huge declared size"] = gzip_n(bytes(declared) + bytes(512)) + data
    bad_checksum = bytearray(header(b".PKGINFO", size=0, mtime=0, style=POSIX_STYLE))
    bad_checksum[0:1] = b"X"
    cases["bad tar checksum"] = gzip_n(bytes(bad_checksum)) + data
    base256 = bytearray(header(b".PKGINFO", size=0, mtime=0, style=POSIX_STYLE))
    base256[124:136] = b"\x80" + bytes(10) + b"\x01"
    base256[148:156] = b" " * 8
    base256[148:156] = b"%06o\x00 " % sum(base256)
    cases["base-256 size"] = gzip_n(bytes(base256) + bytes(512)) + data
    legacy = control_with(b"pkgname = p\npkgver = 1\n")
    cases["legacy, trailing garbage"] = legacy + b"\x00"
    cases["legacy, two data members"] = legacy + data
    cases["legacy, truncated"] = legacy[:-1]
    read_apk_bytes(legacy, "legacy")  # the base the legacy cases start from is fine
    for name, blob in cases.items():
        with pytest.raises(ApkError, match=name):
            read_apk_bytes(blob, name)
        with pytest.raises(SignatureError):
            verify_apk_signature(blob, generate_private_key(1024).public_key(), name)


def test_split_gzip_members_limits() -> None:
    with pytest.raises(ApkError, match="more than 3"):
        split_gzip_members(gzip_n(b"a") * 4, "many", max_members=3)
    assert len(split_gzip_members(gzip_n(b"a") * 3, "ok", max_members=3)) == 3
    with pytest.raises(ApkError, match=r"src.*offset 0"):
        split_gzip_members(b"PK\x03\x04 not gzip", "src")


def test_split_large_members() -> None:
    big, noisy = gzip_n(bytes(3 * 1024 * 1024)), gzip_n(hashlib.sha512(b"x").digest() * 5000)
    assert split_gzip_members(big + noisy + big, "x") == [big, noisy, big]


def test_pax_record_lengths() -> None:
    for size in range(0, 1100, 7):
        value = "v" * size
        assert _parse_pax(pax_records([("key", value)]), 0) == {"key": value}


def test_build_apk_refuses_bad_input(key: rsa.RSAPrivateKey) -> None:
    for files in ({"/abs": b""}, {"a/../b": b""}, {"a//b": b""}, {"a": b"", "a/b": b""}):
        with pytest.raises(ValueError):
            unsigned_apk(files=files)
    with pytest.raises(ValueError):
        unsigned_apk(pkgname="../x")
    with pytest.raises(ValueError):
        unsigned_apk(description="two\nlines")
    with pytest.raises(ValueError):
        unsigned_apk(depends=("a b",))
    with pytest.raises(ValueError):
        unsigned_apk(signing_key=key)  # no key name
    with pytest.raises(ValueError):
        unsigned_apk(key_name="k.rsa.pub")  # no key


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_apk_error(data: bytes) -> None:
    with contextlib.suppress(ApkError):
        read_apk_bytes(data, "random")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=3),
    st.integers(0, 100),
    st.booleans(),
)
def test_mutated_packages(edits: list[tuple[int, int]], cut: int, sign: bool) -> None:
    key = generate_private_key(1024) if sign else None
    original = unsigned_apk(signing_key=key, key_name="k.rsa.pub" if sign else "")
    data = bytearray(original)
    for position, value in edits:
        data[position % len(data)] = value
    mutated = bytes(data[: len(data) - cut % 16])
    try:
        info = read_apk_bytes(mutated, "mutated")
    except ApkError:
        pass
    else:
        assert info.size == len(mutated)
    if key is not None:
        try:
            verify_apk_signature(mutated, key.public_key(), "mutated")
        except SignatureError:
            pass
        else:  # only harmless changes (e.g. the tar mtime of the signature) may pass
            assert gzip_members(mutated)[1:] == gzip_members(original)[1:]


def test_read_apk_from_disk_refuses_damage(tmp_path: Path) -> None:
    good = unsigned_apk()
    control, data = gzip_members(good)
    other = gzip_members(unsigned_apk(files={"b": b"y"}))[1]
    legacy = control_with(b"pkgname = p\npkgver = 1\n")
    cases = {
        "empty": b"",
        "truncated": good[:-3],
        "trailing-garbage": good + b"\x00",
        "swapped-data": control + other,
        "two-data-members": control + data + data,
        "legacy-trailing-garbage": legacy + b"\x00",
        "legacy-truncated": legacy[:-1],
    }
    for name, blob in cases.items():
        path = tmp_path / f"{name}.apk"
        path.write_bytes(blob)
        with pytest.raises(ApkError, match=name):
            read_apk(path)
    with pytest.raises(ApkError, match="cannot read package"):
        read_apk(tmp_path)  # a directory


def test_read_apk_checks_a_pinned_data_member_by_hash_only(tmp_path: Path) -> None:
    """Like `apk index`, read_apk does not inflate a data member pinned by datahash;
    the intake (read_apk_bytes) and inflate_data=True still refuse bad gzip there."""
    bad_data = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03 not deflate"
    digest = hashlib.sha256(bad_data).hexdigest().encode()
    pkginfo = b"pkgname = p\npkgver = 1-r0\ndatahash = " + digest + b"\n"
    control = gzip_n(header(b".PKGINFO", size=len(pkginfo), mtime=0, style=POSIX_STYLE)
                     + padded(pkginfo))  # fmt: skip
    path = tmp_path / "p-1-r0.apk"
    path.write_bytes(control + bad_data)
    info = read_apk(path)
    assert (info.size, info.datahash) == (len(control) + len(bad_data), digest.decode())
    with pytest.raises(ApkError, match="corrupt"):
        read_apk(path, inflate_data=True)
    with pytest.raises(ApkError, match="corrupt"):
        read_apk_bytes(control + bad_data, "p")


def test_read_apk_matches_read_apk_bytes(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    for number, data in enumerate((unsigned_apk(), build_apk(
        pkgname="hello", version="1.0-r0", arch="x86_64", origin="hello", files=FILES,
        signing_key=key, key_name="k.rsa.pub", depends=("busybox",),
    ))):  # fmt: skip
        path = tmp_path / f"{number}.apk"
        path.write_bytes(data)
        assert read_apk(path) == read_apk_bytes(data, "x") == read_apk(path, inflate_data=True)


def test_read_apk_bounds_files_that_outgrow_their_stat_size() -> None:
    status = Path("/proc/self/status")  # st_size 0, yet hundreds of bytes to read
    if not status.exists():
        pytest.skip("needs /proc")
    with pytest.raises(ApkError, match="larger than 10 bytes"):
        read_apk(status, max_size=10)
    with pytest.raises(ApkError, match="gzip member 1"):
        read_apk(status)
