"""The webhook receiver's WSGI application: GitLab push events and job-end pokes in,
trigger files out; image jobs' files in, when uploads are configured. `webhook`
serves it with waitress.

Three routes: `POST /api/push-hook/gitlab` (below), and the job-end routes
`POST /api/job-callback` (token-checked) and `POST /api/look-now` (rate-limited),
described in `jobend`; with `WebhookSettings.uploads`, a fourth:
`PUT`/`HEAD`/`GET /api/job-upload/<job id>/<file name>` (405 for other methods,
then 401 without the job-callback token, then `upload`'s checks; 404 without
uploads configured). A push request is checked in this order, and the first
failure answers:

    404 other path, 405 other method,
    401 `X-Gitlab-Token` missing or wrong (one answer for both; hash from `tokens`),
    411 no Content-Length (or a Transfer-Encoding), 413 Content-Length over `max_body_bytes`,
    400 bad Content-Length, not a push event (`X-Gitlab-Event: Push Hook` with
        `object_kind: push`), not JSON, or a branch push without 40-hex shas,
    200 and no trigger for a tag push (`Tag Push Hook`/`tag_push`, or a ref outside
        refs/heads/) and for a branch that is neither configured nor
        `<configured>_staging_<name>`,
    200 and a trigger for its branch for anything else (coalesced, see below).

The server (waitress) has read the whole request before the application sees it,
bounded by the largest route limit (an upload's chunk, when uploads are on): a
body over that is answered 413 by the server itself, before any check here, as
nginx in front would; a chunked body is de-chunked within the same bound and
then has a Content-Length like any other.
The application reads `wsgi.input` only after authentication and never beyond
the Content-Length it checked.

The trigger, `{"type": "push", "branch", "before", "after", "received_at"}`, is
written aside as a dot-file and renamed into the trigger directory under a unique
name (`push-<UTC time>-<after[:12]>-<random>.json`). Pushes are coalesced per
branch over the settle window (`loop.settle_seconds`, `coalesce`): the first push
of a branch is written at once, the pushes inside the window end in one file at
its end holding the latest push. That loses nothing: the daemon reads a push
trigger as "fetch this branch" and asks git what changed. Nothing else happens in
a request: the daemon fetches and builds when it drains the trigger. One log line
per request, never with a header value.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.hooks.coalesce import Coalescer
from reconciler.hooks.jobend import (
    CALLBACK_HEADER,
    CALLBACK_ROUTE,
    CALLBACK_TOKEN_NAME,
    DEFAULT_LOOK_NOW_INTERVAL,
    LOOK_NOW_KEY,
    LOOK_NOW_ROUTE,
    MAX_CALLBACK_BODY,
    MAX_LOOK_NOW_BODY,
    callback_trigger,
    look_now_coalescer,
    write_callback_trigger,
)
from reconciler.hooks.tokens import TokenStore, TokenStoreError
from reconciler.hooks.upload import (
    UPLOAD_PREFIX,
    Reply,
    UploadSettings,
    UploadStore,
    parse_chunk,
    parse_target,
)
from reconciler.model.names import STAGING_SEPARATOR, is_safe_branch
from reconciler.operator.triggers import write_trigger

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

ROUTE = "/api/push-hook/gitlab"
ROUTES = (ROUTE, CALLBACK_ROUTE, LOOK_NOW_ROUTE)
DEFAULT_TOKEN_NAME = "push-hook"
MAX_BODY_BYTES = 2 * 1024 * 1024  # nginx: client_max_body_size 2m
DEFAULT_SETTLE_SECONDS = 0.2  # the config's loop.settle_seconds
SHA_RE = re.compile(r"[0-9a-f]{40}")
ADDRESS_RE = re.compile(r"[0-9A-Fa-f:.]{1,45}")
LENGTH_RE = re.compile(r"\s*[0-9]{1,18}\s*")
HEADS = "refs/heads/"


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """What the application checks against and where it writes."""

    token_store: Path
    trigger_dir: Path
    branches: tuple[str, ...]  # configured branch names
    token_name: str = DEFAULT_TOKEN_NAME
    max_body_bytes: int = MAX_BODY_BYTES
    callback_token_name: str = CALLBACK_TOKEN_NAME
    look_now_interval_seconds: float = DEFAULT_LOOK_NOW_INTERVAL
    settle_seconds: float = DEFAULT_SETTLE_SECONDS  # push coalescing window per branch
    uploads: UploadSettings | None = None  # image jobs' uploads; None: no upload route

    @property
    def largest_body(self) -> int:
        """The most any route may receive: the server refuses more before routing."""
        chunk = self.uploads.max_chunk_bytes if self.uploads is not None else 0
        return max(self.max_body_bytes, MAX_CALLBACK_BODY, MAX_LOOK_NOW_BODY, chunk)


@dataclass(frozen=True, slots=True)
class Answer:
    status: HTTPStatus
    text: str
    headers: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def of(reply: Reply) -> Answer:
        return Answer(HTTPStatus(reply.status), reply.text, reply.headers())


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the checks see it: a view of the WSGI environ."""

    environ: WSGIEnvironment

    @property
    def method(self) -> str:
        return str(self.environ.get("REQUEST_METHOD", ""))

    @property
    def path(self) -> str:
        return str(self.environ.get("PATH_INFO", ""))

    @property
    def content_length(self) -> str | None:
        length = self.environ.get("CONTENT_LENGTH")
        return None if length is None or length == "" else str(length)

    def header(self, name: str) -> str | None:
        """A request header's value (`X-Gitlab-Token` -> the environ's HTTP_X_GITLAB_TOKEN)."""
        value = self.environ.get("HTTP_" + name.upper().replace("-", "_"))
        return None if value is None else str(value)

    def client(self) -> str:
        """The peer, plus nginx's `X-Real-IP` when it looks like an address."""
        peer = str(self.environ.get("REMOTE_ADDR", ""))
        real = self.header("X-Real-IP") or ""
        return f"{peer} for {real}" if ADDRESS_RE.fullmatch(real) and real != peer else peer

    def read(self, length: int) -> bytes:
        """At most `length` bytes of the body (the server has buffered all of it)."""
        stream = self.environ.get("wsgi.input")
        data = stream.read(length) if length > 0 and stream is not None else b""
        return data if isinstance(data, bytes) else b""


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


def _printable(text: str, limit: int = 200) -> str:
    """For the log line: no control characters, nothing past `limit`."""
    return "".join(c if c.isprintable() and c.isascii() else "?" for c in text[:limit])


class WebhookApp:
    """The WSGI application; `close()` writes the coalesced triggers still pending."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self.store = TokenStore(settings.token_store)
        self.pushes: Coalescer[dict[str, str]] = Coalescer(
            settings.settle_seconds, self._write_push, name="push hook"
        )
        self.look_now = look_now_coalescer(settings.trigger_dir, settings.look_now_interval_seconds)
        self.uploads = UploadStore(settings.uploads) if settings.uploads is not None else None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            answer = self.answer(request)
        except (TokenStoreError, OSError) as exc:
            log.error("receiver: %s %s: %s", request.method, _printable(request.path), exc)
            answer = Answer(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
        log.info(
            '%s "%s %s" %d %s',
            _printable(request.client()),
            _printable(request.method, 20),
            _printable(request.path),
            answer.status,
            answer.text,
        )
        body = (answer.text + "\n").encode("utf-8")
        start_response(
            f"{answer.status.value} {answer.status.phrase}",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                *answer.headers,
            ],
        )
        return [] if request.method == "HEAD" else [body]

    def close(self) -> None:
        self.pushes.close()
        self.look_now.close()

    def answer(self, request: Request) -> Answer:
        """The checks, in the order the module's docstring lists them."""
        if self.uploads is not None and request.path.startswith(UPLOAD_PREFIX):
            return self._upload(request, self.uploads)
        if request.method != "POST":
            if request.path not in ROUTES:
                return Answer(HTTPStatus.NOT_FOUND, "not found")
            return Answer(HTTPStatus.METHOD_NOT_ALLOWED, "use POST")
        if request.path == LOOK_NOW_ROUTE:  # unauthenticated: reads nothing, only pokes
            return Answer(
                HTTPStatus.ACCEPTED, f"look-now: {self.look_now.offer(LOOK_NOW_KEY, None)}"
            )
        if request.path not in ROUTES:
            return Answer(HTTPStatus.NOT_FOUND, "not found")
        settings = self.settings
        name, header = (
            (settings.token_name, "X-Gitlab-Token")
            if request.path == ROUTE
            else (settings.callback_token_name, CALLBACK_HEADER)
        )
        if not self.store.verify(name, request.header(header)):
            return Answer(HTTPStatus.UNAUTHORIZED, "unauthorized")
        if request.path == CALLBACK_ROUTE:
            return self._job_callback(request)
        return self._push(request)

    def _push(self, request: Request) -> Answer:
        event_header = request.header("X-Gitlab-Event") or ""
        not_push = event_header not in ("Push Hook", "Tag Push Hook")
        refuse = Answer(HTTPStatus.BAD_REQUEST, "not a push event") if not_push else None
        body = _read_body(request, self.settings.max_body_bytes, refuse)
        if isinstance(body, Answer):
            return body
        try:
            event = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return Answer(HTTPStatus.BAD_REQUEST, "not a JSON document")
        kind = event.get("object_kind") if isinstance(event, dict) else None
        if (event_header == "Tag Push Hook") != (kind == "tag_push"):
            return Answer(HTTPStatus.BAD_REQUEST, "X-Gitlab-Event does not match object_kind")
        result = trigger_for(event, self.settings.branches, datetime.now(UTC))
        if isinstance(result, Answer):
            return result
        outcome = self.pushes.offer(result["branch"], result)
        return Answer(HTTPStatus.OK, f"accepted {result['branch']}: {outcome}")

    def _write_push(self, _branch: str, trigger: dict[str, str]) -> None:
        write_push_trigger(self.settings.trigger_dir, trigger, datetime.now(UTC))

    def _job_callback(self, request: Request) -> Answer:
        body = _read_body(request, MAX_CALLBACK_BODY)
        if isinstance(body, Answer):
            return body
        now = datetime.now(UTC)
        result = callback_trigger(body, now)
        if isinstance(result, tuple):
            return Answer(*result)
        path = write_callback_trigger(self.settings.trigger_dir, result, now)
        return Answer(HTTPStatus.OK, f"accepted: {path.name}")

    def _upload(self, request: Request, uploads: UploadStore) -> Answer:
        """An image job's file, a chunk at a time (`upload`), or how much of it is held."""
        if request.method not in ("PUT", "HEAD", "GET"):
            return Answer(HTTPStatus.METHOD_NOT_ALLOWED, "use PUT, HEAD or GET")
        token = request.header(CALLBACK_HEADER)
        if not self.store.verify(self.settings.callback_token_name, token):
            return Answer(HTTPStatus.UNAUTHORIZED, "unauthorized")
        target = parse_target(request.path)
        if isinstance(target, Reply):
            return Answer.of(target)
        if request.method != "PUT":
            return Answer.of(uploads.status(target))
        length = _declared_length(request, uploads.settings.max_chunk_bytes)
        if isinstance(length, Answer):
            return length
        chunk = parse_chunk(request.header("Content-Range"), length)
        if isinstance(chunk, Reply):
            return Answer.of(chunk)
        return Answer.of(uploads.put(target, chunk, request.read))


def _declared_length(request: Request, limit: int) -> int | Answer:
    """The Content-Length, when there is one within `limit` (and no Transfer-Encoding)."""
    if request.header("Transfer-Encoding") is not None:  # what the server left (HTTP/1.0)
        return Answer(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted")
    declared = request.content_length
    if declared is None:
        return Answer(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
    if not LENGTH_RE.fullmatch(declared):
        return Answer(HTTPStatus.BAD_REQUEST, "bad Content-Length")
    length = int(declared)
    if length > limit:
        return Answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
    return length


def _read_body(request: Request, limit: int, refuse: Answer | None = None) -> bytes | Answer:
    """The body, when it has a Content-Length within `limit` and arrived in full;
    `refuse` answers instead of reading once the length checks passed."""
    length = _declared_length(request, limit)
    if isinstance(length, Answer):
        return length
    if refuse is not None:
        return refuse
    body = request.read(length)
    if len(body) != length:
        return Answer(HTTPStatus.BAD_REQUEST, "body shorter than Content-Length")
    return body
