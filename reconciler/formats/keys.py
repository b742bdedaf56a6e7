"""RSA keys for signing packages and indexes the way abuild-sign does, and checking them.

Private keys are PEM-encoded as unencrypted PKCS#8, public keys as SubjectPublicKeyInfo
PEM ("PUBLIC KEY", the form apk reads from /etc/apk/keys); the key files themselves are
`fs.keyfiles`' business. A key's name is the file name of its public key (e.g.
`pmos@local-5f2c4e1a.rsa.pub`): that is what a `.SIGN.RSA.<name>` tar entry refers to
(apk-formats.md §1.2, §2.8).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from reconciler.model.errors import InputError

SIGN_PREFIX = ".SIGN."
# Anything larger is not a key file; refuse before parsing.
MAX_KEY_FILE_SIZE = 64 * 1024


class KeyFileError(InputError):
    """A key file that cannot be read or is not an RSA key of the expected kind."""


class SignatureError(InputError):
    """A package or index whose signature does not verify with the given key."""


def generate_private_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A new RSA key (public exponent 65537)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """`key` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bytes:
    """The public half of `key` as "PUBLIC KEY" PEM (SubjectPublicKeyInfo)."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_key_from_pem(data: bytes, source: str) -> rsa.RSAPrivateKey:
    """An unencrypted PEM RSA private key (PKCS#1 or PKCS#8); `source` names it in errors."""
    _check_size(data, source)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{source}: expected an unencrypted PEM RSA private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{source}: expected an RSA private key, got {type(key).__name__}")
    return key


def public_key_from_pem(data: bytes, source: str) -> rsa.RSAPublicKey:
    """A PEM RSA public key ("PUBLIC KEY", as in /etc/apk/keys; "RSA PUBLIC KEY" too)."""
    _check_size(data, source)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{source}: expected a PEM RSA public key (PUBLIC KEY)") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFileError(f"{source}: expected an RSA public key, got {type(key).__name__}")
    return key


def _check_size(data: bytes, source: str) -> None:
    if len(data) > MAX_KEY_FILE_SIZE:
        raise KeyFileError(f"{source}: larger than {MAX_KEY_FILE_SIZE} bytes, not a PEM key")


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
