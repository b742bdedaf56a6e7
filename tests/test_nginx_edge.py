"""deploy/nginx.conf at the edge of the receiver's routes, on a real nginx.

nginx owns the three API routes: the shipped client timeouts, buffering,
no-retry and rate-limit directives are there; a client that stalls mid-request
is cut off by nginx within the timeout (the test's copy shortens the shipped
10 s to 1 s) and the receiver never sees it; a slow but complete request reaches
the receiver whole, with a Content-Length, over a kept-alive connection; past a
route's burst nginx answers 429 itself (even with no receiver at all), and with a
receiver up every push gets 2xx or 429, never a 5xx. Every answer carries the
security headers and `Cache-Control: no-store`. A tiny HTTP/1.1 server stands in
for the receiver; the last test runs the real `reconciler webhook`.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.config.settings import load_config
from reconciler.hooks import webhook

from .nginx_server import (
    DEBIAN_MAIN_CONF,
    DEPLOY_CONF,
    ROOT,
    TIMEOUT,
    ConfBlock,
    NginxServer,
    debian_main_config,
    free_port,
    in_ci,
    parse_conf,
    port_open,
    render_server_block,
    require_tool,
    seconds,
)
from .test_nginx_headers import assert_security_headers

PUSH = "/api/push-hook/gitlab"
CALLBACK = "/api/job-callback"
LOOK_NOW = "/api/look-now"
ROUTES = (PUSH, CALLBACK, LOOK_NOW)
SHORT = 1.0  # the test copy's client_header_timeout and client_body_timeout
TIMEOUT_SLACK = 3.0  # timer granularity and a loaded CI machine
PUSH_BURST_AT_MOST = 200  # the test fires more than any sane burst
BRANCHES = ("main", "v25.06", "v24.12")
SOURCES = ("127.0.0.2", "127.0.0.3")  # client addresses, both loopback


# -- the shipped directives --------------------------------------------------------


def shipped() -> ConfBlock:
    return parse_conf(DEPLOY_CONF.read_text(encoding="utf-8"))


def zones(conf: ConfBlock) -> dict[str, tuple[str, float]]:
    """limit_req_zone name -> (key, requests per second)."""
    found = {}
    for key, *args in conf.values("limit_req_zone"):
        options = dict(arg.split("=", 1) for arg in args)
        name = options["zone"].split(":", 1)[0]
        rate = re.fullmatch(r"(\d+)r/(s|m)", options["rate"])
        assert rate, options["rate"]
        found[name] = (key, int(rate.group(1)) / (1 if rate.group(2) == "s" else 60))
    return found


def receiver_idle_timeout() -> float:
    """How long the receiver keeps an idle connection open (waitress's channel timeout)."""
    settings = getattr(webhook, "ServerSettings", None)
    return float(getattr(settings(), "channel_timeout_seconds", 10)) if settings else 10.0


def limit(block: ConfBlock) -> tuple[str, int]:
    """The zone and burst of the block's one limit_req, which must say nodelay."""
    [args] = block.values("limit_req")
    options = dict(arg.split("=", 1) for arg in args if "=" in arg)
    assert "nodelay" in args, f"{block.words}: limit_req without nodelay"
    return options["zone"], int(options["burst"])


def test_shipped_edge_directives() -> None:
    conf = shipped()
    server = conf.find("server")
    [[header_timeout]] = server.values("client_header_timeout")
    assert seconds(header_timeout) <= 10
    api = server.find("location", "^~", "/api/")
    assert api.values("proxy_request_buffering") == [["on"]]
    assert api.values("proxy_next_upstream") == [["off"]]
    assert api.values("limit_req_status") == [["429"]]
    for name in ("client_body_timeout", "send_timeout"):
        [[value]] = api.values(name)
        assert seconds(value) <= 10, f"{name} {value}"
    # Keepalive to the receiver needs HTTP/1.1 and no "Connection: close".
    assert api.values("proxy_http_version") == [["1.1"]]
    assert ["Connection", ""] in api.values("proxy_set_header")
    upstream = conf.find("upstream", "reconciler_webhook")
    assert upstream.values("server") == [["127.0.0.1:8081"]]
    assert upstream.values("keepalive")
    # nginx must drop an idle connection before the receiver does (a POST on a
    # connection the receiver just closed is not retried: it would be a 502).
    [[idle]] = upstream.values("keepalive_timeout")
    assert seconds(idle) < receiver_idle_timeout(), idle
    found = zones(conf)
    for route in ROUTES:
        location = api.find("location", "=", route)
        assert location.values("proxy_pass") == [["http://reconciler_webhook"]], route
        assert location.values("client_max_body_size"), route
        zone, burst = limit(location)
        assert zone in found, f"{route}: zone {zone} is not defined"
        assert 0 < burst <= PUSH_BURST_AT_MOST
        # nothing a location sets may undo the edge settings of /api/
        for name in ("proxy_request_buffering", "proxy_next_upstream", "proxy_set_header"):
            assert not location.values(name), f"{route} sets {name} again"
    # Every other location is static: nothing proxies outside /api/.
    for block in server.walk():
        if block is not api and block not in api.blocks:
            assert not block.values("proxy_pass"), block.words


# -- a stand-in for the receiver -----------------------------------------------------


@dataclass
class Seen:
    at: float  # time.monotonic() when the whole request had been read
    peer: tuple[str, int]  # nginx's end of the connection
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StandIn:
    server: ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        port: int = self.server.server_address[1]
        return port

    def requests(self) -> list[Seen]:
        with self.lock:
            return list(self.seen)


class StandInHandler(BaseHTTPRequestHandler):
    """Answers every POST 200 "accepted", keeping the connection open (HTTP/1.1)."""

    protocol_version = "HTTP/1.1"
    stand_in: StandIn

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        with self.stand_in.lock:
            self.stand_in.seen.append(
                Seen(time.monotonic(), self.client_address, self.path, dict(self.headers), body)
            )
        payload = b"accepted\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    handler = type("Handler", (StandInHandler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    fake = StandIn(server)
    handler.stand_in = fake
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def shorten(block: str) -> str:
    """The test's copy: the header and body timeouts SHORT instead of the shipped ones."""
    for name in ("client_header_timeout", "client_body_timeout"):
        block, found = re.subn(
            rf"^(\s*){name} \S+;", rf"\g<1>{name} {SHORT:g}s;", block, flags=re.M
        )
        assert found == 1, name
    return block


def start_nginx(tmp_path: Path, upstream_port: int) -> NginxServer:
    require_tool("nginx", "nginx-light")
    for name in ("html", "final", "wip"):
        (tmp_path / name).mkdir(exist_ok=True)
    return NginxServer.start(
        tmp_path / "html",
        tmp_path / "final",
        tmp_path / "wip",
        tmp_path / "nginx",
        upstream_port=upstream_port,
        edit=shorten,
    )


@pytest.fixture
def edge(tmp_path: Path, stand_in: StandIn) -> Iterator[str]:
    """Base URL of nginx in front of the stand-in."""
    server = start_nginx(tmp_path, stand_in.port)
    try:
        yield server.base_url.rstrip("/")
    finally:
        server.stop()


@pytest.fixture
def no_receiver(tmp_path: Path) -> Iterator[str]:
    """Base URL of nginx whose receiver port has nothing listening."""
    server = start_nginx(tmp_path, free_port())
    try:
        yield server.base_url.rstrip("/")
    finally:
        server.stop()


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def push_event(branch: str, number: int = 0) -> bytes:
    after = f"{number:040x}"
    event = {"object_kind": "push", "ref": f"refs/heads/{branch}", "before": "0" * 40}
    return json.dumps(event | {"after": after}).encode()


PUSH_HEADERS = {"X-Gitlab-Event": "Push Hook", "Content-Type": "application/json"}


# -- timeouts ------------------------------------------------------------------------


def wait_cut_off(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until nginx closes the connection, and what it sent before."""
    started = time.monotonic()
    sock.settimeout(limit)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"nginx kept the stalled connection open for {limit} s")
    return time.monotonic() - started, received


def assert_408_or_nothing(received: bytes) -> None:
    if received:
        assert received.startswith(b"HTTP/1.1 408"), received[:100]


@pytest.mark.parametrize("route", ROUTES)
def test_half_a_header_is_cut_off_within_the_timeout(
    route: str, edge: str, stand_in: StandIn
) -> None:
    with socket.create_connection(("127.0.0.1", port_of(edge)), timeout=TIMEOUT) as sock:
        sock.sendall(f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Gitlab-To".encode())
        took, received = wait_cut_off(sock, SHORT + TIMEOUT_SLACK)
    assert took >= SHORT * 0.5, f"cut off after {took:.2f} s, before the timeout"
    assert_408_or_nothing(received)
    assert stand_in.requests() == [], "the receiver saw a partial request"


@pytest.mark.parametrize("route", ROUTES)
def test_half_a_body_is_cut_off_within_the_timeout(
    route: str, edge: str, stand_in: StandIn
) -> None:
    body = push_event("main")
    head = (
        f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Gitlab-Event: Push Hook\r\n"
        f"X-Gitlab-Token: anything\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port_of(edge)), timeout=TIMEOUT) as sock:
        sock.sendall(head.encode() + body[: len(body) // 2])
        took, received = wait_cut_off(sock, SHORT + TIMEOUT_SLACK)
    assert took >= SHORT * 0.5, f"cut off after {took:.2f} s, before the timeout"
    assert_408_or_nothing(received)
    assert stand_in.requests() == [], "the receiver saw a partial request"


def test_a_slow_request_reaches_the_receiver_whole(edge: str, stand_in: StandIn) -> None:
    """Request buffering: the body dribbles in (each pause within the timeout); the
    receiver gets it in one piece, with a Content-Length, only once it is complete."""
    body = push_event("main", 7)
    head = (
        f"POST {PUSH} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Gitlab-Event: Push Hook\r\n"
        f"X-Gitlab-Token: t0ken\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    pieces = [body[:10], body[10:40], body[40:]]
    with socket.create_connection(("127.0.0.1", port_of(edge)), timeout=TIMEOUT) as sock:
        sock.sendall(head.encode())
        for piece in pieces:
            time.sleep(SHORT * 0.4)
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        last_sent = time.monotonic()
        sock.sendall(b"0\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    [seen] = stand_in.requests()
    assert seen.body == body
    assert seen.at >= last_sent
    headers = {name.lower(): value for name, value in seen.headers.items()}
    assert headers.get("content-length") == str(len(body))
    assert "transfer-encoding" not in headers
    assert headers.get("x-real-ip") == "127.0.0.1"
    assert headers.get("x-gitlab-token") == "t0ken"
    assert headers.get("connection", "").lower() != "close"


def test_connections_to_the_receiver_are_kept_alive(edge: str, stand_in: StandIn) -> None:
    for number in range(10):
        response = requests.post(
            edge + PUSH, data=push_event("main", number), headers=PUSH_HEADERS, timeout=TIMEOUT
        )
        assert response.status_code == 200
    peers = {seen.peer for seen in stand_in.requests()}
    assert len(stand_in.requests()) == 10
    assert len(peers) <= 2, f"{len(peers)} connections for 10 requests"


# -- rate limits ---------------------------------------------------------------------


def fire(url: str, count: int, workers: int = 16, **kwargs: Any) -> tuple[Counter[int], float]:
    """POST `count` times, `workers` at once; statuses counted, and the seconds taken.
    Each answer must carry the security headers and no-store."""

    def one(number: int) -> int:
        response = requests.post(url, timeout=TIMEOUT, **kwargs)
        assert_security_headers(response, f"{url}: {response.status_code}")
        assert response.headers.get("Cache-Control") == "no-store", response.status_code
        return response.status_code

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        statuses = Counter(pool.map(one, range(count)))
    return statuses, time.monotonic() - started


@pytest.mark.parametrize("route", ROUTES)
def test_past_the_burst_nginx_answers_429(route: str, edge: str, stand_in: StandIn) -> None:
    conf = shipped()
    zone, burst = limit(conf.find("location", "=", route))
    rate = zones(conf)[zone][1]
    count = burst + 60
    statuses, took = fire(edge + route, count, data=push_event("main"), headers=PUSH_HEADERS)
    assert set(statuses) <= {200, 429}, statuses
    # The first `burst + 1` pass at once, then `rate` a second.
    assert burst + 1 <= statuses[200] <= burst + 1 + rate * took + 1, (statuses, took)
    assert statuses[429] >= count - (burst + 2 + rate * took), (statuses, took)
    assert len(stand_in.requests()) == statuses[200], "a 429 reached the receiver"


def post_from(base: str, source: str, route: str, count: int) -> Counter[int]:
    """POST `count` times from the loopback address `source` (127.0.0.x), 16 at once,
    one connection each; the statuses counted."""

    def one(number: int) -> int:
        conn = http.client.HTTPConnection(
            "127.0.0.1", port_of(base), timeout=TIMEOUT, source_address=(source, 0)
        )
        try:
            conn.request("POST", route, body=push_event("main", number), headers=PUSH_HEADERS)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    with ThreadPoolExecutor(16) as pool:
        return Counter(pool.map(one, range(count)))


def test_the_push_bucket_is_global_and_the_job_routes_are_per_address(edge: str) -> None:
    """GitLab's few addresses share one push bucket with everyone; the job routes
    give each address its own. Two addresses fire at once, each past the burst."""
    conf = shipped()
    for route, shared in ((PUSH, True), (LOOK_NOW, False)):
        zone, burst = limit(conf.find("location", "=", route))
        rate = zones(conf)[zone][1]
        started = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            count = burst + 30
            both = list(pool.map(post_from, [edge] * 2, SOURCES, [route] * 2, [count] * 2))
        took = time.monotonic() - started
        accepted = [counted[200] for counted in both]
        assert all(set(counted) <= {200, 429} for counted in both), (route, both)
        if shared:
            assert sum(accepted) <= burst + 2 + rate * took, (route, accepted, took)
        else:
            assert min(accepted) >= burst + 1, (route, accepted)


def test_wrong_tokens_get_429_without_any_receiver(no_receiver: str) -> None:
    """nginx answers 429 before it proxies: past the burst the receiver is asked only
    as often as the zone's rate refills (a 502 here: nobody listens), whatever the
    machine's speed."""
    conf = shipped()
    zone, burst = limit(conf.find("location", "=", PUSH))
    _, rate = zones(conf)[zone]
    headers = PUSH_HEADERS | {"X-Gitlab-Token": "wrong"}
    statuses: list[int] = []
    started = time.monotonic()
    with requests.Session() as session:
        while statuses.count(429) < 40 and len(statuses) < 2000:
            response = session.post(
                no_receiver + PUSH,
                data=push_event("main", len(statuses)),
                headers=headers,
                timeout=TIMEOUT,
            )
            assert_security_headers(response, f"wrong token {len(statuses)}")
            statuses.append(response.status_code)
    elapsed = time.monotonic() - started
    assert set(statuses) <= {502, 429}, Counter(statuses)
    assert statuses.count(429) == 40, Counter(statuses)
    # The bucket holds burst + 1 and refills at the zone's rate (nginx counts in ms).
    assert statuses.count(502) <= burst + 1 + rate * elapsed + 1, (Counter(statuses), elapsed)
    assert statuses[: burst + 1] == [502] * (burst + 1), Counter(statuses)


def test_api_answers_carry_the_headers(edge: str) -> None:
    answers = {
        "2xx": requests.post(edge + LOOK_NOW, data=b"{}", timeout=TIMEOUT),
        "413": requests.post(edge + CALLBACK, data=b"x" * 5000, timeout=TIMEOUT),
        "404": requests.post(edge + "/api/nothing", data=b"{}", timeout=TIMEOUT),
    }
    for what, response in answers.items():
        assert str(response.status_code).startswith(what[0]), (what, response.status_code)
        assert_security_headers(response, what)
        assert response.headers.get("Cache-Control") == "no-store", what


def test_the_shipped_file_works_inside_debians_nginx_conf(tmp_path: Path) -> None:
    """Installed as /etc/nginx/sites-enabled/reconciler under Debian's default main
    config (the one bench/burst.py runs): nginx -t passes without a warning."""
    nginx = require_tool("nginx", "nginx-light")
    if not DEBIAN_MAIN_CONF.is_file():
        reason = f"{DEBIAN_MAIN_CONF} is missing (Debian package nginx-common)"
        if in_ci():
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    for name in ("html", "final", "wip"):
        (tmp_path / name).mkdir()
    block = tmp_path / "reconciler.conf"
    block.write_text(
        render_server_block(tmp_path / "html", tmp_path / "final", tmp_path / "wip", free_port()),
        encoding="utf-8",
    )
    text, changes = debian_main_config(tmp_path, block, nginx)
    assert any("sites-enabled" in change for change in changes), changes
    conf = tmp_path / "nginx.conf"
    conf.write_text(text, encoding="utf-8")
    error_log = tmp_path / "error.log"
    check = subprocess.run(
        [nginx, "-t", "-e", str(error_log), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = check.stderr + error_log.read_text(encoding="utf-8", errors="replace")
    assert check.returncode == 0, output
    assert "[warn]" not in output and "[emerg]" not in output, output


# -- the real receiver ---------------------------------------------------------------


def test_a_burst_through_the_real_receiver_gets_2xx_or_429(tmp_path: Path) -> None:
    """`reconciler webhook` (scrypt token checks, trigger files) behind the shipped
    config: every push answered 2xx or 429, never a 5xx; each branch got a trigger."""
    config = tmp_path / "config.yaml"
    branch_yaml = "".join(
        f"  - name: {b}\n    pmaports: {tmp_path}/pmaports-{b}\n    arches: [x86_64]\n"
        for b in BRANCHES
    )
    config.write_text(
        f"paths:\n  data: {tmp_path}/data\n  html_out: {tmp_path}/html\nbranches:\n{branch_yaml}",
        encoding="utf-8",
    )
    made = subprocess.run(
        [sys.executable, "-m", "reconciler", "token", "new", "push-hook", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.split()[0]
    port = free_port()
    command = [sys.executable, "-m", "reconciler", "webhook", "--listen", f"127.0.0.1:{port}"]
    with open(tmp_path / "receiver.log", "wb") as log:
        receiver = subprocess.Popen(
            [*command, "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    server = None
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            assert receiver.poll() is None, (tmp_path / "receiver.log").read_text()
            assert time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.05)
        server = start_nginx(tmp_path, port)
        headers = PUSH_HEADERS | {"X-Gitlab-Token": token}
        bodies = [push_event(BRANCHES[n % 3], n + 1) for n in range(120)]
        statuses: Counter[int] = Counter()
        lock = threading.Lock()

        def one(body: bytes) -> None:
            response = requests.post(
                server.base_url + PUSH.lstrip("/"), data=body, headers=headers, timeout=30
            )
            with lock:
                statuses[response.status_code] += 1

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, bodies))
        accepted = sum(n for status, n in statuses.items() if 200 <= status < 300)
        assert accepted + statuses[429] == len(bodies), statuses
        assert accepted >= limit(shipped().find("location", "=", PUSH))[1], statuses
        triggers = load_config(config).paths.triggers
        branches = set()
        for path in triggers.glob("*.json"):
            branches.add(json.loads(path.read_text(encoding="utf-8")).get("branch"))
        assert branches == set(BRANCHES), branches
    finally:
        if server is not None:
            server.stop()
        receiver.terminate()
        receiver.wait(timeout=30)
