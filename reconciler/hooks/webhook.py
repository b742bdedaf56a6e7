"""The webhook receiver's server: the WSGI application of `app`, served by waitress.

`reconciler webhook` runs it on 127.0.0.1:8081 behind nginx, which forwards only
complete requests. Waitress reads every request in full on one event loop
(`poll`, so any number of descriptors) before one of a fixed pool of `threads`
worker threads runs the application: a slow client costs a channel, not a
thread. Its limits (`ServerSettings`):

- `connection_limit` open connections; above it the server stops accepting
  until some close (the kernel's backlog, `backlog` long and capped by
  `net.core.somaxconn`, holds the rest);
- `channel_timeout_seconds`: a connection with no request running that has sent
  nothing for that long is closed (a half-sent request too). It is idle time:
  a client trickling a byte now and then keeps its channel, but only a channel;
- request headers up to `max_header_bytes`; bodies up to the largest route
  limit (`WebhookSettings.largest_body`: an upload's chunk, 16 MiB, when image
  uploads are on), refused with 413 by the server itself before anything is
  buffered beyond it; each route then checks its own limit. A body over 512 KiB
  is buffered in a temporary file, not in memory.

The only module importing waitress. `make_server` binds (port 0 picks a free one;
`[::1]:port` binds IPv6) and refuses to start without the push-hook token;
`WebhookServer` runs the loop until `shutdown()` from another thread, an
interrupt or SIGTERM (in the main thread), and `server_close()` then writes the
coalesced triggers still pending.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from reconciler.config.settings import Config, load_config
from reconciler.config.sourcehut import uploads_root
from reconciler.hooks.app import (
    DEFAULT_TOKEN_NAME,
    MAX_BODY_BYTES,
    ROUTE,
    ROUTES,
    WebhookApp,
    WebhookSettings,
)
from reconciler.hooks.jobend import CALLBACK_ROUTE
from reconciler.hooks.tokens import TokenStore, TokenStoreError, default_store_path
from reconciler.hooks.upload import UPLOAD_PREFIX, UploadSettings
from reconciler.model.errors import UsageError

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_TOKEN_NAME",
    "MAX_BODY_BYTES",
    "ROUTE",
    "ServerSettings",
    "WebhookError",
    "WebhookServer",
    "WebhookSettings",
    "make_server",
    "parse_listen",
    "serve",
]

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:8081"


class WebhookError(UsageError):
    """The receiver cannot start: bad listen address or no token to check against."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Waitress's limits (see the module docstring)."""

    threads: int = 8
    connection_limit: int = 1000
    channel_timeout_seconds: int = 10
    backlog: int = 1024
    max_header_bytes: int = 64 * 1024
    ident: str = "reconciler-webhook"

    @property
    def cleanup_interval(self) -> int:
        """How often idle channels are looked for: closed within 1.5 timeouts."""
        return max(1, self.channel_timeout_seconds // 2)


class WebhookServer:
    """A bound waitress server with its application: `server_address`,
    `serve_forever()`, `shutdown()` (from another thread), `server_close()`."""

    def __init__(self, app: WebhookApp, sock: socket.socket, server: ServerSettings) -> None:
        self.app = app
        self.settings = server
        self._map: dict[int, Any] = {}  # waitress's channels by file descriptor
        self._started = threading.Event()
        self._stopped = threading.Event()
        host, port = sock.getsockname()[:2]
        self.server_address: tuple[str, int] = (str(host), int(port))
        # Any: the stubs type this as a union without the trigger it has.
        self._server: Any = create_server(
            app,
            map=self._map,
            sockets=[sock],
            threads=server.threads,
            connection_limit=server.connection_limit,
            channel_timeout=server.channel_timeout_seconds,
            cleanup_interval=server.cleanup_interval,
            backlog=server.backlog,
            max_request_header_size=server.max_header_bytes,
            # The parser refuses a Content-Length >= this: the largest limit passes.
            max_request_body_size=app.settings.largest_body + 1,
            asyncore_use_poll=True,  # select() fails past descriptor 1023
            clear_untrusted_proxy_headers=False,  # nothing here reads them
            expose_tracebacks=False,
            log_socket_errors=False,  # a client's reset is no traceback in the journal
            ident=server.ident,
        )

    def serve_forever(self) -> None:
        """Run the event loop until `shutdown()` (or an exception, such as Ctrl-C)."""
        self._started.set()
        try:
            wasyncore.loop(
                timeout=self._server.adj.asyncore_loop_timeout, map=self._map, use_poll=True
            )
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop `serve_forever` (from another thread) and wait until it returned."""
        if self._stopped.is_set() or not self._map:
            return
        # The thunk runs in the loop's thread; with the map empty, the loop ends.
        try:
            self._server.trigger.pull_trigger(self._close_channels)
        except OSError:  # the trigger is closed already: the channels are going
            self._close_channels()
        if self._started.is_set():
            self._stopped.wait()

    def server_close(self) -> None:
        """Close every socket, stop the worker threads, write pending triggers."""
        if self._started.is_set() and not self._stopped.is_set():
            self.shutdown()
        self._close_channels()
        self._server.task_dispatcher.shutdown()
        self.app.close()

    def _close_channels(self) -> None:
        wasyncore.close_all(self._map, ignore_all=True)


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise WebhookError(f"--listen {listen!r}: expected host:port, e.g. {DEFAULT_LISTEN}")
    return host, int(port)


def _bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket (IPv6 when the host has a colon); waitress listens on it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def make_server(
    settings: WebhookSettings,
    listen: str = DEFAULT_LISTEN,
    server: ServerSettings | None = None,
) -> WebhookServer:
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
    try:
        sock = _bind(host, port)
    except OSError as exc:
        raise WebhookError(f"cannot listen on {listen}: {exc}") from exc
    return WebhookServer(WebhookApp(settings), sock, server or ServerSettings())


def upload_settings(config: Config) -> UploadSettings | None:
    """The upload route's settings: on when image jobs run on builds.sr.ht with an
    upload URL (`jobs.sourcehut.upload_url`), into `<paths.data>/uploads`."""
    sh = config.jobs.sourcehut
    if config.jobs.service != "sourcehut" or sh is None or not sh.upload_url:
        return None
    return UploadSettings(
        root=uploads_root(config.paths.data),
        max_file_bytes=sh.upload_max_file_bytes,
        max_job_bytes=sh.upload_max_job_bytes,
        max_total_bytes=sh.upload_max_total_bytes,
    )


def serve(
    config_path: Path | None,
    listen: str = DEFAULT_LISTEN,
    *,
    token_name: str = DEFAULT_TOKEN_NAME,
    token_store: Path | None = None,
    ready: Callable[[WebhookServer], None] | None = None,
    server_settings: ServerSettings | None = None,
) -> None:
    """Run the receiver for a configuration until interrupted (or `shutdown()`).

    In the main thread, SIGTERM stops it like Ctrl-C: the pending coalesced
    triggers are written before it returns (or re-raises the interrupt).
    """
    config = load_config(config_path)
    settings = WebhookSettings(
        token_store=token_store or default_store_path(config.paths.durable, config.paths.state),
        trigger_dir=config.paths.triggers,
        branches=tuple(branch.name for branch in config.branches),
        token_name=token_name,
        settle_seconds=config.loop.settle_seconds,
        uploads=upload_settings(config),
    )
    server = make_server(settings, listen, server_settings)
    host, port = server.server_address
    log.info(
        "webhook receiver on %s:%s (%s) for %s",
        f"[{host}]" if ":" in host else host,
        port,
        ", ".join(ROUTES),
        ", ".join(settings.branches),
    )
    if not server.app.store.has(settings.callback_token_name):
        log.info("no %r token: %s answers 401", settings.callback_token_name, CALLBACK_ROUTE)
    if settings.uploads is not None:
        log.info("image uploads on %s into %s", UPLOAD_PREFIX, settings.uploads.root)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if in_main else None
    try:
        if ready is not None:
            ready(server)
        server.serve_forever()
    finally:
        server.server_close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
