"""Typed reads from a YAML node tree that collect errors with their line numbers.

`NodeReader` is the checker behind config loading: each read either returns a
value of the expected type or records `file:line: where: expected ...` and returns
the default, so one pass over the file finds every problem.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from pathlib import Path
from typing import TypeVar

import yaml

from reconciler.model.errors import ConfigError

T = TypeVar("T")

_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}


class NodeReader:
    def __init__(self, source: str, base: Path) -> None:
        self.source = source
        self.base = base
        self.problems: list[str] = []
        self._context_line = 1

    # --- bookkeeping -----------------------------------------------------
    def error(self, node: yaml.Node | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else self._context_line
        self.problems.append(f"{self.source}:{line}: {message}")

    def raise_if_errors(self) -> None:
        if self.problems:
            raise ConfigError(sorted(set(self.problems), key=_line_order))

    def _missing(self, where: str, what: str) -> None:
        self.problems.append(
            f"{self.source}:{self._context_line}: {where}: missing, expected {what}"
        )

    # --- containers ------------------------------------------------------
    def mapping(
        self, node: yaml.Node | None, where: str, allowed: Set[str]
    ) -> dict[str, yaml.Node]:
        if node is None or _is_null(node):
            return {}
        self._context_line = node.start_mark.line + 1
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{where}: expected a mapping of keys to values")
            return {}
        result: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str) or key not in allowed:
                known = ", ".join(sorted(allowed))
                self.error(key_node, f"{where}: unknown key {key!r} (known keys: {known})")
            elif key in result:
                self.error(key_node, f"{where}: key {key!r} appears twice")
            else:
                result[key] = value_node
        return result

    def sequence(self, node: yaml.Node | None, where: str, *, required: bool) -> list[yaml.Node]:
        if node is None or _is_null(node):
            if required:
                self._missing(where, "a list")
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, f"{where}: expected a list")
            return []
        return list(node.value)

    # --- scalars ---------------------------------------------------------
    def _scalar(self, node: yaml.Node | None, where: str, what: str) -> str | None:
        if node is None:
            return None
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, f"{where}: expected {what}")
            return None
        return str(node.value)

    def string(self, node: yaml.Node | None, where: str, default: T) -> str | T:
        value = self._scalar(node, where, "a string")
        if value is None:
            if node is None and default is None:
                self._missing(where, "a string")
            return default
        if "\x00" in value:
            self.error(node, f"{where}: NUL characters are not allowed")
            return default
        return value

    def choice(
        self, node: yaml.Node | None, where: str, default: str, options: tuple[str, ...]
    ) -> str:
        value = self._scalar(node, where, f"one of {', '.join(options)}")
        if value is None:
            return default
        if value not in options:
            self.error(node, f"{where}: expected one of {', '.join(options)}, got {value!r}")
            return default
        return value

    def integer(self, node: yaml.Node | None, where: str, default: int, *, minimum: int = 0) -> int:
        value = self._scalar(node, where, "a whole number")
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.error(node, f"{where}: expected a whole number, got {value!r}")
            return default
        if number < minimum:
            self.error(node, f"{where}: expected a number >= {minimum}, got {number}")
            return default
        return number

    def number(self, node: yaml.Node | None, where: str, default: float) -> float:
        value = self._scalar(node, where, "a number")
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            self.error(node, f"{where}: expected a number of seconds, got {value!r}")
            return default
        if not 0 <= number < 10**9:
            self.error(node, f"{where}: expected a number >= 0, got {value!r}")
            return default
        return number

    def boolean(self, node: yaml.Node | None, where: str, default: bool) -> bool:
        value = self._scalar(node, where, "true or false")
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        self.error(node, f"{where}: expected true or false, got {value!r}")
        return default

    def path(self, node: yaml.Node | None, where: str, default: T) -> Path | T:
        if node is not None and (_is_null(node) or node.value == ""):
            self.error(node, f"{where}: expected a path, got an empty value")
            return self.base / default if isinstance(default, Path) else default
        value = self.string(node, where, None if default is None else "")
        if not value:
            return self.base / default if isinstance(default, Path) else default
        return (self.base / Path(value).expanduser()).resolve()

    def str_list(
        self,
        node: yaml.Node | None,
        where: str,
        default: list[str] | None,
        *,
        check: Callable[[str], bool] | None = None,
    ) -> list[str]:
        if node is None or _is_null(node):
            if default is None and node is None:
                self._missing(where, "a list of strings")
            return list(default or [])
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, f"{where}: expected a list of strings")
            return list(default or [])
        result: list[str] = []
        for index, item in enumerate(node.value):
            value = self._scalar(item, f"{where}[{index}]", "a string")
            if value is None:
                continue
            if check is not None and not check(value):
                self.error(item, f"{where}[{index}]: {value!r} is not a valid name")
                continue
            result.append(value)
        return result


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _line_order(problem: str) -> tuple[str, int, str]:
    source, _, rest = problem.partition(":")
    line, _, message = rest.partition(":")
    return (source, int(line) if line.isdigit() else 0, message)
