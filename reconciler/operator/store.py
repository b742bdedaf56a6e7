"""The operators' intents on disk: `<state>/intents.json`, durable, never a cache.

One JSON object with a `schema_version` and one list per field of `Intents`
(holds, retries, rebuilds, dead_jobs), each entry the fields of its dataclass.
Written atomically (mode 0600); an unreadable file is an error, never taken as
"no intents": deleting a hold by accident must not start builds.
"""

from __future__ import annotations

import json
import typing
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from reconciler.fs.atomicfile import write_text
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
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Intents()
    except (OSError, ValueError) as exc:
        raise IntentError(f"{path}: unreadable operator intents: {exc}") from exc
    try:
        return Intents(
            **{
                name: tuple(kind(**row) for row in data.get(name, []))
                for name, kind in _kinds().items()
            }
        )
    except (TypeError, AttributeError) as exc:
        raise IntentError(f"{path}: unexpected content: {exc}") from exc


def save_intents(path: Path, intents: Intents) -> None:
    document: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for name in _kinds():
        document[name] = [asdict(item) for item in getattr(intents, name)]
    write_text(path, json.dumps(document, indent=1, sort_keys=True) + "\n", mode=0o600)
