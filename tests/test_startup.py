"""What the daemon checks and keeps at start: keys it must never clobber, durable
decisions apart from caches, and commands that only read.

Daemons run on the fake clock with the in-memory job service; the command line
is the real one, run in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.config.settings import Config, load_config
from reconciler.formats.keys import KeyFileError
from reconciler.hooks.tokens import TokenStore
from reconciler.loop import Daemon
from reconciler.model.progress import PkgState
from reconciler.operator.store import IntentError

from .apkcheck import read_index
from .command_line import Ran, run_cli
from .conftest import ROOT, ConfigFactory, DaemonFactory, wait_until
from .sourcehut_helpers import SECRET, sourcehut_config

SOURCEHUT = (
    f"user: ops\ntoken_file: token\nfinal_key_secret: {SECRET}\n"
    "reconciler_source: https://git.example.org/reconciler\n"
    "wip_url: https://x/repo/wip\nfinal_url: https://x/repo/final\n"
    "symlink_url: https://x/repo/symlink\n"
)


def cli(config: Config | Path, *args: str) -> Ran:
    source = config.source if isinstance(config, Config) else str(config)
    return run_cli(*args, "--config", source)


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# --- keys --------------------------------------------------------------------------


def sourcehut_with_public_key(tmp_path: Path, key_files: Path, extra: str = "") -> Config:
    """A builds.sr.ht config on a host that holds the final public key only, as in
    production: the private key is a sourcehut secret."""
    path = sourcehut_config(tmp_path, SOURCEHUT)
    path.write_text(path.read_text() + f"paths: {{data: {tmp_path}/data}}\n" + extra)
    keys = tmp_path / "data/keys"
    keys.mkdir(parents=True)
    shutil.copy(key_files / "final.rsa.pub", keys / "final.rsa.pub")
    return load_config(path)


def test_a_sourcehut_daemon_never_replaces_the_installed_final_public_key(
    tmp_path: Path, key_files: Path, fake_daemon: DaemonFactory
) -> None:
    config = sourcehut_with_public_key(tmp_path, key_files)
    assert not config.keys.generate_missing, "the default for builds.sr.ht"
    installed = config.keys.final_public.read_bytes()
    fake_daemon(config)
    assert config.keys.final_public.read_bytes() == installed
    assert not config.keys.final_private.exists(), "no final private key on the daemon host"
    assert config.keys.wip_private.exists(), "the daemon's own WIP key is made"


def test_check_config_refuses_a_sourcehut_config_that_would_make_final_keys(
    tmp_path: Path, key_files: Path
) -> None:
    path = sourcehut_config(tmp_path, SOURCEHUT)
    path.write_text(path.read_text() + "keys: {generate_missing: true}\n")
    ran = cli(path, "check-config")
    assert ran.returncode == 2
    assert "keys.generate_missing: must be false with jobs.service: sourcehut" in ran.stderr


def test_a_missing_final_public_key_is_a_one_line_start_up_error(
    tmp_path: Path, key_files: Path
) -> None:
    config = sourcehut_with_public_key(tmp_path, key_files)
    config.keys.final_public.unlink()
    with pytest.raises(KeyFileError, match=r"final\.rsa\.pub: the final public key"):
        Daemon(config)
    ran = cli(config, "run", "--once")
    assert ran.returncode == 1
    assert ran.stderr.startswith("error: ") and ran.stderr.count("\n") == 1, ran.stderr
    assert "keys.final_public" in ran.stderr and "Traceback" not in ran.stderr


@pytest.mark.parametrize("kind", ["text", "directory", "fifo", "public key as private"])
def test_a_key_path_naming_something_else_is_a_one_line_error(
    make_config: ConfigFactory, kind: str
) -> None:
    config = make_config()
    wip = config.keys.wip_private
    if kind == "public key as private":
        shutil.copy(config.keys.final_public, wip)
    else:
        wip.unlink()
        if kind == "text":
            wip.write_text("hello\n")
        elif kind == "directory":
            wip.mkdir()
        else:
            os.mkfifo(wip)
    ran = cli(config, "run", "--once")  # a FIFO must not block the start
    assert ran.returncode == 1
    assert ran.stderr.startswith(f"error: {wip}: ") and ran.stderr.count("\n") == 1, ran.stderr


def test_a_local_daemon_makes_missing_final_keys_once_and_never_replaces_them(
    make_config: ConfigFactory, fake_daemon: DaemonFactory
) -> None:
    config = make_config()
    config.keys.final_private.unlink()
    config.keys.final_public.unlink()
    fake_daemon(config)
    made = config.keys.final_public.read_bytes()
    config.keys.final_private.unlink()  # the private half lost: the public one stays
    fake_daemon(config)
    assert config.keys.final_public.read_bytes() == made
    assert not config.keys.final_private.exists(), "no new pair behind the public key's back"


def test_status_and_check_config_write_nothing(tmp_path: Path, pmaports: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"paths: {{data: {tmp_path}/data, html_out: {tmp_path}/html}}\n"
        f"branches:\n  - {{name: main, pmaports: {pmaports}, arches: [x86_64]}}\n"
    )
    before = files_under(tmp_path)
    assert cli(path, "check-config").returncode == 0
    ran = cli(path, "status")
    assert ran.returncode == 2, ran.stderr  # the daemon never ran: nothing to tell
    assert "no status yet: the daemon has not written" in ran.stdout
    assert files_under(tmp_path) == before
    assert not (tmp_path / "data").exists() and not (tmp_path / "html").exists()


# --- durable decisions --------------------------------------------------------------


def hold_hello(config: Config) -> None:
    ran = cli(config, "hold", "--branch", "main", "hello-x86", "--why", "broken upstream")
    assert ran.returncode == 0, ran.stderr


def hello_state(daemon: Daemon) -> PkgState:
    result = daemon.converge(max_seconds=120)
    states = {(str(p.repo), p.pkgname): p.state for p in result.plan.packages}
    return states[("main/x86_64", "hello-x86")]


def one_arch(pmaports: Path) -> str:
    return f"branches:\n  - {{name: main, pmaports: {pmaports}, arches: [x86_64]}}\n"


def held_with_a_token(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> tuple[Config, str]:
    """A daemon that applied a hold, and a push-hook token made: the two kinds of
    durable decisions."""
    config = make_config(branches=one_arch(pmaports))
    daemon = fake_daemon(config)
    hold_hello(config)
    assert hello_state(daemon) is PkgState.HELD
    token = cli(config, "token", "new", "push-hook").stdout.strip()
    assert TokenStore(config.paths.durable / "tokens.json").verify("push-hook", token)
    return config, token


def test_deleting_the_cache_keeps_holds_and_tokens(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config, token = held_with_a_token(make_config, fake_daemon, pmaports)

    shutil.rmtree(config.paths.state)  # "the cache may be deleted"
    assert hello_state(fake_daemon(config)) is PkgState.HELD
    assert TokenStore(config.paths.durable / "tokens.json").verify("push-hook", token)
    assert not (config.paths.state / "intents.json").exists()


def test_the_upgrade_moves_intents_and_tokens_out_of_the_state_directory(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config, token = held_with_a_token(make_config, fake_daemon, pmaports)
    durable, state = config.paths.durable, config.paths.state
    for name in ("intents.json", "tokens.json"):  # where the previous release kept them
        os.replace(durable / name, state / name)
    intents = (state / "intents.json").read_bytes()

    assert hello_state(fake_daemon(config)) is PkgState.HELD
    assert (durable / "intents.json").read_bytes() == intents
    assert (durable / "tokens.json").exists() and not (state / "tokens.json").exists()
    assert not (state / "intents.json").exists()
    assert TokenStore(durable / "tokens.json").verify("push-hook", token)


def test_every_write_keeps_the_previous_version(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config(branches=one_arch(pmaports))
    daemon = fake_daemon(config)
    hold_hello(config)
    daemon.converge(max_seconds=120)
    first = (config.paths.durable / "intents.json").read_text()
    ran = cli(config, "release", "--branch", "main", "hello-x86", "--why", "fixed")
    assert ran.returncode == 0
    daemon.converge(max_seconds=120)
    assert (config.paths.durable / "intents.json.prev").read_text() == first
    assert (
        json.loads(first)["holds"]
        and not json.loads((config.paths.durable / "intents.json").read_text())["holds"]
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "unreadable operator intents"),
        ('{"holds": [{"branch": "main"}]}', "holds[0]: field 'arch' is missing"),
        (
            '{"holds": [{"branch": "main", "arch": "", "pkgname": "a", "who": "w", "why": "y",'
            ' "since": "yesterday"}]}',
            "holds[0].since: expected float, got 'yesterday'",
        ),
        (
            '{"pauses": [{"branch": "main", "arch": "", "who": "w", "why": "y", "since": 1,'
            ' "expires": NaN}]}',
            "NaN is not a JSON value",
        ),
        ('{"holds": {"a": 1}}', "field 'holds': expected a list"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_a_corrupt_intents_file_stops_the_start_with_one_line(
    make_config: ConfigFactory, content: str, expected: str
) -> None:
    config = make_config()
    path = config.paths.durable / "intents.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(IntentError):
        Daemon(config)
    ran = cli(config, "run", "--once")
    assert ran.returncode == 1
    assert ran.stderr == f"error: {path}: {expected}\n" or (
        ran.stderr.startswith(f"error: {path}: ") and expected in ran.stderr
    ), ran.stderr
    assert ran.stderr.count("\n") == 1
    assert path.read_text() == content, "never replaced by an empty set"
    assert not (config.paths.final_repo / "main").exists(), "nothing built or published"


def test_a_held_package_keeps_its_published_apk_after_the_cache_is_gone(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config(branches=one_arch(pmaports))
    assert fake_daemon(config).converge(max_seconds=120).all_published
    hold_hello(config)
    apkbuild = pmaports / "main/hello-x86/APKBUILD"
    apkbuild.write_text(apkbuild.read_text().replace("pkgrel=0", "pkgrel=1"))
    shutil.rmtree(config.paths.state)
    assert hello_state(fake_daemon(config)) is PkgState.HELD
    index = read_index(config.paths.final_repo / "main/x86_64/APKINDEX.tar.gz")
    versions = {e["P"]: e["V"] for e in index.entries}
    assert versions["hello-x86"] == "1.0.0-r0", "held: the new version was not published"


# --- one daemon per data directory ----------------------------------------------------


def test_a_second_daemon_is_refused_and_a_new_one_starts_right_after_a_sigkill(
    make_config: ConfigFactory, pmaports: Path
) -> None:
    config = make_config(branches=one_arch(pmaports), loop="resync_interval_seconds: 3600")
    lock = config.paths.data / "daemon.lock"
    command = [sys.executable, "-m", "reconciler", "run", "--config", config.source]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: lock.exists() and lock.read_text().strip() == str(first.pid))
        second = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        )
        assert second.returncode == 2
        assert f"a daemon (PID {first.pid}) already runs on this data directory" in second.stderr
        assert second.stderr.count("\n") == 1, second.stderr
        wait_until((config.paths.html_out / "status.json").exists, timeout=120)
        status = cli(config, "status")  # a command that only reads still works
        assert status.returncode in (0, 1), status.stdout + status.stderr
        assert "main/x86_64" in status.stdout
        assert first.poll() is None, "the first daemon runs on, unharmed"
    finally:
        first.kill()  # SIGKILL: no clean-up at all
        first.wait()
    again = cli(config, "run", "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "converged" in again.stdout
