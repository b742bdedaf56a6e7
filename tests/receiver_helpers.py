"""The webhook receiver (real waitress) served from a thread on a free loopback
port, for tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from reconciler.hooks.webhook import ServerSettings, WebhookServer, WebhookSettings, make_server


@contextmanager
def running(
    settings: WebhookSettings, server: ServerSettings | None = None, listen: str = "127.0.0.1:0"
) -> Iterator[WebhookServer]:
    """The receiver, answering until the block ends (then shut down and closed)."""
    webhook = make_server(settings, listen, server)
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
def serving(settings: WebhookSettings, server: ServerSettings | None = None) -> Iterator[int]:
    """The receiver, answering on a loopback port (yielded) until the block ends."""
    with running(settings, server) as webhook:
        yield webhook.server_address[1]
