"""The operators' subcommands, one per operation in the operator registry.

Each writes one trigger file, which the daemon applies on its next pass; the
arguments, their help and their validation all come from the operation's fields
(a field that may stand aside for another, `Field.unless`, is optional here: the
trigger's validation says when neither or both are given), the command's
description from its `DESCRIPTION`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import time
from functools import partial
from pathlib import Path

from reconciler.cli import Subcommand, config_argument
from reconciler.config.settings import load_config
from reconciler.model.errors import UsageError
from reconciler.operator.operations import OPERATIONS, Field, Operation, OperationError
from reconciler.operator.triggers import TriggerError, write_trigger


def _dest(field: Field) -> str:
    assert field.flag is not None
    return field.flag.lstrip("-").replace("-", "_")


def _arguments(operation: type[Operation], parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    if operation.DESCRIPTION:
        parser.description = f"{operation.HELP[0].upper()}{operation.HELP[1:]}. " + (
            operation.DESCRIPTION
        )
    for field in operation.FIELDS:
        if field.flag is None:
            continue
        options: dict[str, object] = {"help": field.help}
        if field.metavar is not None:
            options["metavar"] = field.metavar
        if field.cli_type is not str:
            options["type"] = field.cli_type
        if not field.flag.startswith("--") and not field.required:
            options.update(nargs="?", default=field.default)
        elif field.flag.startswith("--"):
            if field.required:
                options["required"] = True
            elif field.default not in ("", None):
                options["default"] = field.default
            elif field.name == "arch":
                options["default"] = ""
        parser.add_argument(field.flag, **options)  # type: ignore[arg-type]


def request(operation: type[Operation], args: argparse.Namespace) -> int:
    """Write the operation's trigger file into the configured trigger directory."""
    config = load_config(Path(args.config) if args.config else None)
    now = time.time()
    document: dict[str, object] = {
        "type": operation.NAME,
        "who": args.who or getpass.getuser(),
        "why": args.why,
        "requested_at": now,
    }
    for field in operation.FIELDS:
        if field.name in ("who", "why"):
            continue
        value = getattr(args, _dest(field)) if field.flag is not None else field.default
        if field.from_cli is not None:
            try:
                value = field.from_cli(value, now)
            except OperationError as exc:
                raise UsageError(str(exc)) from exc
        if value is not None:
            document[field.name] = value
    name = f"{operation.NAME}-{int(now * 1000)}-{os.getpid()}.json"
    try:
        path = write_trigger(config.paths.triggers, name, document)
    except TriggerError as exc:
        raise UsageError(str(exc)) from exc
    print(f"{operation.NAME} requested: {path}")
    return 0


SUBCOMMANDS = {
    name: Subcommand(op.HELP, partial(_arguments, op), partial(request, op))
    for name, op in OPERATIONS.items()
}
