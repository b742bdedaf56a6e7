"""Trigger files: the one format every writer uses and the daemon reads.

A trigger is one JSON object of at most `MAX_TRIGGER_BYTES` with a `type`:
`wake` (just start a pass), `push` (a pmaports branch moved: fetch it first) or
the name of an operation (see `operations`, which validates its fields). Every
writer (the CLI, the webhook and job-end receivers) writes through
`write_trigger`: validated first, written aside, synced, renamed in; a job's
runner writes the same bytes (`trigger_bytes`) beside its job, unsynced (its
status file is the durable record), and renames them in. Reading is
`parse_trigger`; a bad file is refused with a message naming the file and field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.fs.atomicfile import write_bytes
from reconciler.model.errors import InputError
from reconciler.model.names import is_safe_branch
from reconciler.operator.operations import OPERATIONS, Operation

MAX_TRIGGER_BYTES = 64 * 1024
KNOWN_TYPES = ("wake", "push", *OPERATIONS)


class TriggerError(InputError):
    """A trigger file that is not what was expected; names the file and the field."""


@dataclass(frozen=True, slots=True)
class Trigger:
    name: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    operation: Operation | None = None  # for an operation's trigger: its validated value


def parse_trigger(name: str, raw: bytes) -> Trigger:
    """Validate one trigger file's bytes; TriggerError names the file and the field."""
    if len(raw) > MAX_TRIGGER_BYTES:
        raise TriggerError(f"{name}: larger than {MAX_TRIGGER_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise TriggerError(f"{name}: not a JSON document: {exc}") from exc
    except RecursionError as exc:
        raise TriggerError(f"{name}: JSON nested too deeply") from exc
    if not isinstance(data, dict):
        raise TriggerError(f"{name}: expected a JSON object")
    kind = data.get("type")
    if kind not in KNOWN_TYPES:
        raise TriggerError(
            f"{name}: field 'type': expected one of {', '.join(KNOWN_TYPES)}, got {kind!r}"
        )
    if kind == "push":
        branch = data.get("branch")
        if not isinstance(branch, str) or not is_safe_branch(branch):
            raise TriggerError(f"{name}: field 'branch': expected a branch name, got {branch!r}")
    operation = None
    if kind in OPERATIONS:
        try:
            operation = OPERATIONS[kind].from_trigger(name, data)
        except InputError as exc:
            raise TriggerError(str(exc)) from exc
    return Trigger(name, str(kind), data, operation)


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity are not JSON: refused, not read as floats."""
    raise ValueError(f"{name} is not a JSON value")


def trigger_bytes(document: Mapping[str, Any]) -> bytes:
    """The file's bytes; ValueError for a value JSON cannot hold (NaN, Infinity)."""
    return json.dumps(document, indent=1, allow_nan=False).encode()


def write_trigger(directory: Path, name: str, document: Mapping[str, Any]) -> Path:
    """Validate `document` as the daemon will, then write it as `directory/name`
    atomically (aside, synced, renamed in). TriggerError when it is not valid."""
    try:
        data = trigger_bytes(document)
    except ValueError as exc:
        raise TriggerError(f"{name}: {exc}") from exc
    parse_trigger(name, data)
    path = directory / name
    write_bytes(path, data)
    return path
