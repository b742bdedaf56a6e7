"""The two job-end routes of the webhook receiver: a job's callback and "look now".

`POST /api/job-callback` is what a build or sign job's last task sends: the
`X-Reconciler-Token` header must be the `job-callback` token (checked against
its stored scrypt hash in constant time by `tokens`), the body is at most
`MAX_CALLBACK_BODY` bytes of JSON, optionally `{"job": "<job id>"}`. An accepted
call writes exactly one trigger file, `{"type": "wake", "source":
"job-callback", "job": ...}`, aside and renamed in. 401 for a missing or wrong
token (one answer for both), 400 for a body that is not such JSON.

`POST /api/look-now` is unauthenticated (builds.sr.ht's manifest webhook, sent
on failure, carries no secret). It reads no body and does nothing but make sure
a wake-up file appears: at most one file per `interval` seconds; requests inside
the window coalesce into one file written when the window ends. The file has a
fixed name, so wake-ups the daemon has not drained yet coalesce too.

Polling stays the source of truth: these only cut the daemon's sleep short.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

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


class LookNow:
    """At most one wake-up file per `interval`; requests inside the window coalesce.

    The first request writes at once; a request inside the window schedules one
    write for the end of the window (later ones join it), so the last poke is
    always followed by a file, and a flood writes one file per window.
    """

    def __init__(
        self,
        trigger_dir: Path,
        interval: float = DEFAULT_LOOK_NOW_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.trigger_dir = trigger_dir
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None
        self._timer: threading.Timer | None = None
        self._closed = False

    def poke(self) -> str:
        """Write now, schedule a write, or join the scheduled one; say which."""
        with self._lock:
            if self._closed:
                return "closed"
            now = self._clock()
            if self._timer is not None:
                return "coalesced"
            if self._last is None or now - self._last >= self.interval:
                self._write(now)
                return "written"
            self._timer = threading.Timer(self._last + self.interval - now, self._deferred)
            self._timer.daemon = True
            self._timer.start()
            return "scheduled"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _deferred(self) -> None:
        with self._lock:
            self._timer = None
            if not self._closed:
                self._write(self._clock())

    def _write(self, now: float) -> None:
        """Called with the lock held."""
        self._last = now
        stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        trigger = {"type": "wake", "source": "look-now", "received_at": stamp}
        try:
            write_trigger(self.trigger_dir, LOOK_NOW_NAME, trigger)
        except OSError as exc:  # a lost wake-up costs one poll interval
            log.error("look-now: cannot write %s: %s", self.trigger_dir / LOOK_NOW_NAME, exc)
