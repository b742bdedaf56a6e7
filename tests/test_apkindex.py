"""APKINDEX text and archives, checked against indexes real tools wrote (tests/data)."""

from __future__ import annotations

import contextlib
import dataclasses
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.formats.apkindex import (
    EntryCache,
    IndexFormatError,
    build_index_archive,
    format_entry,
    format_index,
    parse_index_text,
    read_index_archive,
    sign_archive,
    signature_member,
    verify_index,
)
from reconciler.formats.apkversion import is_valid, sort_key
from reconciler.formats.keys import SignatureError, generate_private_key
from reconciler.fs.keyfiles import load_public_key
from reconciler.model.packages import ApkInfo

from .apkcheck import gzip_members

DATA = Path(__file__).parent / "data" / "real-apkindex"
REAL = {name: (DATA / name / "APKINDEX.tar.gz").read_bytes() for name in
        ("ctOS-devs", "iits-consulting", "mikechouto")}  # fmt: skip


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return generate_private_key(1024)


# --- real indexes ------------------------------------------------------------


@pytest.mark.parametrize("name", ["ctOS-devs", "iits-consulting"])
def test_real_index_is_reproduced_byte_for_byte(name: str) -> None:
    data = REAL[name]
    archive = read_index_archive(data, name)
    entries = parse_index_text(archive.text, name)
    text = format_index(entries)
    assert text == archive.text
    unsigned = build_index_archive(text, description=archive.description, mtime=archive.mtime)
    assert unsigned == archive.signed_bytes
    # the unsigned part is the last gzip member of the real file, unchanged
    assert unsigned == gzip_members(data)[-1]
    assert data.endswith(unsigned)


@pytest.mark.parametrize("name", ["ctOS-devs", "iits-consulting"])
def test_real_signature_member_is_reproduced(name: str) -> None:
    """abuild-sign's member: GNU header, numeric owner, cut tar, gzip -n -9."""
    data = REAL[name]
    archive = read_index_archive(data, name)
    ((entry_name, signature),) = archive.signatures
    assert signature_member(entry_name, signature, archive.mtime) == gzip_members(data)[0]


def test_real_index_shapes() -> None:
    ctos = read_index_archive(REAL["ctOS-devs"], "ctOS")
    assert ctos.description is None
    assert ctos.signatures[0][0] == ".SIGN.RSA.root-67b84d1c.rsa.pub"
    assert len(ctos.signatures[0][1]) == 512
    entries = parse_index_text(ctos.text, "ctOS")
    assert [e.pkgname for e in entries][:3] == ["fastfetch", "gcc", "hwdata-pci"]
    fastfetch = entries[0]
    assert fastfetch.checksum == "Q16C6Z/nbUKHuXZha1zl55AKI74XE="
    assert fastfetch.size == 1423643 and fastfetch.installed_size == 3609032
    assert fastfetch.depends == ("hwdata-pci", "so:libc.musl-x86_64.so.1")
    assert fastfetch.provides == ("cmd:fastfetch=2.36.1-r0", "cmd:flashfetch=2.36.1-r0")
    assert fastfetch.maintainer == "fossdd <fossdd@pwned.life>"
    assert entries[1].maintainer is None  # gcc has no m:
    iits = parse_index_text(read_index_archive(REAL["iits-consulting"], "iits").text, "iits")
    assert [(e.arch, e.origin, e.builddate, e.commit) for e in iits] == [
        ("aarch64", None, 0, None),
        ("x86", None, 0, None),
        ("x86_64", None, 0, None),
    ]


def test_mikechouto_index_parses_and_text_round_trips() -> None:
    archive = read_index_archive(REAL["mikechouto"], "mike")
    assert archive.description == "mike "
    assert archive.mtime == 1538288166
    entries = parse_index_text(archive.text, "mike")
    assert [e.pkgname for e in entries] == [
        "libtorrent",
        "libtorrent-dev",
        "rtorrent",
        "rtorrent-doc",
    ]
    assert all(e.commit == "" for e in entries)  # apk 2 wrote an empty c:
    doc = entries[3]
    assert doc.arch == "x86_64" and doc.install_if == ("docs", "rtorrent=0.9.2-r1")
    assert entries[2].provides == ("cmd:rtorrent",)
    assert format_index(entries) == archive.text
    # The 2018 apk wrote 11-digit size/mtime fields; only the text is comparable.
    assert build_index_archive(archive.text, description="mike ", mtime=archive.mtime) != (
        archive.signed_bytes
    )


def test_real_signature_verifies_and_breaks(key: rsa.RSAPrivateKey) -> None:
    public = load_public_key(DATA / "iits-consulting" / "abuild.rsa.pub")
    data = REAL["iits-consulting"]
    assert verify_index(data, public, "iits") == "abuild.rsa.pub"
    assert verify_index(data, public, "iits", key_name="abuild.rsa.pub") == "abuild.rsa.pub"
    sig_len = len(gzip_members(data)[0])
    for position in (sig_len + 20, len(data) - 30, len(data) - 1):
        flipped = bytearray(data)
        flipped[position] ^= 0x01
        with pytest.raises(SignatureError):
            verify_index(bytes(flipped), public, "iits")
    # a tampered index that is still a valid archive: same signature, one changed letter
    archive = read_index_archive(data, "iits")
    tampered = build_index_archive(
        archive.text.replace("L:GPL3.0", "L:GPL3.1", 1), description=None, mtime=archive.mtime
    )
    with pytest.raises(SignatureError, match="no signature verifies"):
        verify_index(gzip_members(data)[0] + tampered, public, "iits")
    with pytest.raises(SignatureError, match="no signature by key"):
        verify_index(data, public, "iits", key_name="other.rsa.pub")
    for name in ("iits-consulting", "ctOS-devs"):  # a wrong key
        with pytest.raises(SignatureError, match=name):
            verify_index(REAL[name], key.public_key(), name)


# --- §2.4 golden text ---------------------------------------------------------

HELLO = ApkInfo(
    pkgname="hello", version="1.0-r0", arch="x86_64", size=1002, installed_size=18,
    checksum="Q1FmqapT0bDVRq2XmNPibhLixs1Xg=", description="test package",
    url="https://example.com", license="MIT", origin="hello", maintainer="Test <t@example.com>",
    builddate=1700000000, commit="0123456789abcdef0123456789abcdef01234567",
    depends=("so:libc.musl-x86_64.so.1", "busybox>=1.0"), provides=("cmd:hello=1.0-r0",),
)  # fmt: skip
EXTRA = ApkInfo(
    pkgname="extra-openrc", version="1.0-r0", arch="noarch", size=980, installed_size=1,
    checksum="Q1w4RajEn5tJxjeosWYwIRchrSG74=", description="d", url="u", license="MIT",
    origin="extra", builddate=1, commit="c", provider_priority=42, depends=("openrc",),
    provides=("extra-init=1.0-r0", "virt-init"), install_if=("openrc", "extra=1.0-r0"),
    datahash="ab" * 32,
)  # fmt: skip
# The two example entries of apk-formats.md §2.4, as real `apk index` wrote them.
GOLDEN = (DATA.parent / "apkindex-golden-2.4.txt").read_text()
HELLO_TEXT, EXTRA_TEXT = (f"{block}\n\n" for block in GOLDEN.rstrip("\n").split("\n\n"))


def test_golden_example_entries() -> None:
    assert format_entry(HELLO) == HELLO_TEXT
    assert format_entry(EXTRA, rewrite_arch="aarch64") == EXTRA_TEXT
    both = format_index([HELLO, dataclasses.replace(EXTRA, arch="aarch64")])
    assert both == EXTRA_TEXT + HELLO_TEXT
    parsed = parse_index_text(both, "golden")
    assert parsed == [dataclasses.replace(EXTRA, arch="aarch64", datahash=None), HELLO]


def test_presence_rules() -> None:
    bare = ApkInfo("x", "1-r0", "", 1, 0, "Q1" + "A" * 27 + "=")
    assert format_entry(bare) == f"C:{bare.checksum}\nP:x\nV:1-r0\nS:1\nI:0\nT:\nU:\nL:\n\n"
    empty = dataclasses.replace(bare, arch="x86", origin="", maintainer="", commit="")
    assert format_entry(empty).endswith("L:\no:\nm:\nc:\n\n")
    assert format_entry(bare, rewrite_arch="armv7").split("\n")[3] == "A:armv7"
    with pytest.raises(IndexFormatError):
        format_entry(dataclasses.replace(bare, description="two\nlines"))


def test_sort_order() -> None:
    def info(name: str, version: str, arch: str = "x86_64") -> ApkInfo:
        return ApkInfo(name, version, arch, 1, 1, f"Q1{name}{version}{arch}")

    entries = [
        info("Zeta", "1-r0"),
        info("hello", "1-r0"),
        info("alpha", "0.10-r0"),
        info("alpha", "0.1-r0"),
        info("alpha", "0.9-r0", "x86"),
        info("alpha", "0.9-r0", "aarch64"),
        info("Alpha", "1-r0"),
        info("bad", "not a version"),
        info("bad", "1-r0"),
    ]
    order = [(e.pkgname, e.version, e.arch) for e in parse_index_text(format_index(entries), "s")]
    assert order == [
        ("Alpha", "1-r0", "x86_64"),
        ("alpha", "0.1-r0", "x86_64"),
        ("alpha", "0.9-r0", "aarch64"),
        ("alpha", "0.9-r0", "x86"),
        ("alpha", "0.10-r0", "x86_64"),
        ("bad", "1-r0", "x86_64"),
        ("bad", "not a version", "x86_64"),
        ("hello", "1-r0", "x86_64"),
        ("Zeta", "1-r0", "x86_64"),
    ]
    assert format_index(reversed(entries)) == format_index(entries)


# --- parse errors ---------------------------------------------------------------


def test_parse_tolerates_unknown_lowercase_and_missing_final_blank() -> None:
    text = HELLO_TEXT.replace("P:hello\n", "P:hello\nz:future\n").rstrip("\n")
    assert parse_index_text(text, "x") == [HELLO]
    assert parse_index_text("", "x") == []
    assert parse_index_text("\n\n" + HELLO_TEXT + "\n\n" + HELLO_TEXT, "x") == [HELLO, HELLO]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("P:hello\n", "", r"src: entry 2, field P"),
        ("P:hello\n", "P:\n", r"src: entry 2, field P"),
        ("C:Q1FmqapT0bDVRq2XmNPibhLixs1Xg=\n", "", r"src: entry 2, field C"),
        ("S:1002", "S:big", r"src: entry 2, field S"),
        ("I:18", "I:1e3", r"src: entry 2, field I"),
        ("t:1700000000", "t:--1", r"src: entry 2, field t"),
        ("P:hello\n", "P:hello\nk:-\n", r"src: entry 2, field k"),
        ("P:hello\n", "P:hello\nZ:upper\n", r"src: entry 2 \(line 20\), field Z"),
        ("P:hello\n", "P:hello\nP:again\n", r"src: entry 2 \(line 20\), field P"),
        ("P:hello\n", "P:hello\nnocolon\n", r"src: entry 2 \(line 20\): expected"),
    ],
)
def test_parse_errors_name_source_entry_and_field(old: str, new: str, message: str) -> None:
    text = EXTRA_TEXT + HELLO_TEXT.replace(old, new)
    with pytest.raises(IndexFormatError, match=message):
        parse_index_text(text, "src")


# --- archive ----------------------------------------------------------------------


def test_archive_layout() -> None:
    text = format_index([HELLO])
    archive = build_index_archive(text, description="test-repo v1", mtime=1700000000)
    assert archive[:10] == bytes.fromhex("1f8b0800000000000203")
    assert len(gzip_members(archive)) == 1
    raw = zlib.decompress(archive, 31)
    first, second = raw[:512], raw[1024:1536]
    assert first[:12] == b"DESCRIPTION\x00"
    assert first[100:136] == b"0000644\x000000000\x000000000\x00000000000014"
    assert first[136:148] == b"%012o" % 1700000000
    assert first[257:265] == b"ustar  \x00"
    assert first[265:270] == b"root\x00" and first[297:302] == b"root\x00"
    chksum = first[148:156]
    assert chksum[6:] == b"\x00 "
    assert int(chksum[:6], 8) == sum(first[:148]) + 256 + sum(first[156:])
    assert raw[512:524] == b"test-repo v1"
    assert second[:9] == b"APKINDEX\x00" and second[124:136] == b"%012o" % len(text)
    body_end = 1536 + len(text) + (-len(text) % 512)
    assert raw[1536 : 1536 + len(text)] == text.encode()
    assert raw[body_end:] == bytes(1024)
    read = read_index_archive(archive, "a")
    assert (read.text, read.description, read.mtime, read.signatures) == (
        text, "test-repo v1", 1700000000, ()
    )  # fmt: skip
    assert read.signed_bytes == archive
    no_description = build_index_archive(text, description=None, mtime=5)
    assert zlib.decompress(no_description, 31)[:9] == b"APKINDEX\x00"
    assert read_index_archive(no_description, "b").description is None


def test_sign_and_verify(key: rsa.RSAPrivateKey) -> None:
    unsigned = build_index_archive(format_index([HELLO]), description="d", mtime=7)
    signed = sign_archive(unsigned, key, "test.rsa.pub", mtime=99)
    assert signed.endswith(unsigned)
    members = gzip_members(signed)
    assert len(members) == 2 and members[1] == unsigned
    sig_tar = zlib.decompress(members[0], 31)
    assert sig_tar[:22] == b".SIGN.RSA.test.rsa.pub"
    assert len(sig_tar) == 512 + 512  # header, padded signature, no end-of-archive blocks
    signature = sig_tar[512 : 512 + 128]
    assert sig_tar[640:] == bytes(384)
    # independent verification with cryptography
    key.public_key().verify(signature, unsigned, padding.PKCS1v15(), hashes.SHA1())
    archive = read_index_archive(signed, "s")
    assert archive.signatures == ((".SIGN.RSA.test.rsa.pub", signature),)
    assert archive.signed_bytes == unsigned and archive.description == "d"
    assert verify_index(signed, key.public_key(), "s") == "test.rsa.pub"
    with pytest.raises(SignatureError, match="not signed"):
        verify_index(unsigned, key.public_key(), "u")
    tampered = build_index_archive(format_index([HELLO]), description="e", mtime=7)
    with pytest.raises(SignatureError):
        verify_index(members[0] + tampered, key.public_key(), "t")
    with pytest.raises(ValueError):
        sign_archive(unsigned, key, "bad/name")


def test_two_signatures(key: rsa.RSAPrivateKey) -> None:
    other = generate_private_key(1024)
    unsigned = build_index_archive(format_index([HELLO]), description=None, mtime=1)
    signed = sign_archive(sign_archive(unsigned, key, "a.rsa.pub"), other, "b.rsa.pub")
    archive = read_index_archive(signed, "two")
    assert [name for name, _ in archive.signatures] == [
        ".SIGN.RSA.b.rsa.pub",
        ".SIGN.RSA.a.rsa.pub",
    ]
    # abuild-sign's second signature covers the first signature member too; apk checks the
    # signature over everything after the signature members, so only the inner one holds.
    assert verify_index(signed, key.public_key(), "two") == "a.rsa.pub"
    assert archive.signed_bytes == unsigned


def test_index_size_limit() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1024 * 1024)
    bomb = b"".join(compressor.compress(chunk) for _ in range(65)) + compressor.flush()
    with pytest.raises(IndexFormatError, match="more than"):
        read_index_archive(bomb, "bomb")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x1f\x8b\x08\x00garbage", "corrupt|truncated"),
        (REAL["iits-consulting"][:-5], "truncated"),
        (REAL["iits-consulting"] + b"\x00", "corrupt|truncated"),
        (zlib.compress(b"x"), "corrupt"),
        (gzip_members(REAL["iits-consulting"])[0], "only signatures"),
        (build_index_archive("x", description=None, mtime=0)[:-8] + b"\0" * 8, "corrupt"),
    ],
)
def test_malformed_archives(data: bytes, message: str) -> None:
    with pytest.raises(IndexFormatError, match=message):
        read_index_archive(data, "bad")
    with pytest.raises(SignatureError, match="bad"):
        verify_index(data, generate_private_key(1024).public_key(), "bad")


def test_archive_without_apkindex_entry() -> None:
    archive = build_index_archive("x", description="y", mtime=0)
    raw = bytearray(zlib.decompress(archive, 31))
    raw[512 + 512 : 512 + 512 + 8] = b"NOTINDEX"
    raw[1024 + 148 : 1024 + 156] = b" " * 8
    raw[1024 + 148 : 1024 + 156] = b"%06o\x00 " % sum(raw[1024:1536])
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    with pytest.raises(IndexFormatError, match="no APKINDEX"):
        read_index_archive(compressor.compress(bytes(raw)) + compressor.flush(), "n")


# --- hostile input -------------------------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_index_format_error(data: bytes) -> None:
    with contextlib.suppress(IndexFormatError):
        read_index_archive(data, "random")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(REAL)),
    st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 4000),
)
def test_mutated_real_archives(name: str, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(REAL[name])
    for position, value in edits:
        data[position % len(data)] = value
    mutated = bytes(data[: max(1, len(data) - cut % 64)])
    public = load_public_key(DATA / "iits-consulting" / "abuild.rsa.pub")
    try:
        archive = read_index_archive(mutated, name)
        parse_index_text(archive.text, name)
    except IndexFormatError:
        pass
    with contextlib.suppress(SignatureError):
        verify_index(mutated, public, name)


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from("CPVSIkmot:Dpi\n 0123-rx"), max_size=200))
def test_random_text_only_raises_index_format_error(text: str) -> None:
    try:
        entries = parse_index_text(text, "random")
    except IndexFormatError:
        return
    text_again = format_index(entries)
    assert format_index(parse_index_text(text_again, "again")) == text_again


def test_line_breaks_are_refused_naming_the_field() -> None:
    bare = ApkInfo("x", "1-r0", "x86", 1, 0, "Q1" + "A" * 27 + "=", origin="o", commit="c")
    for change, letter in (
        ({"url": "a\nb"}, "U"),
        ({"license": "a\rb"}, "L"),
        ({"commit": "\n"}, "c"),
        ({"depends": ("a", "b\nc")}, "D"),
        ({"install_if": ("q\r",)}, "i"),
    ):
        with pytest.raises(IndexFormatError, match=f"x: field {letter} contains a line break"):
            format_entry(dataclasses.replace(bare, **change))  # type: ignore[arg-type]
    with pytest.raises(IndexFormatError, match="field A"):
        format_entry(bare, rewrite_arch="x\n86")


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "A", "b", "B", "ab"]),
            st.sampled_from(["1", "1.0", "1.00", "01", "1-r0", "1_rc1", "1.0a", "x y", "", "2"]),
            st.sampled_from(["x86", "x86_64"]),
            st.sampled_from(["Q1a", "Q1b"]),
        ),
        max_size=12,
    )
)
def test_sort_order_matches_eager_keys(rows: list[tuple[str, str, str, str]]) -> None:
    entries = [ApkInfo(name, version, arch, 1, 1, c) for name, version, arch, c in rows]
    key = sort_key()

    def eager(info: ApkInfo) -> tuple[object, ...]:
        name = info.pkgname.encode()
        valid = is_valid(info.version)
        version = (0, key(info.version)) if valid else (1, info.version)
        return (name.lower(), name, version, info.arch.encode(), info.checksum.encode())

    expected = "".join(format_entry(info) for info in sorted(entries, key=eager))
    assert format_index(entries) == expected
    assert EntryCache().format_index("s", entries) == expected
