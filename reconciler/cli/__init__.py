"""The command line: the daemon (`run`) and the operator's tools.

`main` builds one parser from the subcommands each module here declares
(`daemon`, `tools`, `operations` from the operator registry, `hooks`), runs the
one asked for and maps a ReconcilerError to its exit code in one place. May
import every package below it; nothing imports it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Subcommand:
    """One subcommand: its help line, how it declares its arguments, what it runs."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML file (default: embedded defaults)")
