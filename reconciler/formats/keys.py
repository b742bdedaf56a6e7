"""RSA keys for signing packages and indexes the way abuild-sign does, and checking them.

Private keys are written as unencrypted PKCS#8 PEM with mode 0600, public keys as
SubjectPublicKeyInfo PEM ("PUBLIC KEY", the form apk reads from /etc/apk/keys) with mode
0644. A key's name is the file name of its public key (e.g. `pmos@local-5f2c4e1a.rsa.pub`):
that is what a `.SIGN.RSA.<name>` tar entry refers to (apk-formats.md §1.2, §2.8).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from reconciler.fs import atomicfile

SIGN_PREFIX = ".SIGN."
# Anything larger is not a key file; refuse before parsing.
MAX_KEY_FILE_SIZE = 64 * 1024


class KeyFileError(ValueError):
    """A key file that cannot be read or is not an RSA key of the expected kind."""


class SignatureError(ValueError):
    """A package or index whose signature does not verify with the given key."""


def generate_private_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A new RSA key (public exponent 65537)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def write_private_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    """Atomically write `key` as unencrypted PKCS#8 PEM, readable by its owner only."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomicfile.write_bytes(path, pem, mode=0o600)


def write_public_key(path: Path, key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> None:
    """Atomically write the public half of `key` as "PUBLIC KEY" PEM (mode 0644)."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomicfile.write_bytes(path, pem, mode=0o644)


def _read_key_file(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_SIZE + 1)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file: {exc.strerror or exc}") from exc
    if len(data) > MAX_KEY_FILE_SIZE:
        raise KeyFileError(f"{path}: larger than {MAX_KEY_FILE_SIZE} bytes, not a PEM key")
    return data


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """Load an unencrypted PEM RSA private key (PKCS#1 or PKCS#8)."""
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path}: expected an unencrypted PEM RSA private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{path}: expected an RSA private key, got {type(key).__name__}")
    return key


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    """Load a PEM RSA public key ("PUBLIC KEY", as in /etc/apk/keys; "RSA PUBLIC KEY" too)."""
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path}: expected a PEM RSA public key (PUBLIC KEY)") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFileError(f"{path}: expected an RSA public key, got {type(key).__name__}")
    return key


def check_key_name(key_name: str) -> None:
    """Refuse key names that cannot be a file name in /etc/apk/keys or a tar entry."""
    raw = key_name.encode()
    if (
        not key_name
        or key_name in {".", ".."}
        or any(ch in key_name for ch in "/\x00\n")
        or len(raw) + len(SIGN_PREFIX) + 4 > 100
    ):
        raise ValueError(f"unusable key name {key_name!r}")


def sign_sha1(private_key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """`openssl dgst -sha1 -sign`: RSA PKCS#1 v1.5 over SHA-1 of `data`."""
    return private_key.sign(data, padding.PKCS1v15(), hashes.SHA1())


def parse_signature_name(entry_name: str) -> tuple[str, hashes.HashAlgorithm] | None:
    """`.SIGN.RSA256.x.rsa.pub` -> ("x.rsa.pub", SHA256()); None for DSA or unknown tags."""
    if not entry_name.startswith(SIGN_PREFIX):
        return None
    tag, sep, key_name = entry_name[len(SIGN_PREFIX) :].partition(".")
    if not sep or not key_name:
        return None
    algorithm: hashes.HashAlgorithm
    if tag == "RSA":
        algorithm = hashes.SHA1()
    elif tag == "RSA256":
        algorithm = hashes.SHA256()
    elif tag == "RSA512":
        algorithm = hashes.SHA512()
    else:
        return None
    return key_name, algorithm


def verify_signature_entry(
    public_key: rsa.RSAPublicKey, entry_name: str, signature: bytes, data: bytes
) -> str | None:
    """The key name if the `.SIGN.*` entry's signature over `data` verifies, else None."""
    parsed = parse_signature_name(entry_name)
    if parsed is None:
        return None
    key_name, algorithm = parsed
    try:
        public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
    except (InvalidSignature, ValueError):
        return None
    return key_name
