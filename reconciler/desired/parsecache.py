"""APKBUILD parses kept on disk across restarts: a cache in the state directory.

A restarted daemon would otherwise parse every APKBUILD of every branch again
(about 0.15 ms each). Each parse is stored under the APKBUILD's path with the
(inode, size, mtime_ns) it was read at, and is used again only while the file
still has exactly those; the walk that finds the files checks that. The file is
`marshal` data (plain tuples, strings, integers: loading it runs no code; equal
strings and tuples are written once, so loading makes few objects) and records a
digest of the parser's source, so a new parser never trusts old parses.
Losing or corrupting it costs one parse of the tree, nothing else.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
from pathlib import Path
from typing import Any

from reconciler.desired.resolve import ParsedFile
from reconciler.formats import apkbuild, shellvars
from reconciler.formats.apkbuild import Apkbuild, Subpackage
from reconciler.fs.atomicfile import write_bytes
from reconciler.model import names

log = logging.getLogger(__name__)

Ident = tuple[int, int, int]  # (inode, size, mtime_ns)
Entry = tuple[Ident, ParsedFile]


def parser_digest() -> str:
    """Changes whenever the code that turns APKBUILD text into fields, or the
    shape this module stores them in, changes."""
    digest = hashlib.sha256()
    for module in (apkbuild, shellvars, names):
        digest.update(Path(module.__file__ or "").read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()


def _dump_apkbuild(a: Apkbuild) -> tuple[object, ...]:
    subpackages = tuple(
        (s.name, s.func, s.arch, s.pkgdesc, s.depends, s.provides) for s in a.subpackages
    )
    return (
        a.pkgname,
        a.pkgver,
        a.pkgrel,
        a.pkgdesc,
        a.url,
        a.license,
        a.maintainer,
        a.arch,
        a.depends,
        a.makedepends,
        a.makedepends_build,
        a.makedepends_host,
        a.checkdepends,
        a.provides,
        a.provider_priority,
        a.install_if,
        a.options,
        subpackages,
        a.source,
        a.install,
        a.triggers,
        a.lines,
    )


def _load_apkbuild(fields: tuple[Any, ...]) -> Apkbuild:
    if fields[17]:
        values = list(fields)
        values[17] = tuple([Subpackage(*s) for s in values[17]])
        return Apkbuild(*values)
    return Apkbuild(*fields)


def _shared(value: object, memo: dict[object, object]) -> object:
    """`value` with equal strings and tuples made one object each: marshal then
    writes each once, and loading makes fewer objects."""
    if isinstance(value, tuple):
        value = tuple([_shared(v, memo) for v in value])
    elif not isinstance(value, str):
        return value
    return memo.setdefault(value, value)


def dump(entries: dict[str, Entry]) -> bytes:
    memo: dict[object, object] = {}
    rows = {
        path: _shared(
            (
                ident,
                p.path,
                p.splitrepo,
                None if p.apkbuild is None else _dump_apkbuild(p.apkbuild),
                p.error,
                p.mtime_ns,
            ),
            memo,
        )
        for path, (ident, p) in entries.items()
    }
    return marshal.dumps((parser_digest(), rows))


def _entry(
    ident: Ident, rel: str, splitrepo: str, fields: tuple[Any, ...] | None, error: str, mtime: int
) -> Entry:
    if len(ident) != 3:
        raise ValueError(f"a file identity of {len(ident)} fields")
    parsed = None if fields is None else _load_apkbuild(fields)
    return ident, ParsedFile(rel, splitrepo, parsed, error, mtime)


def load(data: bytes) -> dict[str, Entry]:
    """The entries of a cache file; {} when it is of another parser or malformed."""
    try:
        digest, rows = marshal.loads(data)
        if digest != parser_digest():
            return {}
        return {path: _entry(*row) for path, row in rows.items()}
    except (ValueError, TypeError, EOFError, IndexError, AttributeError) as exc:
        log.warning("ignoring a malformed APKBUILD parse cache: %s", exc)
        return {}


class ParseCache:
    """The parse cache files of one daemon, one per tree: read when the tree is
    first walked, written after a walk that parsed something."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._saved: dict[str, dict[str, Entry]] = {}  # tree root -> what its file holds

    def path_for(self, root: str) -> Path:
        name = hashlib.sha256(root.encode()).hexdigest()[:16]
        return self.directory / f"apkbuilds-{name}.cache"

    def read(self, root: str) -> dict[str, Entry]:
        """The stored parses of the tree at `root`, by APKBUILD path."""
        path = self.path_for(root)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return {}
        self._saved[root] = load(data)
        return dict(self._saved[root])

    def save(self, root: str, entries: dict[str, Entry]) -> None:
        """Store `entries` unless the file holds them already; a full disk only
        costs the cache."""
        saved = self._saved.get(root, {})
        if entries.keys() == saved.keys() and all(entries[k] is v for k, v in saved.items()):
            return
        path = self.path_for(root)
        try:
            write_bytes(path, dump(entries))
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc)
            return
        self._saved[root] = dict(entries)
