"""The webhook receiver served from a thread on a free loopback port, for tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from reconciler.hooks.webhook import WebhookSettings, make_server


@contextmanager
def serving(settings: WebhookSettings) -> Iterator[int]:
    """The receiver, answering on a loopback port (yielded) until the block ends."""
    server = make_server(settings, "127.0.0.1:0")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
