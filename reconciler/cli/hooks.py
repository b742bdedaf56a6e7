"""The `token` and `webhook` subcommands.

`reconciler token new NAME` makes a token, stores only its salted hash and prints
the plaintext once to stdout (nothing else goes to stdout; the note about where
the hash went goes to stderr; no log line ever holds the token). Running it again
for the same name replaces the token. `reconciler token list` shows the names.
`reconciler webhook [--listen 127.0.0.1:8081]` runs the receiver of push hooks
(token `push-hook`) and job-end callbacks (token `job-callback`, see
`hooks.jobend`) on waitress; `--listen 127.0.0.1:0` picks a free port (the log
line names it), `[::1]:8081` listens on IPv6. Ctrl-C or SIGTERM stops it after
writing the push triggers still waiting for their settle window.

Both read the configuration for their paths: the store defaults to
`<paths.durable>/tokens.json`, triggers go to `paths.triggers`. Their errors are
UsageErrors: a one-line message and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconciler.cli import Subcommand, config_argument
from reconciler.config.settings import load_config
from reconciler.hooks.jobend import CALLBACK_TOKEN_NAME
from reconciler.hooks.tokens import TokenStore, default_store_path
from reconciler.hooks.webhook import DEFAULT_LISTEN, DEFAULT_TOKEN_NAME, serve


def _store_path(args: argparse.Namespace) -> Path:
    if args.token_store:
        return Path(args.token_store)
    config = load_config(Path(args.config) if args.config else None)
    return default_store_path(config.paths.durable, config.paths.state)


def token(args: argparse.Namespace) -> int:
    store = TokenStore(_store_path(args))
    if args.token_command == "list":
        for name in store.names():
            print(name)
        return 0
    plaintext = store.create(args.name)
    print(
        f"Stored the hash of token {args.name!r} in {store.path}. The token follows; "
        "it is shown only this once (run the command again to replace it).",
        file=sys.stderr,
    )
    print(plaintext, flush=True)
    return 0


def webhook(args: argparse.Namespace) -> int:
    try:
        serve(
            Path(args.config) if args.config else None,
            args.listen,
            token_name=args.token_name,
            token_store=Path(args.token_store) if args.token_store else None,
        )
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument(
        "--token-store", help="token file (default: <paths.durable>/tokens.json)", default=None
    )


def _token_arguments(parser: argparse.ArgumentParser) -> None:
    token_sub = parser.add_subparsers(dest="token_command", required=True)
    new = token_sub.add_parser(
        "new", help="make a token, print it once, store only its hash (replaces an old one)"
    )
    new.add_argument(
        "name", help=f"token name: {DEFAULT_TOKEN_NAME} (GitLab) or {CALLBACK_TOKEN_NAME} (jobs)"
    )
    listing = token_sub.add_parser("list", help="names that have a token")
    for sub in (new, listing):
        _common(sub)


def _webhook_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen", default=DEFAULT_LISTEN, help=f"host:port (default {DEFAULT_LISTEN})"
    )
    parser.add_argument(
        "--token-name",
        default=DEFAULT_TOKEN_NAME,
        help=f"which stored token X-Gitlab-Token must match (default {DEFAULT_TOKEN_NAME})",
    )
    _common(parser)


SUBCOMMANDS = {
    "token": Subcommand("make or list shared secrets (stored hashed)", _token_arguments, token),
    "webhook": Subcommand(
        "receive GitLab push hooks and job-end callbacks, write trigger files",
        _webhook_arguments,
        webhook,
    ),
}
