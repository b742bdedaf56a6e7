"""The push-hook receiver over real HTTP on 127.0.0.1 (a free port per test).

Every refused or ignored request must leave the trigger directory empty; a good
event must leave exactly one file there that the daemon's own parser accepts.
These tests turn push coalescing off (`settle_seconds=0`), so every push is one
file; `test_receiver_coalescing` tests the window.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import socket
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.hooks.tokens import TokenStore, default_store_path
from reconciler.hooks.webhook import (
    ROUTE,
    WebhookError,
    WebhookServer,
    WebhookSettings,
    make_server,
    serve,
)
from reconciler.operator.trigger_dir import TriggerDir
from reconciler.operator.triggers import parse_trigger

from .conftest import ROOT
from .receiver_helpers import serving

BEFORE = "a" * 40
AFTER = "0123456789abcdef0123456789abcdef01234567"
LIMIT = 64 * 1024


@dataclass
class Hook:
    port: int
    token: str
    triggers: Path

    def post(
        self,
        body: bytes | str | dict[str, Any],
        *,
        token: str | None = "",
        event: str | None = "Push Hook",
        headers: dict[str, str] | None = None,
        path: str = ROUTE,
        method: str = "POST",
    ) -> tuple[int, str]:
        """Send one request; token "" means the right one, None means no header."""
        if isinstance(body, dict):
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else body
        sent = {"Content-Type": "application/json"}
        if token is not None:
            sent["X-Gitlab-Token"] = token or self.token
        if event is not None:
            sent["X-Gitlab-Event"] = event
        sent.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def files(self) -> list[Path]:
        """Everything in the trigger directory except its processed/rejected subdirs."""
        return sorted(p for p in self.triggers.iterdir() if p.is_file())


def push(branch: str = "main", **extra: Any) -> dict[str, Any]:
    event = {
        "object_kind": "push",
        "event_name": "push",
        "before": BEFORE,
        "after": AFTER,
        "ref": f"refs/heads/{branch}",
        "checkout_sha": AFTER,
        "project": {"path_with_namespace": "postmarketOS/pmaports"},
        "commits": [{"id": AFTER, "message": "main: bump", "added": [], "modified": []}],
        "total_commits_count": 1,
    }
    event.update(extra)
    return event


@pytest.fixture
def hook(tmp_path: Path) -> Iterator[Hook]:
    store = TokenStore(tmp_path / "state" / "tokens.json")
    token = store.create("push-hook")
    settings = WebhookSettings(
        token_store=store.path,
        trigger_dir=tmp_path / "triggers",
        branches=("main", "v25.12"),
        max_body_bytes=LIMIT,
        settle_seconds=0.0,
    )
    with serving(settings) as port:
        yield Hook(port, token, settings.trigger_dir)


def test_good_push_writes_exactly_one_valid_trigger(hook: Hook) -> None:
    status, text = hook.post(push())
    assert status == 200, text
    files = hook.files()
    assert len(files) == 1
    name = files[0].name
    assert re.fullmatch(r"push-\d{8}T\d{12}Z-0123456789ab-[0-9a-f]{8}\.json", name)
    trigger = parse_trigger(name, files[0].read_bytes())
    assert trigger.type == "push"
    assert trigger.data["branch"] == "main"
    assert (trigger.data["before"], trigger.data["after"]) == (BEFORE, AFTER)
    assert set(trigger.data) == {"type", "branch", "before", "after", "received_at"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", trigger.data["received_at"])
    assert not [p for p in hook.triggers.iterdir() if p.name.startswith(".")]


def test_triggers_are_drained_by_the_daemons_trigger_dir(hook: Hook) -> None:
    for branch in ("main", "v25.12", "main_staging_foo", "v25.12_staging_x.y-z"):
        assert hook.post(push(branch))[0] == 200
    hook.post(push(after="0" * 40))  # a deleted branch is still a push to report
    hook.post(push())  # the same delivery twice: two files, none overwritten
    handled = TriggerDir(hook.triggers).drain()
    branches = sorted(t.data["branch"] for t in handled if t.type == "push")
    expected = ["main", "main", "main", "main_staging_foo", "v25.12", "v25.12_staging_x.y-z"]
    assert branches == expected
    assert not list((hook.triggers / "rejected").iterdir())


@pytest.mark.parametrize("token", [None, "wrong", "", "x" * 5000])
def test_missing_or_wrong_token_is_401_and_says_nothing_more(hook: Hook, token: str | None) -> None:
    headers = {"X-Gitlab-Token": token} if token == "" else None
    status, text = hook.post(push(), token=token or None, headers=headers)
    assert (status, text) == (401, "unauthorized\n")
    assert hook.files() == []


def test_token_in_another_header_or_query_does_not_count(hook: Hook) -> None:
    status, _ = hook.post(push(), token=None, headers={"Authorization": f"Bearer {hook.token}"})
    assert status == 401
    assert hook.post(push(), token=None, path=f"{ROUTE}?token={hook.token}")[0] == 401
    assert hook.files() == []


def test_body_over_the_limit_is_413(hook: Hook) -> None:
    big = json.dumps(push(padding="x" * LIMIT))
    assert hook.post(big)[0] == 413
    assert hook.files() == []


def test_declared_length_over_the_limit_is_refused_before_reading(hook: Hook) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", hook.port, timeout=30)
    try:
        conn.putrequest("POST", ROUTE)
        conn.putheader("X-Gitlab-Token", hook.token)
        conn.putheader("X-Gitlab-Event", "Push Hook")
        conn.putheader("Content-Length", str(10**12))
        conn.endheaders(b"{")  # a terabyte announced, one byte sent
        response = conn.getresponse()
        assert response.status == 413
    finally:
        conn.close()
    assert hook.files() == []


def raw_status(port: int, request: bytes) -> bytes:
    """Send bytes as they are; the status code of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        return bytes(sock.makefile("rb").readline().split()[1])


def test_missing_length_and_bad_length_are_refused(hook: Hook) -> None:
    head = f"POST {ROUTE} HTTP/1.1\r\nHost: x\r\nX-Gitlab-Token: {hook.token}\r\n"
    assert raw_status(hook.port, head.encode() + b"X-Gitlab-Event: Push Hook\r\n\r\n") == b"411"
    # HTTP/1.0 has no chunked encoding: a Transfer-Encoding the server leaves is refused.
    head10 = head.replace("HTTP/1.1", "HTTP/1.0") + "Transfer-Encoding: chunked\r\n"
    assert raw_status(hook.port, head10.encode() + b"Content-Length: 2\r\n\r\n{}") == b"411"
    body = json.dumps(push()).encode()
    assert hook.post(body, headers={"Content-Length": "12x"})[0] == 400
    assert hook.files() == []


def test_chunked_bodies_are_bounded_by_the_server_then_checked_as_any_other(hook: Hook) -> None:
    """waitress de-chunks within its limit (the largest route's), the route checks its own."""

    def chunked(data: bytes) -> bytes:
        head = (
            f"POST {ROUTE} HTTP/1.1\r\nHost: x\r\nX-Gitlab-Token: {hook.token}\r\n"
            "X-Gitlab-Event: Push Hook\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        return head.encode() + f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n"

    assert raw_status(hook.port, chunked(json.dumps(push(padding="x" * LIMIT)).encode())) == b"413"
    assert hook.files() == []
    assert raw_status(hook.port, chunked(b"x" * (2 * 1024 * 1024))) == b"413"  # the server's
    assert hook.files() == []
    assert raw_status(hook.port, chunked(json.dumps(push()).encode())) == b"200"
    assert len(hook.files()) == 1


@pytest.mark.parametrize(
    ("event", "body"),
    [
        ("Merge Request Hook", push()),
        ("Push Hook", push(object_kind="merge_request")),
        ("Push Hook", push(object_kind=None)),
        (None, push()),
        ("System Hook", push()),
        ("Tag Push Hook", push()),  # header and object_kind disagree
    ],
)
def test_non_push_events_are_400(hook: Hook, event: str | None, body: dict[str, Any]) -> None:
    assert hook.post(body, event=event)[0] == 400
    assert hook.files() == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"not json",
        b"\xff\xfe{}",
        b"[]",
        b'"push"',
        b"[" * 60_000,  # nested too deeply, under the limit
        json.dumps(push(before="abc")).encode(),
        json.dumps(push(after="g" * 40)).encode(),
        json.dumps(push(after=None)).encode(),
        json.dumps(push(ref=None)).encode(),
    ],
)
def test_malformed_bodies_are_400(hook: Hook, body: bytes) -> None:
    status, _ = hook.post(body)
    assert status == 400
    assert hook.files() == []


@pytest.mark.parametrize(
    ("event", "body"),
    [
        ("Tag Push Hook", push(object_kind="tag_push", ref="refs/tags/v1.0")),
        ("Push Hook", push(ref="refs/tags/v1.0")),
        ("Push Hook", push(ref="refs/merge-requests/1/head")),
        ("Push Hook", push("feature")),
        ("Push Hook", push("main_staging_")),
        ("Push Hook", push("other_staging_x")),
        ("Push Hook", push("mainline")),
        ("Push Hook", push("main_staging_../x")),
        ("Push Hook", push("main/sub")),
        ("Push Hook", push("main_staging_x\n")),
        ("Push Hook", push("main\n")),
        ("Push Hook", push("main_staging_x\nforged log line")),
    ],
)
def test_tags_and_other_branches_are_200_without_trigger(
    hook: Hook, event: str, body: dict[str, Any]
) -> None:
    status, text = hook.post(body, event=event)
    assert status == 200, text
    assert "nothing to do" in text
    assert hook.files() == []


def test_other_paths_and_methods(hook: Hook) -> None:
    assert hook.post(push(), path="/api/push-hook/github")[0] == 404
    assert hook.post(push(), path="/")[0] == 404
    assert hook.post(b"", method="GET")[0] == 405
    assert hook.post(b"", method="PUT")[0] == 405
    assert hook.files() == []


def test_one_log_line_per_request_without_the_token(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hook.post(push())
    hook.post(push(), token="wrong-token-value")
    hook.post(b"{", headers={"X-Custom": "secretish", "X-Real-IP": "203.0.113.5"})
    hook.post(b"{", headers={"X-Real-IP": "secretish\tforged"})
    hook.post(b"{", path="/x%0Aforged%20line")
    lines = [r.getMessage() for r in caplog.records if r.name == "reconciler.hooks.app"]
    assert len(lines) == 5, lines
    assert [line.split('" ')[1].split()[0] for line in lines] == ["200", "401", "400", "400", "404"]
    assert "\n" not in lines[4] and lines[4].endswith('"POST /x?forged line" 404 not found')
    assert lines[2].startswith('127.0.0.1 for 203.0.113.5 "POST ')
    for line in lines:
        assert hook.token not in line and "wrong-token-value" not in line
        assert "secretish" not in line


def test_concurrent_pushes_each_get_their_own_file(hook: Hook) -> None:
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(hook.post(push())[0])) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [200] * 8
    assert len(hook.files()) == 8


def test_serve_reads_paths_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            paths:
              data: {tmp_path}/data
            branches:
              - name: edge
                pmaports: {ROOT}/examples/pmaports
                arches: [x86_64]
            """
        )
    )
    with pytest.raises(WebhookError, match="token new push-hook"):
        serve(config, "127.0.0.1:0")
    token = TokenStore(default_store_path(tmp_path / "data" / "durable")).create("push-hook")
    started: list[WebhookServer] = []
    ready = threading.Event()

    def on_ready(server: WebhookServer) -> None:
        started.append(server)
        ready.set()

    thread = threading.Thread(
        target=serve, args=(config, "127.0.0.1:0"), kwargs={"ready": on_ready}, daemon=True
    )
    thread.start()
    assert ready.wait(30)
    server = started[0]
    try:
        assert server.server_address[0] == "127.0.0.1"
        hook = Hook(server.server_address[1], token, tmp_path / "data" / "triggers")
        assert hook.post(push("main"))[0] == 200  # not configured here
        assert hook.post(push("edge"))[0] == 200
        assert [json.loads(p.read_bytes())["branch"] for p in hook.files()] == ["edge"]
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.mark.parametrize("listen", ["8081", "localhost:", ":80", "host:99999", "[::1]"])
def test_bad_listen_addresses(tmp_path: Path, listen: str) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    store.create("push-hook")
    settings = WebhookSettings(store.path, tmp_path / "t", ("main",))
    with pytest.raises(WebhookError, match="--listen"):
        make_server(settings, listen)
    assert not os.path.exists(tmp_path / "t")
