"""Shared secrets (such as the GitLab push-hook token): made, stored hashed, checked.

A token is `secrets.token_urlsafe(32)` (256 random bits). Its plaintext exists only
in the return value of `TokenStore.create`, which the CLI prints once to the
terminal; this module never logs, stores or formats it. The store is one JSON file
in the durable directory (mode 0600, replaced atomically with its previous version
kept as `.prev`, read-modify-write under an flock on a sibling `.lock` file) that
holds, per token name, only

    {"kdf": "sha256", "salt": <16 random bytes, hex>,
     "hash": <sha256(salt + token), hex>, "created_at": <ISO UTC>}

Why a plain salted SHA-256 and not a slow password hash: a slow hash (scrypt,
bcrypt, argon2) exists to make guessing a *low-entropy* password from a leaked
hash expensive. Nobody can guess 256 random bits, fast hash or not, so the cost
would buy nothing, while every request (above all the unauthenticated ones with a
wrong token) would pay it: with scrypt, 200 wrong tokens took seconds and 16 MiB
each. The salt keeps equal tokens in two stores from having equal hashes.

`verify` hashes the presented value and compares with `hmac.compare_digest`; an
unknown name, an empty, missing or over-long value costs the same hashing (a few
microseconds), so timing tells nothing about which check failed.

Entries written before this format, `{"kdf": "scrypt", "n", "r", "p", "salt",
"hash", ...}`, keep working: they are checked with their stored parameters, and
the first time one verifies, it is rewritten as sha256 (under the flock, only if
nobody replaced it meanwhile). A store that cannot be written keeps the scrypt
entry, which is logged once per `TokenStore`; such an entry costs a scrypt
derivation per request until it is rewritten or replaced (`reconciler token new`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.fs.durable import adopt_legacy, write_keeping_previous
from reconciler.model.errors import UsageError
from reconciler.model.names import is_safe_name

log = logging.getLogger(__name__)

STORE_FILE_NAME = "tokens.json"
FORMAT_VERSION = 1
KDF = "sha256"
LEGACY_KDF = "scrypt"  # read, verified and rewritten as KDF; never written
SALT_BYTES = 16
HASH_BYTES = 32
MAX_TOKEN_CHARS = 512  # anything longer is wrong without further thought
_MAX_SCRYPT_MEMORY = 64 * 1024 * 1024  # bounds n and r read back from the file
_DUMMY_SALT = bytes(SALT_BYTES)


class TokenStoreError(UsageError):
    """The store cannot be read or written, or holds something unexpected."""


def new_token() -> str:
    """A fresh random token: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def default_store_path(durable_dir: Path, legacy_dir: Path | None = None) -> Path:
    """Where the store lives unless told otherwise: `<paths.durable>/tokens.json`.
    A store still in `legacy_dir` (`paths.state`, before the durable directory
    existed) is moved there first."""
    if legacy_dir is not None:
        adopt_legacy(durable_dir, legacy_dir, (STORE_FILE_NAME,))
    return durable_dir / STORE_FILE_NAME


@dataclass(frozen=True, slots=True)
class _Entry:
    kdf: str  # KDF or LEGACY_KDF
    salt: bytes
    digest: bytes
    scrypt: tuple[int, int, int] = (0, 0, 0)  # n, r, p of a legacy entry

    def derive(self, token: str) -> bytes:
        if self.kdf == LEGACY_KDF:
            n, r, p = self.scrypt
            return _scrypt(token, self.salt, n, r, p)
        return _sha256(token, self.salt)


def _sha256(token: str, salt: bytes) -> bytes:
    return hashlib.sha256(salt + token.encode("utf-8", errors="surrogateescape")).digest()


def _scrypt(token: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    data = token.encode("utf-8", errors="surrogateescape")
    return hashlib.scrypt(
        data, salt=salt, n=n, r=r, p=p, dklen=HASH_BYTES, maxmem=2 * _MAX_SCRYPT_MEMORY
    )


def _new_entry(token: str, created_at: str | None = None) -> dict[str, str]:
    salt = secrets.token_bytes(SALT_BYTES)
    return {
        "kdf": KDF,
        "salt": salt.hex(),
        "hash": _sha256(token, salt).hex(),
        "created_at": created_at or datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _parse_entry(name: str, raw: Any) -> _Entry:
    where = f"token {name!r}"
    kdf = raw.get("kdf") if isinstance(raw, dict) else None
    if kdf not in (KDF, LEGACY_KDF):
        raise TokenStoreError(f"{where}: expected an object with kdf {KDF!r} or {LEGACY_KDF!r}")
    try:
        salt = bytes.fromhex(str(raw.get("salt")))
        digest = bytes.fromhex(str(raw.get("hash")))
    except ValueError as exc:
        raise TokenStoreError(f"{where}: salt and hash must be hex") from exc
    if len(salt) < 8 or len(digest) != HASH_BYTES:
        raise TokenStoreError(f"{where}: salt or hash has the wrong length")
    if kdf == KDF:
        return _Entry(KDF, salt, digest)
    params: list[int] = []
    for key in ("n", "r", "p"):
        value = raw.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise TokenStoreError(f"{where}: {key} must be a positive integer")
        params.append(value)
    n, r, p = params
    if n < 2 or n & (n - 1) or 128 * n * r > _MAX_SCRYPT_MEMORY or p > 16:
        raise TokenStoreError(f"{where}: scrypt parameters out of range")
    return _Entry(LEGACY_KDF, salt, digest, (n, r, p))


class TokenStore:
    """The token file at `path`; read on every call, so a new token takes effect at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._kept_legacy = False  # a legacy entry could not be rewritten (logged once)

    def create(self, name: str) -> str:
        """Make a token for `name`, replacing any old one; store its hash, return it."""
        if not is_safe_name(name):
            raise TokenStoreError(f"token name {name!r}: use letters, digits and . _ + -")
        token = new_token()
        entry = _new_entry(token)
        with self._locked():
            tokens = self._read_raw()
            tokens[name] = entry
            self._write_raw(tokens)
        log.info("stored a new hashed token %r in %s", name, self.path)
        return token

    def names(self) -> list[str]:
        """The names that have a token."""
        return sorted(self._read_raw())

    def has(self, name: str) -> bool:
        return name in self._read_raw()

    def verify(self, name: str, presented: str | None) -> bool:
        """True only when `presented` is the current token of `name`.

        Always hashes once, also for an unknown name or an empty, over-long or
        missing value, and compares digests with `hmac.compare_digest`. A legacy
        scrypt entry that verifies is rewritten as sha256.
        """
        raw = self._read_raw().get(name)
        entry = _parse_entry(name, raw) if raw is not None else None
        value = presented or ""
        plausible = entry is not None and 0 < len(value) <= MAX_TOKEN_CHARS
        value = value[:MAX_TOKEN_CHARS]
        if entry is None:
            hmac.compare_digest(_sha256(value, _DUMMY_SALT), _DUMMY_SALT * 2)
            return False
        good = hmac.compare_digest(entry.derive(value), entry.digest) and plausible
        if good and entry.kdf == LEGACY_KDF:
            self._rehash(name, raw, value)
        return good

    def _rehash(self, name: str, verified: Any, token: str) -> None:
        """Replace a verified legacy entry by a sha256 one, unless it changed meanwhile."""
        try:
            with self._locked():
                tokens = self._read_raw()
                if tokens.get(name) != verified:
                    return  # replaced or removed since it was read: leave it alone
                tokens[name] = _new_entry(token, str(verified.get("created_at") or "") or None)
                self._write_raw(tokens)
        except (OSError, TokenStoreError) as exc:
            if not self._kept_legacy:
                self._kept_legacy = True
                log.warning(
                    "token %r stays a scrypt hash (slow to check): cannot rewrite %s: %s",
                    name,
                    self.path,
                    exc,
                )
            return
        log.info("token %r: rewrote its scrypt hash as sha256 in %s", name, self.path)

    # --- the file -----------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_raw(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                data = handle.read(1024 * 1024 + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise TokenStoreError(f"{self.path}: cannot read: {exc}") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("%s is readable by others (mode %o); it should be 0600", self.path, mode)
        if len(data) > 1024 * 1024:
            raise TokenStoreError(f"{self.path}: larger than 1 MiB")
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise TokenStoreError(f"{self.path}: not a JSON document: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
            raise TokenStoreError(f"{self.path}: expected an object with version {FORMAT_VERSION}")
        tokens = doc.get("tokens")
        if not isinstance(tokens, dict):
            raise TokenStoreError(f"{self.path}: field 'tokens': expected an object")
        return tokens

    def _write_raw(self, tokens: dict[str, Any]) -> None:
        doc = {"version": FORMAT_VERSION, "tokens": tokens}
        data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")
        try:
            write_keeping_previous(self.path, data, mode=0o600)
        except OSError as exc:
            raise TokenStoreError(f"{self.path}: cannot write: {exc}") from exc
