"""The errors reconciler raises on purpose: one base, four kinds a user tells apart.

Modelled on the split between "the world's fault" and "our bug" (pmbootstrap)
and between permanent and temporary failures (kopf):

- `InputError`: something from outside (a file, a trigger, a package, an index,
  a job's result, a key) is not what was expected. The message names it, the
  field and what was expected. Never retried until the input changes.
- `UsageError`: a command cannot run as asked (a bad argument, or a setup the
  operator must fix first); `ConfigError` is the configuration's kind of it.
- `UnavailableError`: a service or tool is out of reach for now (the job
  service, a git remote, the mirror); the next pass tries again.
- anything else raised is a bug, and says so with a traceback.

The command line maps them to exit codes in one place (`cli.main.EXIT_CODES`).
"""

from __future__ import annotations


class ReconcilerError(Exception):
    """Every error reconciler raises on purpose."""


class InputError(ReconcilerError, ValueError):
    """Input from outside that is not what was expected; the message says what."""


class UsageError(ReconcilerError):
    """A command that cannot run as asked: a bad argument or a setup to fix first."""


class ConfigError(UsageError):
    """Every problem found in a configuration, one `file:line: message` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class UnavailableError(ReconcilerError):
    """A service or tool out of reach for now; the next pass tries again."""
