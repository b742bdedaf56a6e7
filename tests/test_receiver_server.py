"""The receiver's server (real waitress on loopback): slow and idle clients cost a
channel, not a thread, and are closed after the idle timeout; wrong tokens are
cheap; shutdown (also SIGTERM of `reconciler webhook`) writes pending triggers;
port 0 and IPv6 listen addresses work.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.hooks.jobend import LOOK_NOW_ROUTE
from reconciler.hooks.tokens import TokenStore, default_store_path
from reconciler.hooks.webhook import ROUTE, ServerSettings, WebhookSettings

from .conftest import ROOT, wait_until
from .receiver_helpers import running

AFTER = "0123456789abcdef0123456789abcdef01234567"
PARTIAL = f"POST {ROUTE} HTTP/1.1\r\nHost: x\r\nX-Gitlab-Ev".encode()


def settings_for(tmp_path: Path, **extra: float) -> tuple[WebhookSettings, str]:
    store = TokenStore(tmp_path / "state" / "tokens.json")
    token = store.create("push-hook")
    settings = WebhookSettings(
        token_store=store.path, trigger_dir=tmp_path / "triggers", branches=("main",), **extra
    )
    return settings, token


def push_body(after: str = AFTER, branch: str = "main") -> bytes:
    event = {"object_kind": "push", "ref": f"refs/heads/{branch}", "before": "a" * 40}
    return json.dumps(event | {"after": after}).encode()


def post(
    port: int,
    path: str = LOOK_NOW_ROUTE,
    body: bytes = b"{}",
    headers: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> int:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the other side closed (without waiting longer than the socket's timeout)."""
    try:
        return sock.recv(4096) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def thread_counts() -> tuple[int, int]:
    """Python's threads, and the kernel's count of this process's threads."""
    status = Path("/proc/self/status").read_text()
    match = re.search(r"^Threads:\s+(\d+)$", status, re.MULTILINE)
    assert match
    return threading.active_count(), int(match.group(1))


@pytest.fixture
def slow_sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def test_a_half_sent_request_is_closed_after_the_idle_timeout(tmp_path: Path) -> None:
    settings, _ = settings_for(tmp_path, look_now_interval_seconds=0.0)
    timeout = 1
    with running(settings, ServerSettings(channel_timeout_seconds=timeout)) as webhook:
        port = webhook.server_address[1]
        half = socket.create_connection(("127.0.0.1", port), timeout=0.05)
        silent = socket.create_connection(("127.0.0.1", port), timeout=0.05)
        try:
            half.sendall(PARTIAL)
            started = time.monotonic()
            open_for: dict[str, float] = {}
            answers: list[float] = []
            while len(open_for) < 2 and time.monotonic() - started < 15:
                for name, sock in (("half", half), ("silent", silent)):
                    if name not in open_for and closed_by_peer(sock):
                        open_for[name] = time.monotonic() - started
                asked = time.monotonic()
                assert post(port) == 202  # others are answered meanwhile, promptly
                answers.append(time.monotonic() - asked)
        finally:
            half.close()
            silent.close()
    assert set(open_for) == {"half", "silent"}, "idle connections were never closed"
    for name, seconds in open_for.items():
        # Not before the timeout; within it plus the cleanup interval and slack.
        assert timeout - 0.2 <= seconds <= timeout * 2 + 3, (name, seconds)
    assert len(answers) > 5 and max(answers) < 2.0, answers


def test_many_slow_connections_do_not_grow_the_thread_pool(
    tmp_path: Path, slow_sockets: list[socket.socket]
) -> None:
    """200 clients stuck in their headers: with http.server that was 200 threads."""
    settings, token = settings_for(tmp_path, settle_seconds=0.0)
    server = ServerSettings(threads=4, channel_timeout_seconds=60)
    before = thread_counts()
    with running(settings, server) as webhook:
        port = webhook.server_address[1]
        serving = thread_counts()
        assert serving[0] <= before[0] + server.threads + 1  # the pool and the loop
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(PARTIAL)
            slow_sockets.append(sock)
        time.sleep(0.5)  # the loop has accepted them and read what they sent
        headers = {"X-Gitlab-Token": token, "X-Gitlab-Event": "Push Hook"}
        asked = time.monotonic()
        assert post(port, ROUTE, push_body(), headers) == 200
        assert time.monotonic() - asked < 2.0
        during = thread_counts()
        assert during[0] <= serving[0], (before, serving, during)
        assert during[1] <= serving[1], (before, serving, during)
        for sock in slow_sockets[:5]:
            sock.settimeout(0.05)
            assert not closed_by_peer(sock)  # still held, by the loop alone
    assert len(list((tmp_path / "triggers").glob("push-*.json"))) == 1


def test_a_flood_of_wrong_tokens_is_answered_quickly(tmp_path: Path) -> None:
    """200 wrong tokens over HTTP: with scrypt behind four slots that took 7.9 s."""
    settings, _ = settings_for(tmp_path)
    with running(settings) as webhook:
        conn = http.client.HTTPConnection("127.0.0.1", webhook.server_address[1], timeout=30)
        started = time.perf_counter()
        statuses = set()
        for i in range(200):
            headers = {"X-Gitlab-Token": f"wrong-{i}", "X-Gitlab-Event": "Push Hook"}
            conn.request("POST", ROUTE, body=push_body(), headers=headers)
            response = conn.getresponse()
            response.read()
            statuses.add(response.status)
        elapsed = time.perf_counter() - started
        conn.close()
    assert statuses == {401}
    assert elapsed < 2.0, f"200 wrong tokens took {elapsed:.2f} s"
    assert not list((tmp_path / "triggers").glob("push-*.json"))


def test_shutdown_writes_the_pending_coalesced_trigger(tmp_path: Path) -> None:
    settings, token = settings_for(tmp_path, settle_seconds=60.0)
    headers = {"X-Gitlab-Token": token, "X-Gitlab-Event": "Push Hook"}
    triggers = tmp_path / "triggers"
    with running(settings) as webhook:
        port = webhook.server_address[1]
        assert post(port, ROUTE, push_body("1" * 40), headers) == 200
        assert post(port, ROUTE, push_body("2" * 40), headers) == 200  # scheduled in 60 s
        assert post(port, ROUTE, push_body("3" * 40), headers) == 200  # joins it
        assert len(list(triggers.glob("push-*.json"))) == 1
    afters = sorted(json.loads(p.read_bytes())["after"] for p in triggers.glob("push-*.json"))
    assert afters == ["1" * 40, "3" * 40]


def test_ipv6_loopback(tmp_path: Path) -> None:
    try:
        socket.socket(socket.AF_INET6).close()
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    settings, _ = settings_for(tmp_path)
    with running(settings, listen="[::1]:0") as webhook:
        host, port = webhook.server_address
        assert host == "::1" and port > 0
        assert post(port, host="::1") == 202


def test_the_command_picks_a_free_port_and_flushes_on_sigterm(tmp_path: Path) -> None:
    """`reconciler webhook --listen 127.0.0.1:0` as a process: the log names the
    port; SIGTERM writes the push still waiting for its window, then it exits."""
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
            loop:
              settle_seconds: 60
            """
        )
    )
    token = TokenStore(default_store_path(tmp_path / "data" / "durable")).create("push-hook")
    argv = [sys.executable, "-m", "reconciler", "webhook", "--listen", "127.0.0.1:0"]
    process = subprocess.Popen(
        [*argv, "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        port = 0
        deadline = time.monotonic() + 60
        while not port and time.monotonic() < deadline:
            line = process.stderr.readline()
            assert line, "the receiver exited before listening"
            found = re.search(r"webhook receiver on 127\.0\.0\.1:(\d+) ", line)
            port = int(found.group(1)) if found else 0
        assert port > 0
        headers = {"X-Gitlab-Token": token, "X-Gitlab-Event": "Push Hook"}
        assert post(port, ROUTE, push_body("1" * 40), headers) == 200
        assert post(port, ROUTE, push_body("2" * 40), headers) == 200  # waits 60 s
        triggers = tmp_path / "data" / "triggers"
        assert len(list(triggers.glob("push-*.json"))) == 1
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "stopped" in err and token not in err
    wait_until(lambda: len(list(triggers.glob("push-*.json"))) == 2, timeout=5)
    afters = sorted(json.loads(p.read_bytes())["after"] for p in triggers.glob("push-*.json"))
    assert afters == ["1" * 40, "2" * 40]
