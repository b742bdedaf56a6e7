"""Tokens: made once, stored only as a salted hash (0600), checked by value, replaceable,
cheaply (a wrong token costs microseconds, not a scrypt derivation); legacy scrypt
entries still verify and are rewritten as sha256.

The CLI tests drive the real command line (`reconciler.cli.main.main`) in process,
and once as `python -m reconciler token new` in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main as main_cli
from reconciler.hooks.tokens import (
    MAX_TOKEN_CHARS,
    TokenStore,
    TokenStoreError,
    default_store_path,
    new_token,
)

from .conftest import ROOT

LEGACY_N = 2**14  # what the scrypt entries of earlier releases used


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "state" / "tokens.json")


def test_new_token_is_long_random_and_url_safe() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert len(token) == 43
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_right_token_verifies_and_nothing_else_does(store: TokenStore) -> None:
    token = store.create("push-hook")
    assert store.verify("push-hook", token)
    wrong = [
        "",
        None,
        token[:-1],
        token + "x",
        token.upper() if token.upper() != token else token.lower(),
        " " + token,
        new_token(),
        "x" * 10_000_000,
        token + "\x00" * (MAX_TOKEN_CHARS - len(token) + 1),
        token * 20,
    ]
    for value in wrong:
        assert not store.verify("push-hook", value), repr(value)[:80]
    assert not store.verify("other", token)
    assert not store.verify("push-hook-2", token)


def test_new_entries_are_salted_sha256(store: TokenStore) -> None:
    token = store.create("push-hook")
    entry = json.loads(store.path.read_text())["tokens"]["push-hook"]
    assert set(entry) == {"kdf", "salt", "hash", "created_at"}
    assert entry["kdf"] == "sha256" and len(bytes.fromhex(entry["salt"])) == 16
    salted = bytes.fromhex(entry["salt"]) + token.encode()
    assert entry["hash"] == hashlib.sha256(salted).hexdigest()
    assert store.verify("push-hook", token)
    assert not store.verify("push-hook", new_token())


def test_wrong_tokens_are_cheap(store: TokenStore) -> None:
    """200 wrong tokens in well under a second: a scrypt regression (~40 ms each, 8 s
    in all) fails this; 2 s leaves room for a busy CI machine."""
    token = store.create("push-hook")
    wrong = [new_token() for _ in range(197)] + ["", "x" * 10_000, token[:-1]]
    started = time.perf_counter()
    for value in wrong:
        assert not store.verify("push-hook", value)
    assert not store.verify("unknown-name", token)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"201 wrong tokens took {elapsed:.2f} s"


# --- entries of earlier releases: scrypt ------------------------------------------


def legacy_entry(token: str, n: int = LEGACY_N) -> dict[str, Any]:
    """An entry as earlier releases wrote it."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(token.encode(), salt=salt, n=n, r=8, p=1, dklen=32)
    return {
        "kdf": "scrypt",
        "n": n,
        "r": 8,
        "p": 1,
        "salt": salt.hex(),
        "hash": digest.hex(),
        "created_at": "2025-01-02T03:04:05+00:00",
    }


def write_store(store: TokenStore, entries: dict[str, Any]) -> None:
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(json.dumps({"version": 1, "tokens": entries}))
    store.path.chmod(0o600)


def test_a_legacy_scrypt_entry_verifies_and_is_rewritten_as_sha256(
    store: TokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token, other = new_token(), new_token()
    write_store(store, {"push-hook": legacy_entry(token), "job-callback": legacy_entry(other)})
    assert not store.verify("push-hook", new_token())  # a wrong one rewrites nothing
    assert json.loads(store.path.read_text())["tokens"]["push-hook"]["kdf"] == "scrypt"

    assert store.verify("push-hook", token)
    entries = json.loads(store.path.read_text())["tokens"]
    rewritten = entries["push-hook"]
    assert rewritten["kdf"] == "sha256" and "n" not in rewritten
    assert rewritten["created_at"] == "2025-01-02T03:04:05+00:00"
    assert entries["job-callback"]["kdf"] == "scrypt"  # only what verified
    assert token.encode() not in store.path.read_bytes()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.verify("push-hook", token)
    assert not store.verify("push-hook", other)
    assert all(token not in r.getMessage() for r in caplog.records)
    assert store.verify("job-callback", other)
    assert json.loads(store.path.read_text())["tokens"]["job-callback"]["kdf"] == "sha256"


def test_a_store_that_cannot_be_written_keeps_scrypt_and_says_so_once(
    store: TokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The flock's file cannot be opened (a directory in its place: root ignores modes)."""
    token = new_token()
    write_store(store, {"push-hook": legacy_entry(token, n=2**10)})
    (store.path.parent / f".{store.path.name}.lock").mkdir()
    before = store.path.read_bytes()
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        assert store.verify("push-hook", token)
    assert store.path.read_bytes() == before
    kept = [r for r in caplog.records if "stays a scrypt hash" in r.getMessage()]
    assert len(kept) == 1 and kept[0].levelno == logging.WARNING


def test_a_legacy_entry_replaced_meanwhile_is_left_alone(tmp_path: Path) -> None:
    """Two receivers verify the old token while an operator replaces it: the new
    token stays, whatever order the writes come in."""
    first, second = TokenStore(tmp_path / "t.json"), TokenStore(tmp_path / "t.json")
    old = new_token()
    write_store(first, {"push-hook": legacy_entry(old, n=2**10)})
    new = second.create("push-hook")
    assert not first.verify("push-hook", old)
    assert first.verify("push-hook", new)


def test_store_holds_only_a_salted_hash_mode_0600(store: TokenStore) -> None:
    first = store.create("push-hook")
    second = store.create("callback")
    raw = store.path.read_bytes()
    for token in (first, second):
        assert token.encode() not in raw
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    doc = json.loads(raw)
    assert set(doc["tokens"]) == {"push-hook", "callback"}
    salts = {entry["salt"] for entry in doc["tokens"].values()}
    assert len(salts) == 2
    assert not [p for p in store.path.parent.iterdir() if p.name.endswith(".tmp")]


def test_same_token_different_salt_gives_different_hash(tmp_path: Path) -> None:
    a = TokenStore(tmp_path / "a.json")
    a.create("t")
    b = TokenStore(tmp_path / "b.json")
    b.create("t")
    hashes = [json.loads(s.path.read_text())["tokens"]["t"]["hash"] for s in (a, b)]
    assert hashes[0] != hashes[1]


def test_create_again_replaces_and_keeps_other_names(store: TokenStore) -> None:
    old = store.create("push-hook")
    other = store.create("callback")
    new = store.create("push-hook")
    assert old != new
    assert not store.verify("push-hook", old)
    assert store.verify("push-hook", new)
    assert store.verify("callback", other)
    assert store.names() == ["callback", "push-hook"]


def test_missing_store_verifies_nothing(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "absent" / "tokens.json")
    assert not store.has("push-hook")
    assert not store.verify("push-hook", "anything")
    assert store.names() == []


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".", "a b", "x" * 200])
def test_unsafe_names_are_refused(store: TokenStore, name: str) -> None:
    with pytest.raises(TokenStoreError):
        store.create(name)


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"version": 2, "tokens": {}}',
        b'{"version": 1, "tokens": []}',
        b'{"version": 1, "tokens": {"push-hook": {"kdf": "md5"}}}',
        b'{"version": 1, "tokens": {"push-hook": {"kdf": "scrypt", "n": 1073741824, "r": 8,'
        b' "p": 1, "salt": "00000000000000000000000000000000", "hash": "00"}}}',
        b'{"version": 1, "tokens": {"push-hook": {"kdf": "sha256",'
        b' "salt": "00000000000000000000000000000000", "hash": "00"}}}',
        b'{"version": 1, "tokens": {"push-hook": {"kdf": "sha256", "salt": "zz", "hash": "00"}}}',
    ],
)
def test_corrupt_store_is_an_error_not_a_pass(store: TokenStore, content: bytes) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(content)
    with pytest.raises(TokenStoreError):
        store.verify("push-hook", "anything")


# --- the CLI ----------------------------------------------------------------------


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            paths:
              data: {tmp_path}/data
            branches:
              - name: main
                pmaports: {ROOT}/examples/pmaports
                arches: [x86_64]
            """
        )
    )
    return config


def run_hooks(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        main_cli.main(argv)
    return int(exited.value.code or 0)


def test_cli_token_new_prints_once_and_replaces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = write_config(tmp_path)
    assert run_hooks(["token", "new", "push-hook", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    first = out.strip()
    assert out == first + "\n"  # stdout is the token and nothing else
    assert first not in err
    assert all(first not in record.getMessage() for record in caplog.records)
    store = TokenStore(default_store_path(tmp_path / "data" / "durable"))
    assert store.path.exists() and first.encode() not in store.path.read_bytes()
    assert store.verify("push-hook", first)

    assert run_hooks(["token", "new", "push-hook", "--config", str(config)]) == 0
    second = capsys.readouterr().out.strip()
    assert second != first
    assert store.verify("push-hook", second)
    assert not store.verify("push-hook", first)

    assert run_hooks(["token", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "push-hook\n"


def test_cli_token_new_refuses_a_bad_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_hooks(["token", "new", "../x", "--token-store", str(tmp_path / "t.json")])
    assert code == 2
    out, err = capsys.readouterr()
    assert out == "" and "error:" in err
    assert not (tmp_path / "t.json").exists()


def test_real_cli_token_new(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    argv = [sys.executable, "-m", "reconciler", "token", "new", "push-hook", "-c", str(config)]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    second = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    store = TokenStore(default_store_path(tmp_path / "data" / "durable"))
    for result in (first, second):
        assert result.stdout.count("\n") == 1 and result.stdout.strip() not in result.stderr
    assert not store.verify("push-hook", first.stdout.strip())
    assert store.verify("push-hook", second.stdout.strip())
