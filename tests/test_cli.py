"""The operator's format tools on the command line: run in this process through the
real parser and exit codes (tests/command_line.py), and once as a real
`python -m reconciler` subprocess."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.formats.apkindex import (
    build_index_archive,
    format_index,
    parse_index_text,
    read_index_archive,
    sign_archive,
)
from reconciler.formats.apkwrite import build_apk
from reconciler.formats.keys import generate_private_key
from reconciler.fs.apkfiles import read_apk
from reconciler.fs.keyfiles import write_public_key
from reconciler.model.packages import ApkInfo

from . import command_line
from .command_line import Ran
from .conftest import ROOT


def run_cli(*args: str) -> Ran:
    """The command, run from the checkout (apkbuild paths are relative to it)."""
    before = os.getcwd()
    os.chdir(ROOT)
    try:
        return command_line.run_cli(*args)
    finally:
        os.chdir(before)


def assert_clean_exit(result: Ran, code: int) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


def test_the_command_line_runs_as_python_dash_m() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "version-compare", "1.0", "1.0_x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


# --- version-compare ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.0", "1.0-r0", "<"),
        ("1.0-r1", "1.0-r1", "="),
        ("1.10", "1.2", ">"),
        ("1.0_rc1", "1.0", "<"),
    ],
)
def test_version_compare(a: str, b: str, expected: str) -> None:
    result = run_cli("version-compare", a, b)
    assert_clean_exit(result, 0)
    assert result.stdout == expected + "\n"
    assert result.stderr == ""


def test_version_compare_invalid_version() -> None:
    result = run_cli("version-compare", "1.0", "1.0_x")
    assert_clean_exit(result, 2)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert "'1.0_x'" in result.stderr


def test_version_compare_mode() -> None:
    # "1..2" is refused by apk-tools 3 (the default mode).
    assert_clean_exit(run_cli("version-compare", "1..2", "1.2"), 2)
    result = run_cli("version-compare", "--mode", "2.14", "1.0", "1.0-r0")
    assert_clean_exit(result, 0)
    assert result.stdout == "<\n"
    unknown = run_cli("version-compare", "--mode", "9", "1", "2")
    assert_clean_exit(unknown, 2)
    assert "--mode" in unknown.stderr


# --- apkbuild ----------------------------------------------------------------------


def test_apkbuild_prints_json_keyed_by_the_given_paths() -> None:
    libfoo = "examples/pmaports/main/libfoo"
    phone = "examples/pmaports/device/main/device-demo-phone/APKBUILD"
    result = run_cli("apkbuild", libfoo, phone)
    assert_clean_exit(result, 0)
    assert result.stderr == ""
    data = json.loads(result.stdout)
    assert list(data) == [phone, libfoo]  # sort_keys
    assert data[libfoo]["pkgname"] == "libfoo"
    assert (data[libfoo]["pkgver"], data[libfoo]["pkgrel"]) == ("1.2.3", 1)
    assert data[libfoo]["makedepends"] == ["meson"]
    assert data[libfoo]["subpackages"] == {
        "libfoo-dev": {"pkgdesc": data[libfoo]["pkgdesc"], "depends": [], "provides": [],
                       "arch": None},
        "libfoo-doc": {"pkgdesc": data[libfoo]["pkgdesc"], "depends": [], "provides": [],
                       "arch": None},
    }  # fmt: skip
    assert data[phone]["pkgname"] == "device-demo-phone"
    assert data[phone]["pkgver"] == "3"
    assert data[phone]["depends"] == ["postmarketos-base", "linux-demo", "mkinitfs"]
    assert data[phone]["subpackages"] == {
        "device-demo-phone-nonfree-firmware": {
            "pkgdesc": "GPU/WiFi/BT/Modem/Video firmware",
            "depends": ["firmware-demo"],
            "provides": [],
            "arch": None,
        }
    }
    assert "variables" not in data[phone]


def test_apkbuild_broken_file_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken-pkg"
    broken.mkdir()
    (broken / "APKBUILD").write_text(
        'pkgname=broken-pkg\npkgver=1\npkgrel=0\narch="all\n', encoding="utf-8"
    )
    good = "examples/pmaports/main/hello-x86"
    result = run_cli("apkbuild", str(broken), good)
    assert_clean_exit(result, 1)
    assert f"error: {broken}: " in result.stderr
    assert "unterminated" in result.stderr
    assert list(json.loads(result.stdout)) == [good]  # the good one is still printed


def test_apkbuild_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    result = run_cli("apkbuild", str(missing))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert str(missing) in result.stderr


# --- index ---------------------------------------------------------------------------


def control_checksum(apk: bytes) -> str:
    """C: of an unsigned apk, computed with zlib alone: Q1 + sha1(first gzip member)."""
    decomp = zlib.decompressobj(31)
    decomp.decompress(apk)
    assert decomp.eof
    control = apk[: len(apk) - len(decomp.unused_data)]
    return "Q1" + base64.b64encode(hashlib.sha1(control).digest()).decode()


def make_apks(directory: Path) -> dict[str, bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    packages = [
        dict(pkgname="libfoo", version="1.2.3-r1", arch="x86_64", origin="libfoo",
             depends=("so:libc.musl-x86_64.so.1",), files={"usr/lib/libfoo.so.1": b"\x7fELF"}),
        dict(pkgname="libfoo-dev", version="1.2.3-r1", arch="x86_64", origin="libfoo",
             depends=("libfoo=1.2.3-r1",), files={"usr/include/foo.h": b"int foo;\n"}),
        dict(pkgname="foo-doc", version="0.1-r0", arch="noarch", origin="foo",
             provides=("foo-docs=0.1-r0",), files={"usr/share/doc/foo": b"docs\n"}),
    ]  # fmt: skip
    written: dict[str, bytes] = {}
    for args in packages:
        data = build_apk(builddate=1700000000, description="d", license="MIT", **args)  # type: ignore[arg-type]
        name = f"{args['pkgname']}-{args['version']}.apk"
        (directory / name).write_bytes(data)
        written[name] = data
    return written


def read_entries(path: Path) -> list[ApkInfo]:
    archive = read_index_archive(path.read_bytes(), str(path))
    return parse_index_text(archive.text, str(path))


def test_index_lists_the_apks(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    written = make_apks(repo)
    result = run_cli("index", str(repo))
    assert_clean_exit(result, 0)
    out = repo / "APKINDEX.tar.gz"
    assert result.stdout == f"{out}: 3 packages\n"
    archive = read_index_archive(out.read_bytes(), str(out))
    assert archive.signatures == ()
    assert archive.description is None
    entries = {f"{e.pkgname}-{e.version}.apk": e for e in read_entries(out)}
    assert set(entries) == set(written)
    for name, data in written.items():
        entry = entries[name]
        assert entry.size == len(data) == (repo / name).stat().st_size
        assert entry.checksum == control_checksum(data)
    assert entries["libfoo-dev-1.2.3-r1.apk"].origin == "libfoo"
    assert entries["libfoo-dev-1.2.3-r1.apk"].depends == ("libfoo=1.2.3-r1",)
    assert entries["foo-doc-0.1-r0.apk"].arch == "noarch"
    assert entries["foo-doc-0.1-r0.apk"].provides == ("foo-docs=0.1-r0",)
    assert entries["libfoo-1.2.3-r1.apk"].arch == "x86_64"


def test_index_output_and_description(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    written = make_apks(repo)
    out = tmp_path / "elsewhere.tar.gz"
    result = run_cli("index", str(repo), "-o", str(out), "-d", "v1-23-g0abc")
    assert_clean_exit(result, 0)
    assert not (repo / "APKINDEX.tar.gz").exists()
    archive = read_index_archive(out.read_bytes(), str(out))
    assert archive.description == "v1-23-g0abc"
    assert {f"{e.pkgname}-{e.version}.apk" for e in read_entries(out)} == set(written)


def test_index_refuses_a_bad_apk(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_apks(repo)
    (repo / "junk-1-r0.apk").write_bytes(b"this is not gzip")
    result = run_cli("index", str(repo))
    assert_clean_exit(result, 1)
    assert "junk-1-r0.apk" in result.stderr
    assert not (repo / "APKINDEX.tar.gz").exists()


def test_index_of_an_empty_directory(tmp_path: Path) -> None:
    result = run_cli("index", str(tmp_path))
    assert_clean_exit(result, 0)
    assert read_entries(tmp_path / "APKINDEX.tar.gz") == []


# --- verify --------------------------------------------------------------------------

KEY_NAME = "test-5f2c4e1a.rsa.pub"


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return generate_private_key(1024), generate_private_key(1024)


@pytest.fixture
def signed_index(
    tmp_path: Path, keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]
) -> tuple[Path, Path, Path]:
    """(signed index, its public key, another public key)."""
    repo = tmp_path / "repo"
    make_apks(repo)
    infos = read_entries_from_apks(repo)
    unsigned = build_index_archive(format_index(infos), description="test", mtime=1700000000)
    index = tmp_path / "APKINDEX.tar.gz"
    index.write_bytes(sign_archive(unsigned, keys[0], KEY_NAME, mtime=1700000000))
    right, wrong = tmp_path / KEY_NAME, tmp_path / "other.rsa.pub"
    write_public_key(right, keys[0])
    write_public_key(wrong, keys[1])
    return index, right, wrong


def read_entries_from_apks(repo: Path) -> list[ApkInfo]:
    return [read_apk(p) for p in sorted(repo.glob("*.apk"))]


def test_verify_ok(signed_index: tuple[Path, Path, Path]) -> None:
    index, right, _ = signed_index
    result = run_cli("verify", str(index), "--key", str(right))
    assert_clean_exit(result, 0)
    assert result.stdout == f"{index}: OK, signed as .SIGN.RSA.{KEY_NAME}\n"


def test_verify_wrong_key(signed_index: tuple[Path, Path, Path]) -> None:
    index, _, wrong = signed_index
    result = run_cli("verify", str(index), "--key", str(wrong))
    assert_clean_exit(result, 1)
    assert result.stdout.startswith(f"{index}: BAD: ")
    assert "OK" not in result.stdout


def signature_member_length(data: bytes) -> int:
    decomp = zlib.decompressobj(31)
    decomp.decompress(data)
    return len(data) - len(decomp.unused_data)


@pytest.mark.parametrize("where", ["gzip-header-mtime", "index-body", "last-byte"])
def test_verify_flipped_byte(signed_index: tuple[Path, Path, Path], where: str) -> None:
    index, right, _ = signed_index
    data = bytearray(index.read_bytes())
    first = signature_member_length(bytes(data))
    # The gzip header's mtime is not covered by any CRC: the archive still reads,
    # only the signature can tell. The others break the deflate data or the trailer.
    offset = {
        "gzip-header-mtime": first + 4,
        "index-body": first + (len(data) - first) // 2,
        "last-byte": len(data) - 1,
    }[where]
    data[offset] ^= 0x01
    index.write_bytes(bytes(data))
    if where == "gzip-header-mtime":
        read_index_archive(bytes(data), "tampered")  # still a readable archive
    result = run_cli("verify", str(index), "--key", str(right))
    assert_clean_exit(result, 1)
    assert result.stdout.startswith(f"{index}: BAD: ")


def test_verify_unsigned_index(tmp_path: Path, signed_index: tuple[Path, Path, Path]) -> None:
    _, right, _ = signed_index
    unsigned = tmp_path / "unsigned.tar.gz"
    unsigned.write_bytes(build_index_archive(format_index([]), description=None, mtime=0))
    result = run_cli("verify", str(unsigned), "--key", str(right))
    assert_clean_exit(result, 1)
    assert "BAD" in result.stdout
    assert "not signed" in result.stdout


def test_verify_missing_key_file(signed_index: tuple[Path, Path, Path], tmp_path: Path) -> None:
    index, _, _ = signed_index
    missing = tmp_path / "absent.rsa.pub"
    result = run_cli("verify", str(index), "--key", str(missing))
    assert_clean_exit(result, 2)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert str(missing) in result.stderr


def test_verify_signed_apk(
    tmp_path: Path, keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]
) -> None:
    apk = tmp_path / "hello-1-r0.apk"
    apk.write_bytes(
        build_apk(
            pkgname="hello", version="1-r0", arch="noarch", origin="hello",
            files={"usr/share/hello": b"hi\n"}, signing_key=keys[0], key_name=KEY_NAME,
        )
    )  # fmt: skip
    right, wrong = tmp_path / "right.pub", tmp_path / "wrong.pub"
    write_public_key(right, keys[0])
    write_public_key(wrong, keys[1])
    ok = run_cli("verify", str(apk), "--key", str(right))
    assert_clean_exit(ok, 0)
    assert ok.stdout == f"{apk}: OK, signed as .SIGN.RSA.{KEY_NAME}\n"
    bad = run_cli("verify", str(apk), "--key", str(wrong))
    assert_clean_exit(bad, 1)
    assert bad.stdout.startswith(f"{apk}: BAD: ")
