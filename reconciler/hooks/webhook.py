"""The webhook receiver: GitLab push events and job-end pokes over HTTP in, trigger files out.

Three routes: `POST /api/push-hook/gitlab` (below), and the job-end routes
`POST /api/job-callback` (token-checked) and `POST /api/look-now` (rate-limited),
described in `jobhooks`. A push request is checked in this order, and the first
failure answers:

    404 other path, 405 other method,
    401 `X-Gitlab-Token` missing or wrong (one answer for both; hash from `tokens`),
    411 chunked or no Content-Length, 413 Content-Length over `max_body_bytes`,
    400 bad Content-Length, not a push event (`X-Gitlab-Event: Push Hook` with
        `object_kind: push`), not JSON, or a branch push without 40-hex shas,
    200 and no trigger for a tag push (`Tag Push Hook`/`tag_push`, or a ref outside
        refs/heads/) and for a branch that is neither configured nor
        `<configured>_staging_<name>`,
    200 and exactly one trigger file for anything else.

The trigger, `{"type": "push", "branch", "before", "after", "received_at"}`, is
written aside as a dot-file and renamed into the trigger directory under a unique
name (`push-<UTC time>-<after[:12]>-<random>.json`). Nothing else happens in a
request: the daemon fetches and builds when it drains the trigger. The body is
read only after authentication and never beyond the limit; an unread body is
drained (bounded by the limit and a timeout) after the answer, so the client sees
the status instead of a reset. One log line per request, never with a header
value. It binds 127.0.0.1 and runs behind nginx.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from reconciler.config.settings import load_config
from reconciler.hooks.jobend import (
    CALLBACK_HEADER,
    CALLBACK_ROUTE,
    CALLBACK_TOKEN_NAME,
    DEFAULT_LOOK_NOW_INTERVAL,
    LOOK_NOW_ROUTE,
    MAX_CALLBACK_BODY,
    MAX_LOOK_NOW_BODY,
    LookNow,
    callback_trigger,
    write_callback_trigger,
)
from reconciler.hooks.tokens import TokenStore, TokenStoreError, default_store_path
from reconciler.model.errors import UsageError
from reconciler.model.names import STAGING_SEPARATOR, is_safe_branch
from reconciler.operator.triggers import write_trigger

log = logging.getLogger(__name__)

ROUTE = "/api/push-hook/gitlab"
ROUTES = (ROUTE, CALLBACK_ROUTE, LOOK_NOW_ROUTE)
DEFAULT_LISTEN = "127.0.0.1:8081"
DEFAULT_TOKEN_NAME = "push-hook"
MAX_BODY_BYTES = 2 * 1024 * 1024  # nginx: client_max_body_size 2m
SHA_RE = re.compile(r"[0-9a-f]{40}")
ADDRESS_RE = re.compile(r"[0-9A-Fa-f:.]{1,45}")
LENGTH_RE = re.compile(r"\s*[0-9]{1,18}\s*")
HEADS = "refs/heads/"


class WebhookError(UsageError):
    """The receiver cannot start: bad listen address or no token to check against."""


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    token_store: Path
    trigger_dir: Path
    branches: tuple[str, ...]  # configured branch names
    token_name: str = DEFAULT_TOKEN_NAME
    max_body_bytes: int = MAX_BODY_BYTES
    timeout_seconds: float = 10.0  # per socket operation
    max_parallel_checks: int = 4  # concurrent token derivations (scrypt: 16 MiB each)
    callback_token_name: str = CALLBACK_TOKEN_NAME
    look_now_interval_seconds: float = DEFAULT_LOOK_NOW_INTERVAL


@dataclass(frozen=True, slots=True)
class Answer:
    status: HTTPStatus
    text: str


def relevant_branch(branch: str, configured: tuple[str, ...]) -> bool:
    """A configured branch, or `<configured>_staging_<name>` with a non-empty name."""
    if not is_safe_branch(branch):
        return False
    if branch in configured:
        return True
    return any(
        branch.startswith(orig + STAGING_SEPARATOR)
        and len(branch) > len(orig) + len(STAGING_SEPARATOR)
        for orig in configured
    )


def trigger_for(event: Any, configured: tuple[str, ...], now: datetime) -> Answer | dict[str, str]:
    """The trigger to write for a decoded push event, or the answer without one."""
    if not isinstance(event, dict):
        return Answer(HTTPStatus.BAD_REQUEST, "expected a JSON object")
    kind = event.get("object_kind")
    if kind == "tag_push":
        return Answer(HTTPStatus.OK, "tag push: nothing to do")
    if kind != "push":
        return Answer(HTTPStatus.BAD_REQUEST, "not a push event")
    ref = event.get("ref")
    if not isinstance(ref, str):
        return Answer(HTTPStatus.BAD_REQUEST, "field 'ref': expected a string")
    if not ref.startswith(HEADS):
        return Answer(HTTPStatus.OK, "not a branch push: nothing to do")
    branch = ref[len(HEADS) :]
    if not relevant_branch(branch, configured):
        return Answer(HTTPStatus.OK, "branch not configured: nothing to do")
    shas: dict[str, str] = {}
    for field in ("before", "after"):
        value = event.get(field)
        if not isinstance(value, str) or not SHA_RE.fullmatch(value.lower()):
            return Answer(HTTPStatus.BAD_REQUEST, f"field {field!r}: expected 40 hex digits")
        shas[field] = value.lower()
    received = now.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return {"type": "push", "branch": branch, **shas, "received_at": received}


def write_push_trigger(trigger_dir: Path, trigger: dict[str, str], now: datetime) -> Path:
    """Write one push trigger into `trigger_dir` under a unique name."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"push-{stamp}-{trigger['after'][:12]}-{secrets.token_hex(4)}.json"
    return write_trigger(trigger_dir, name, trigger)


class WebhookServer(ThreadingHTTPServer):
    """A threading HTTP server that carries its settings (no module-level state)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], settings: WebhookSettings) -> None:
        self.settings = settings
        self.store = TokenStore(settings.token_store)
        self.check_slots = threading.BoundedSemaphore(settings.max_parallel_checks)
        self.look_now = LookNow(settings.trigger_dir, settings.look_now_interval_seconds)
        super().__init__(address, Handler)

    def server_close(self) -> None:
        self.look_now.close()
        super().server_close()


class WebhookServer6(WebhookServer):
    address_family = socket.AF_INET6


class Handler(BaseHTTPRequestHandler):
    server: WebhookServer
    server_version = "reconciler-webhook"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.settings.timeout_seconds)
        self._unread = 0

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silenced: `_respond` logs one line of its own."""

    def log_message(self, format: str, *args: Any) -> None:
        # http.server's own complaints (bad request line, timeouts): keep them short.
        log.info("%s %s", self.client_address[0], (format % args)[:200])

    def do_POST(self) -> None:
        try:
            answer = self._handle()
        except (TokenStoreError, OSError) as exc:
            log.error("push hook: %s", exc)
            answer = Answer(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
        self._respond(answer)

    def do_GET(self) -> None:
        self._refuse()

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _refuse(self) -> None:
        self._unread = self._declared_length()
        if self._path() not in ROUTES:
            self._respond(Answer(HTTPStatus.NOT_FOUND, "not found"))
        else:
            self._respond(Answer(HTTPStatus.METHOD_NOT_ALLOWED, "use POST"))

    def _client(self) -> str:
        """The peer, plus nginx's `X-Real-IP` when it looks like an address."""
        peer = str(self.client_address[0])
        real = self.headers.get("X-Real-IP", "") if self.headers else ""
        return f"{peer} for {real}" if ADDRESS_RE.fullmatch(real) and real != peer else peer

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def _declared_length(self) -> int:
        try:
            return max(int(self.headers.get("Content-Length", "0")), 0)
        except ValueError:
            return 0

    def _handle(self) -> Answer | dict[str, str]:
        settings = self.server.settings
        self._unread = self._declared_length()
        path = self._path()
        if path == LOOK_NOW_ROUTE:  # unauthenticated: reads nothing, only pokes
            self._unread = min(self._unread, MAX_LOOK_NOW_BODY)
            return Answer(HTTPStatus.ACCEPTED, f"look-now: {self.server.look_now.poke()}")
        if path not in ROUTES:
            return Answer(HTTPStatus.NOT_FOUND, "not found")
        name, header = (
            (settings.token_name, "X-Gitlab-Token")
            if path == ROUTE
            else (settings.callback_token_name, CALLBACK_HEADER)
        )
        with self.server.check_slots:
            good = self.server.store.verify(name, self.headers.get(header))
        if not good:
            return Answer(HTTPStatus.UNAUTHORIZED, "unauthorized")
        if path == CALLBACK_ROUTE:
            return self._job_callback()
        event_header = self.headers.get("X-Gitlab-Event", "")
        not_push = event_header not in ("Push Hook", "Tag Push Hook")
        refuse = Answer(HTTPStatus.BAD_REQUEST, "not a push event") if not_push else None
        body = self._read_body(settings.max_body_bytes, refuse)
        if isinstance(body, Answer):
            return body
        try:
            event = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return Answer(HTTPStatus.BAD_REQUEST, "not a JSON document")
        kind = event.get("object_kind") if isinstance(event, dict) else None
        if (event_header == "Tag Push Hook") != (kind == "tag_push"):
            return Answer(HTTPStatus.BAD_REQUEST, "X-Gitlab-Event does not match object_kind")
        now = datetime.now(UTC)
        result = trigger_for(event, settings.branches, now)
        if isinstance(result, dict):
            written = write_push_trigger(settings.trigger_dir, result, now)
            return Answer(HTTPStatus.OK, f"accepted {result['branch']}: {written.name}")
        return result

    def _read_body(self, limit: int, refuse: Answer | None = None) -> bytes | Answer:
        """The body, when it has a Content-Length within `limit` and arrives in full;
        `refuse` answers instead of reading once the length checks passed."""
        if "Transfer-Encoding" in self.headers:
            return Answer(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted")
        declared = self.headers.get("Content-Length")
        if declared is None:
            return Answer(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
        if not LENGTH_RE.fullmatch(declared):
            return Answer(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        length = int(declared)
        if length > limit:
            return Answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
        if refuse is not None:
            return refuse
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            return Answer(HTTPStatus.REQUEST_TIMEOUT, "timed out reading the body")
        self._unread = 0
        if len(body) != length:
            return Answer(HTTPStatus.BAD_REQUEST, "body shorter than Content-Length")
        return body

    def _job_callback(self) -> Answer:
        body = self._read_body(MAX_CALLBACK_BODY)
        if isinstance(body, Answer):
            return body
        now = datetime.now(UTC)
        result = callback_trigger(body, now)
        if isinstance(result, tuple):
            return Answer(*result)
        path = write_callback_trigger(self.server.settings.trigger_dir, result, now)
        return Answer(HTTPStatus.OK, f"accepted: {path.name}")

    def _respond(self, result: Answer | dict[str, str]) -> None:
        answer = result if isinstance(result, Answer) else Answer(HTTPStatus.OK, "accepted")
        # Logged before the answer goes out, so a client that has its answer finds it logged.
        log.info(
            '%s "%s %s" %d %s',
            self._client(),
            self.command,
            self._path()[:200],
            answer.status,
            answer.text,
        )
        body = (answer.text + "\n").encode("utf-8")
        self.close_connection = True
        try:
            self.send_response_only(answer.status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except OSError as exc:
            log.info("%s: cannot answer: %s", self.client_address[0], exc)
            return
        if self._unread:
            self._drain()

    def _drain(self) -> None:
        """Read and drop what the client still sends (up to the limit) before closing."""
        budget = self.server.settings.max_body_bytes
        try:
            self.connection.shutdown(socket.SHUT_WR)
            while budget > 0:
                chunk = self.rfile.read1(min(budget, 65536))
                if not chunk:
                    break
                budget -= len(chunk)
        except OSError:
            pass


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise WebhookError(f"--listen {listen!r}: expected host:port, e.g. {DEFAULT_LISTEN}")
    return host, int(port)


def make_server(settings: WebhookSettings, listen: str = DEFAULT_LISTEN) -> WebhookServer:
    """Bind (port 0 picks a free one); refuses to start without a token to check."""
    host, port = parse_listen(listen)
    try:
        if not TokenStore(settings.token_store).has(settings.token_name):
            raise WebhookError(
                f"no token {settings.token_name!r} in {settings.token_store}: "
                f"run `reconciler token new {settings.token_name}` first"
            )
    except TokenStoreError as exc:
        raise WebhookError(str(exc)) from exc
    settings.trigger_dir.mkdir(parents=True, exist_ok=True)
    server_class = WebhookServer6 if ":" in host else WebhookServer
    try:
        return server_class((host, port), settings)
    except OSError as exc:
        raise WebhookError(f"cannot listen on {listen}: {exc}") from exc


def serve(
    config_path: Path | None,
    listen: str = DEFAULT_LISTEN,
    *,
    token_name: str = DEFAULT_TOKEN_NAME,
    token_store: Path | None = None,
    ready: Callable[[WebhookServer], None] | None = None,
) -> None:
    """Run the receiver for a configuration until interrupted (or `shutdown()`)."""
    config = load_config(config_path)
    settings = WebhookSettings(
        token_store=token_store or default_store_path(config.paths.durable, config.paths.state),
        trigger_dir=config.paths.triggers,
        branches=tuple(branch.name for branch in config.branches),
        token_name=token_name,
    )
    server = make_server(settings, listen)
    host, port = server.server_address[:2]
    log.info(
        "webhook receiver on %s:%s (%s) for %s",
        host,
        port,
        ", ".join(ROUTES),
        ", ".join(settings.branches),
    )
    if not server.store.has(settings.callback_token_name):
        log.info("no %r token: %s answers 401", settings.callback_token_name, CALLBACK_ROUTE)
    if ready is not None:
        ready(server)
    try:
        server.serve_forever()
    finally:
        server.server_close()
