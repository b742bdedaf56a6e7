"""The operators' intents on disk: `<paths.durable>/intents.json`, never a cache.

One JSON object with a `schema_version` and one list per field of `Intents`
(holds, retries, rebuilds, dead_jobs, pauses), each entry the fields of its
dataclass, each field checked against its type (finite numbers only). Written
atomically (mode 0600) with the previous version kept as `intents.json.prev`;
an unreadable or unexpected file is an error naming the file and the field,
never taken as "no intents": forgetting a hold by accident would start builds.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

from reconciler.fs.durable import write_keeping_previous
from reconciler.model.errors import InputError
from reconciler.operator.intents import Intents

INTENTS_FILE = "intents.json"
SCHEMA_VERSION = 1


class IntentError(InputError):
    """The intents file cannot be read or holds something unexpected."""


def _kinds() -> dict[str, type[Any]]:
    """Field of Intents -> the dataclass its tuple holds."""
    hints = typing.get_type_hints(Intents)
    return {f.name: typing.get_args(hints[f.name])[0] for f in fields(Intents)}


def load_intents(path: Path) -> Intents:
    """The operator intents on disk; an unreadable file is an error, never ignored."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except FileNotFoundError:
        return Intents()
    except (OSError, ValueError) as exc:
        raise IntentError(f"{path}: unreadable operator intents: {exc}") from exc
    if not isinstance(data, dict):
        raise IntentError(f"{path}: expected a JSON object")
    values = {}
    for name, kind in _kinds().items():
        rows = data.get(name, [])
        if not isinstance(rows, list):
            raise IntentError(f"{path}: field {name!r}: expected a list")
        values[name] = tuple(_entry(path, f"{name}[{i}]", kind, row) for i, row in enumerate(rows))
    return Intents(**values)


def _entry(path: Path, where: str, kind: type[Any], row: Any) -> Any:
    """One dataclass from its JSON object, every field of the type it declares."""
    if not isinstance(row, dict):
        raise IntentError(f"{path}: {where}: expected an object")
    hints = typing.get_type_hints(kind)
    names = {f.name for f in fields(kind)}
    unknown = sorted(set(row) - names)
    if unknown:
        raise IntentError(f"{path}: {where}: unexpected field {unknown[0]!r}")
    for f in fields(kind):
        if f.name not in row:
            if f.default is MISSING and f.default_factory is MISSING:
                raise IntentError(f"{path}: {where}: field {f.name!r} is missing")
            continue
        expected = _expected(hints[f.name])
        if not _is_a(row[f.name], expected):
            names_of = " or ".join("null" if t is type(None) else t.__name__ for t in expected)
            raise IntentError(f"{path}: {where}.{f.name}: expected {names_of}, got {row[f.name]!r}")
    return kind(**row)


def _expected(hint: Any) -> tuple[type[Any], ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _is_a(value: Any, expected: tuple[type[Any], ...]) -> bool:
    for kind in expected:
        if kind is type(None) and value is None:
            return True
        if kind is str and isinstance(value, str):
            return True
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if (
            kind is float
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
        ):
            return True
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def save_intents(path: Path, intents: Intents) -> None:
    """Write the intents atomically, keeping the previous file as `<name>.prev`."""
    document: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for name in _kinds():
        document[name] = [asdict(item) for item in getattr(intents, name)]
    text = json.dumps(document, indent=1, sort_keys=True, allow_nan=False) + "\n"
    write_keeping_previous(path, text.encode("utf-8"), mode=0o600)
