"""The two job-end routes of the webhook receiver: a job's callback and "look now".

`POST /api/job-callback` is what a build or sign job's last task sends: the
`X-Reconciler-Token` header must be the `job-callback` token (checked against
its stored salted hash in constant time by `tokens`), the body is at most
`MAX_CALLBACK_BODY` bytes of JSON, optionally `{"job": "<job id>"}`. An accepted
call writes exactly one trigger file, `{"type": "wake", "source":
"job-callback", "job": ...}`, aside and renamed in. 401 for a missing or wrong
token (one answer for both), 400 for a body that is not such JSON.

`POST /api/look-now` is unauthenticated (builds.sr.ht's manifest webhook, sent
on failure, carries no secret). It reads no body and does nothing but make sure
a wake-up file appears: at most one file per `interval` seconds; requests inside
the window coalesce into one file written when the window ends (`coalesce`,
one key for all of them). The file has a fixed name, so wake-ups the daemon has
not drained yet coalesce too.

Polling stays the source of truth: these only cut the daemon's sleep short.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

from reconciler.hooks.coalesce import Coalescer
from reconciler.model.jobs import JobKey
from reconciler.operator.triggers import write_trigger

log = logging.getLogger(__name__)

CALLBACK_ROUTE = "/api/job-callback"
LOOK_NOW_ROUTE = "/api/look-now"
CALLBACK_TOKEN_NAME = "job-callback"
CALLBACK_HEADER = "X-Reconciler-Token"
MAX_CALLBACK_BODY = 4096  # nginx: client_max_body_size 4k
MAX_LOOK_NOW_BODY = 1024 * 1024  # sourcehut posts the job as JSON; read and dropped
LOOK_NOW_NAME = "look-now.json"
LOOK_NOW_KEY = "look-now"  # the coalescer's one key
DEFAULT_LOOK_NOW_INTERVAL = 10.0

Reply = tuple[HTTPStatus, str]


def callback_trigger(body: bytes, now: datetime) -> Reply | dict[str, str]:
    """The trigger for an authenticated callback's body, or the answer refusing it."""
    job = ""
    if body.strip():
        try:
            doc: Any = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return HTTPStatus.BAD_REQUEST, "not a JSON document"
        if not isinstance(doc, dict):
            return HTTPStatus.BAD_REQUEST, "expected a JSON object"
        value = doc.get("job", "")
        if not isinstance(value, str):
            return HTTPStatus.BAD_REQUEST, "field 'job': expected a job id"
        if value:
            try:
                JobKey.from_job_id(value)
            except ValueError:
                return HTTPStatus.BAD_REQUEST, "field 'job': not a job id"
        job = value
    received = now.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    trigger = {"type": "wake", "source": "job-callback", "received_at": received}
    return trigger | ({"job": job} if job else {})


def write_callback_trigger(trigger_dir: Path, trigger: dict[str, str], now: datetime) -> Path:
    """Write one wake trigger under a unique name."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return write_trigger(trigger_dir, f"job-callback-{stamp}-{secrets.token_hex(4)}.json", trigger)


def write_look_now(trigger_dir: Path) -> None:
    """Write (or replace) the one wake-up file; a failure is logged, never raised:
    a lost wake-up costs one poll interval."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    trigger = {"type": "wake", "source": "look-now", "received_at": stamp}
    try:
        write_trigger(trigger_dir, LOOK_NOW_NAME, trigger)
    except OSError as exc:
        log.error("look-now: cannot write %s: %s", trigger_dir / LOOK_NOW_NAME, exc)


def look_now_coalescer(
    trigger_dir: Path, interval: float = DEFAULT_LOOK_NOW_INTERVAL
) -> Coalescer[None]:
    """At most one wake-up file per `interval`: offer `(LOOK_NOW_KEY, None)` per poke.

    The first poke writes at once; pokes inside the window schedule one write for
    its end (later ones join it), so the last poke is always followed by a file.
    """
    return Coalescer(interval, lambda _key, _value: write_look_now(trigger_dir), name="look-now")
