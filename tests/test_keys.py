"""RSA key files and the signature helpers shared by packages and indexes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from reconciler.formats.keys import (
    KeyFileError,
    SignatureError,
    check_key_name,
    generate_private_key,
    parse_signature_name,
    sign_sha1,
    verify_signature_entry,
)
from reconciler.fs.keyfiles import (
    load_private_key,
    load_public_key,
    write_private_key,
    write_public_key,
)

REAL_PUB = Path(__file__).parent / "data" / "real-apkindex" / "iits-consulting" / "abuild.rsa.pub"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return generate_private_key(1024)


def test_generate_default_size() -> None:
    assert generate_private_key().key_size == 2048


def test_write_and_load_round_trip(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    private, public = tmp_path / "keys" / "wip.rsa", tmp_path / "keys" / "wip.rsa.pub"
    write_private_key(private, key)
    write_public_key(public, key)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----\n")
    loaded = load_private_key(private)
    assert loaded.private_numbers() == key.private_numbers()
    assert load_public_key(public).public_numbers() == key.public_key().public_numbers()
    # no temporary files are left beside the keys
    assert sorted(p.name for p in private.parent.iterdir()) == ["wip.rsa", "wip.rsa.pub"]


def test_write_public_key_accepts_public_key(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    write_public_key(tmp_path / "k.pub", key.public_key())
    assert load_public_key(tmp_path / "k.pub").public_numbers() == key.public_key().public_numbers()


def test_load_real_public_key() -> None:
    assert load_public_key(REAL_PUB).key_size == 2048


def test_load_pkcs1_public_and_private_formats(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    (tmp_path / "pkcs1.pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    )
    (tmp_path / "trad.rsa").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    assert load_public_key(tmp_path / "pkcs1.pub").key_size == 1024
    assert load_private_key(tmp_path / "trad.rsa").key_size == 1024


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        b"x" * 70000,
    ],
)
def test_bad_public_key_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.rsa.pub"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=r"bad\.rsa\.pub"):
        load_public_key(path)
    with pytest.raises(KeyFileError, match=r"bad\.rsa\.pub"):
        load_private_key(path)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"nope\.pub"):
        load_public_key(tmp_path / "nope.pub")


def test_non_rsa_keys_are_refused(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ec.pub").write_bytes(
        ec_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (tmp_path / "ec.key").write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError, match=r"ec\.pub.*RSA"):
        load_public_key(tmp_path / "ec.pub")
    with pytest.raises(KeyFileError, match=r"ec\.key.*RSA"):
        load_private_key(tmp_path / "ec.key")
    # a private key is not a public key file
    write_private_key(tmp_path / "priv", key)
    with pytest.raises(KeyFileError):
        load_public_key(tmp_path / "priv")


def test_encrypted_private_key_is_refused(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    (tmp_path / "enc").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    with pytest.raises(KeyFileError, match="enc"):
        load_private_key(tmp_path / "enc")


def test_parse_signature_name() -> None:
    parsed = parse_signature_name(".SIGN.RSA.abuild.rsa.pub")
    assert parsed is not None and parsed[0] == "abuild.rsa.pub"
    assert isinstance(parsed[1], hashes.SHA1)
    parsed256 = parse_signature_name(".SIGN.RSA256.x.rsa.pub")
    assert parsed256 is not None and isinstance(parsed256[1], hashes.SHA256)
    parsed512 = parse_signature_name(".SIGN.RSA512.x.rsa.pub")
    assert parsed512 is not None and isinstance(parsed512[1], hashes.SHA512)
    for name in (".SIGN.DSA.x.pub", ".SIGN.RSA", ".SIGN.RSA.", "APKINDEX", ".PKGINFO"):
        assert parse_signature_name(name) is None


def test_verify_signature_entry(key: rsa.RSAPrivateKey) -> None:
    data = b"signed bytes"
    signature = sign_sha1(key, data)
    # independent check with cryptography
    key.public_key().verify(signature, data, padding.PKCS1v15(), hashes.SHA1())
    public = key.public_key()
    assert verify_signature_entry(public, ".SIGN.RSA.k.rsa.pub", signature, data) == "k.rsa.pub"
    assert verify_signature_entry(public, ".SIGN.RSA.k.rsa.pub", signature, data + b"x") is None
    assert verify_signature_entry(public, ".SIGN.RSA.k.rsa.pub", signature[:-1], data) is None
    assert verify_signature_entry(public, ".SIGN.RSA256.k.rsa.pub", signature, data) is None
    assert verify_signature_entry(public, ".SIGN.DSA.k.rsa.pub", signature, data) is None
    sha256 = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    assert verify_signature_entry(public, ".SIGN.RSA256.k.rsa.pub", sha256, data) == "k.rsa.pub"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\nb", "x" * 91])
def test_check_key_name_refuses(name: str) -> None:
    with pytest.raises(ValueError):
        check_key_name(name)


def test_check_key_name_accepts_real_names() -> None:
    check_key_name("alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub")
    check_key_name("pmos@local-5f2c4e1a.rsa.pub")
    check_key_name("x" * 90)  # ".SIGN.RSA." + 90 bytes is exactly a full tar name field


def test_signature_error_is_value_error() -> None:
    assert issubclass(SignatureError, ValueError)
    assert issubclass(KeyFileError, ValueError)
