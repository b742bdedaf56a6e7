"""The `token` and `webhook` subcommands, registered into the main CLI's parser.

`reconciler token new NAME` makes a token, stores only its salted hash and prints
the plaintext once to stdout (nothing else goes to stdout; the note about where
the hash went goes to stderr; no log line ever holds the token). Running it again
for the same name replaces the token. `reconciler token list` shows the names.
`reconciler webhook [--listen 127.0.0.1:8081]` runs the receiver of push hooks
(token `push-hook`) and job-end callbacks (token `job-callback`, see `jobhooks`).

Both read the configuration for their paths: the store defaults to
`<paths.state>/tokens.json`, triggers go to `paths.triggers`. Errors end with a
one-line message and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from reconciler.config.settings import load_config
from reconciler.hooks.jobend import CALLBACK_TOKEN_NAME
from reconciler.hooks.tokens import TokenStore, TokenStoreError, default_store_path
from reconciler.hooks.webhook import DEFAULT_LISTEN, DEFAULT_TOKEN_NAME, WebhookError, serve

Handler = Callable[[argparse.Namespace], int]


def _store_path(args: argparse.Namespace) -> Path:
    if args.token_store:
        return Path(args.token_store)
    config = load_config(Path(args.config) if args.config else None)
    return default_store_path(config.paths.state)


def cmd_token(args: argparse.Namespace) -> int:
    try:
        store = TokenStore(_store_path(args))
        if args.token_command == "list":
            for name in store.names():
                print(name)
            return 0
        token = store.create(args.name)
    except TokenStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"Stored the hash of token {args.name!r} in {store.path}. The token follows; "
        "it is shown only this once (run the command again to replace it).",
        file=sys.stderr,
    )
    print(token, flush=True)
    return 0


def cmd_webhook(args: argparse.Namespace) -> int:
    try:
        serve(
            Path(args.config) if args.config else None,
            args.listen,
            token_name=args.token_name,
            token_store=Path(args.token_store) if args.token_store else None,
        )
    except WebhookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML file (default: embedded defaults)")
    parser.add_argument(
        "--token-store", help="token file (default: <paths.state>/tokens.json)", default=None
    )


def add_subcommands(sub: Any, commands: MutableMapping[str, Handler]) -> None:
    """Add `token` and `webhook` to `sub` (argparse subparsers) and their handlers."""
    token = sub.add_parser("token", help="make or list shared secrets (stored hashed)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    new = token_sub.add_parser(
        "new", help="make a token, print it once, store only its hash (replaces an old one)"
    )
    new.add_argument(
        "name", help=f"token name: {DEFAULT_TOKEN_NAME} (GitLab) or {CALLBACK_TOKEN_NAME} (jobs)"
    )
    listing = token_sub.add_parser("list", help="names that have a token")
    for parser in (new, listing):
        _common(parser)
    webhook = sub.add_parser(
        "webhook", help="receive GitLab push hooks and job-end callbacks, write trigger files"
    )
    webhook.add_argument(
        "--listen", default=DEFAULT_LISTEN, help=f"host:port (default {DEFAULT_LISTEN})"
    )
    webhook.add_argument(
        "--token-name",
        default=DEFAULT_TOKEN_NAME,
        help=f"which stored token X-Gitlab-Token must match (default {DEFAULT_TOKEN_NAME})",
    )
    _common(webhook)
    commands["token"] = cmd_token
    commands["webhook"] = cmd_webhook
