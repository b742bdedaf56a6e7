"""PEM key files: read with a size bound, written atomically with the right mode.

Private keys are written readable by their owner only (0600), public keys 0644.
Reading refuses a file over `MAX_KEY_FILE_SIZE` before parsing it; every problem
is a KeyFileError that names the file.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.formats.keys import (
    MAX_KEY_FILE_SIZE,
    KeyFileError,
    private_key_from_pem,
    private_key_pem,
    public_key_from_pem,
    public_key_pem,
)
from reconciler.fs.atomicfile import write_bytes
from reconciler.fs.regularfile import Refused, read_regular


def write_private_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    """Atomically write `key` as unencrypted PKCS#8 PEM, readable by its owner only."""
    write_bytes(path, private_key_pem(key), mode=0o600)


def write_public_key(path: Path, key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> None:
    """Atomically write the public half of `key` as "PUBLIC KEY" PEM (mode 0644)."""
    write_bytes(path, public_key_pem(key), mode=0o644)


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """An unencrypted PEM RSA private key file (PKCS#1 or PKCS#8)."""
    return private_key_from_pem(_read_key_file(path), str(path))


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    """A PEM RSA public key file ("PUBLIC KEY", as in /etc/apk/keys)."""
    return public_key_from_pem(_read_key_file(path), str(path))


def _read_key_file(path: Path) -> bytes:
    """The file's bytes, at most the size limit; only a regular file is read (a
    FIFO or a device named by mistake neither blocks nor streams)."""
    try:
        return read_regular(str(path), MAX_KEY_FILE_SIZE, follow_symlinks=True)[1]
    except Refused as exc:
        raise KeyFileError(f"{path}: {exc}, expected a PEM key file") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file: {exc.strerror or exc}") from exc
