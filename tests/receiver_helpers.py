"""The webhook receiver (real waitress) served from a thread on a free loopback
port, for tests; optionally behind a WSGI middleware of the test's (`wrap`), to
lose answers or bytes on the way."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from reconciler.hooks.webhook import ServerSettings, WebhookServer, WebhookSettings, make_server

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


@contextmanager
def running(
    settings: WebhookSettings,
    server: ServerSettings | None = None,
    listen: str = "127.0.0.1:0",
    wrap: Callable[[WSGIApp], WSGIApp] | None = None,
) -> Iterator[WebhookServer]:
    """The receiver, answering until the block ends (then shut down and closed)."""
    webhook = make_server(settings, listen, server)
    if wrap is not None:  # what waitress calls for each request
        webhook._server.application = wrap(webhook.app)
    thread = threading.Thread(target=webhook.serve_forever, daemon=True)
    thread.start()
    try:
        yield webhook
    finally:
        webhook.shutdown()
        webhook.server_close()
        thread.join(timeout=10)
    assert not thread.is_alive(), "the receiver's loop did not stop"


@contextmanager
def serving(
    settings: WebhookSettings,
    server: ServerSettings | None = None,
    wrap: Callable[[WSGIApp], WSGIApp] | None = None,
) -> Iterator[int]:
    """The receiver, answering on a loopback port (yielded) until the block ends."""
    with running(settings, server, wrap=wrap) as webhook:
        yield webhook.server_address[1]


class Meddler:
    """A middleware between waitress and the receiver that counts the upload PUTs
    and, for the ones numbered (1-based) in its sets, meddles: `lose` lets the
    receiver store the chunk and answers 503 instead of its answer (the answer
    got lost), `refuse` answers 503 without the receiver seeing it (the request
    got lost), `corrupt` flips the body's first byte on the way (nobody notices)."""

    def __init__(
        self,
        lose: Iterable[int] = (),
        refuse: Iterable[int] = (),
        corrupt: Iterable[int] = (),
    ) -> None:
        self.lose, self.refuse, self.corrupt = set(lose), set(refuse), set(corrupt)
        self.puts = 0
        self.ranges: list[str] = []  # Content-Range of every PUT the receiver saw
        self.lock = threading.Lock()

    def __call__(self, app: WSGIApp) -> WSGIApp:
        def meddling(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if environ.get("REQUEST_METHOD") != "PUT":
                return app(environ, start_response)
            with self.lock:
                self.puts += 1
                number = self.puts
            if number in self.refuse:
                start_response("503 Service Unavailable", [("Content-Length", "0")])
                return [b""]
            if number in self.corrupt:
                body = bytearray(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
                body[0] ^= 0xFF
                environ["wsgi.input"] = io.BytesIO(bytes(body))
            with self.lock:
                self.ranges.append(str(environ.get("HTTP_CONTENT_RANGE")))
            if number not in self.lose:
                return app(environ, start_response)
            app(environ, lambda *args: None)  # stored; the answer is lost
            start_response("503 Service Unavailable", [("Content-Length", "0")])
            return [b""]

        return meddling
