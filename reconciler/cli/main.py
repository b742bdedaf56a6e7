"""The command line: the daemon (`run`) and the operator's tools.

Every subcommand validates its input and exits non-zero with a one-line reason
(exit 2 for a bad configuration or bad arguments, 1 when the work did not
succeed), never with a traceback for bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys

from reconciler.cli import Subcommand, daemon, hooks, operations, status, tools
from reconciler.model.errors import ConfigError, ReconcilerError, UsageError

# Every subcommand, in the order `--help` lists them.
SUBCOMMANDS: dict[str, Subcommand] = {
    **daemon.SUBCOMMANDS,
    **status.SUBCOMMANDS,
    **{k: v for k, v in tools.SUBCOMMANDS.items() if k != "verify"},
    **operations.SUBCOMMANDS,
    "verify": tools.SUBCOMMANDS["verify"],
    **hooks.SUBCOMMANDS,
}

# The one place an error becomes an exit code: the first class that matches wins.
EXIT_CODES: tuple[tuple[type[ReconcilerError], int], ...] = (
    (UsageError, 2),  # ConfigError too: the command cannot run as asked
    (ReconcilerError, 1),  # InputError, UnavailableError: the work did not succeed
)


def exit_code(error: ReconcilerError) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(error, kind))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reconciler", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in SUBCOMMANDS.items():
        command.arguments(sub.add_parser(name, help=command.help))
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        sys.exit(SUBCOMMANDS[args.command].run(args))
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        sys.exit(exit_code(exc))
    except ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exit_code(exc))
