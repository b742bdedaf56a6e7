"""GraphQL over HTTPS to builds.sr.ht: one requests.Session, timeouts, bounded retries.

Only transient failures are retried (connection errors, timeouts, HTTP 429, 502,
503, 504), with exponential backoff and jitter, logged before each wait. GraphQL
errors in a 200 answer, other 4xx and a refused token are raised at once as a
JobServiceError with a readable message. `post_once` sends without any retry (for
the submit mutation, which must never be repeated blindly). Artifact downloads
stream to a file with a size limit; the token is sent only to the API's origin.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from reconciler.jobs.service import JobServiceError

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({429, 502, 503, 504})


class TransientHTTPError(JobServiceError):
    """An answer worth asking again for: 429, 502, 503 or 504."""


class GraphQLError(JobServiceError):
    """builds.sr.ht understood the request and refused it (errors in a 200 answer)."""


class DownloadRefused(JobServiceError):
    """An artifact that cannot be had: gone, refused or too large. Not retried."""


TRANSIENT = (requests.ConnectionError, requests.Timeout, TransientHTTPError)


class GraphQLClient:
    def __init__(
        self,
        endpoint: str,
        token: str,
        *,
        timeout: tuple[float, float] = (10.0, 60.0),
        max_tries: int = 4,
        max_retry_seconds: float = 60.0,
        wait: wait_base | None = None,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self.endpoint = endpoint
        parts = urlsplit(endpoint)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["User-Agent"] = "reconciler (build orchestrator)"
        self._retrying = Retrying(
            retry=retry_if_exception_type(TRANSIENT),
            stop=stop_after_attempt(max_tries) | stop_after_delay(max_retry_seconds),
            wait=wait if wait is not None else wait_exponential_jitter(max=30, jitter=1),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
            sleep=sleep,
        )

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """A query or an idempotent mutation, retried while the failure is transient."""
        try:
            result: dict[str, Any] = self._retrying(self.post_once, query, variables or {})
        except (requests.RequestException, TransientHTTPError) as exc:
            raise JobServiceError(f"builds.sr.ht unreachable: {_describe(exc)}") from exc
        return result

    def post_once(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """One POST; raises TransientHTTPError / requests errors for the caller to judge."""
        response = self.session.post(
            self.endpoint, json={"query": query, "variables": variables}, timeout=self.timeout
        )
        code = response.status_code
        if code in TRANSIENT_STATUS:
            raise TransientHTTPError(f"HTTP {code} from {self.endpoint}")
        if code in (401, 403):
            raise JobServiceError(
                f"builds.sr.ht refused the token (HTTP {code}: {_message(response)}); "
                "check jobs.sourcehut.token_file"
            )
        if code >= 400:
            raise JobServiceError(f"builds.sr.ht answered HTTP {code}: {_message(response)}")
        try:
            body = response.json()
        except ValueError as exc:
            raise JobServiceError(f"builds.sr.ht answered HTTP {code} without JSON") from exc
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            messages = "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))
            raise GraphQLError(f"builds.sr.ht refused the request: {messages or errors}")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise JobServiceError("builds.sr.ht answered without data")
        return data

    def download(self, url: str, target: Path, max_bytes: int) -> int:
        """Stream `url` into `target` (retried while transient); returns its size."""
        try:
            size: int = self._retrying(self._download_once, url, target, max_bytes)
        except (requests.RequestException, TransientHTTPError) as exc:
            raise JobServiceError(f"downloading {url}: {_describe(exc)}") from exc
        return size

    def _download_once(self, url: str, target: Path, max_bytes: int) -> int:
        if not url.startswith(("https://", "http://")):
            raise DownloadRefused(f"{url}: not an http(s) URL")
        same_origin = url.startswith(self.origin + "/")
        headers = None if same_origin else {"Authorization": None}  # no token to other hosts
        with self.session.get(url, stream=True, timeout=self.timeout, headers=headers) as resp:
            if resp.status_code in TRANSIENT_STATUS:
                raise TransientHTTPError(f"HTTP {resp.status_code}")
            if resp.status_code != 200:
                raise DownloadRefused(f"{url}: HTTP {resp.status_code}")
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise DownloadRefused(f"{url}: {length} bytes, more than {max_bytes}")
            written = 0
            with open(target, "wb") as out:
                for chunk in resp.iter_content(chunk_size=1 << 16):
                    written += len(chunk)
                    if written > max_bytes:
                        raise DownloadRefused(f"{url}: more than {max_bytes} bytes")
                    out.write(chunk)
        return written


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            return "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))
    except ValueError:
        pass
    return response.text[:200].strip() or response.reason or ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return str(exc)
