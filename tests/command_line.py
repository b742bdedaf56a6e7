"""The real command line, run in this process: argument parsing, validation,
output and exit code as `reconciler ...` gives them, without a new interpreter."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from reconciler.cli.main import main


@dataclass(frozen=True, slots=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*argv: str) -> Ran:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Ran(code, out.getvalue(), err.getvalue())
