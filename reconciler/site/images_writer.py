"""Writes the images tree's pages and index.json into the images directory.

The pages are `site.imagetree` values rendered by a callable the caller gives
(template name, context -> HTML): the site writer's jinja2 environment, the one
module that imports jinja2, with its autoescape and its `static_url`. A page is
rendered only when its value (or the `style` it is rendered with: the static
files' fingerprints) differs from the one this writer last wrote; a
file is replaced (written aside, then renamed, all in one batch) only when its
bytes differ from what is on disk. A page goes only into a directory that still
exists: the tree may have lost a date directory (retention, `remove-images`)
since it was observed, and writing would make it again. The `index.html` of a
directory the tree no longer lists (a UI whose last image went) is removed, so
no page links images that are gone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from reconciler.fs.atomicfile import remove, safe_join, write_batch
from reconciler.fs.regularfile import Refused, read_regular
from reconciler.model.images import is_image_name, is_release_name, is_slot_name
from reconciler.site.imagetree import INDEX_HTML, INDEX_JSON, ImageTree, TreePage

log = logging.getLogger(__name__)

# (template name, context) -> the rendered text (site.writer's environment).
Render = Callable[[str, Mapping[str, object]], str]
MAX_PAGE_BYTES = 64 * 1024 * 1024  # what is read back to compare: more is replaced
# The validators of the directory levels below the images root.
_LEVELS = (is_release_name, is_image_name, is_image_name, is_slot_name)


class ImagesWriter:
    """Keeps the pages and index.json of one images directory up to date."""

    def __init__(self, root: Path, render: Render) -> None:
        self.root = root
        self._render = render
        self._last: ImageTree | None = None
        self._style: object = None
        self._source: object = None  # what the last tree was made from (`update`)
        self._pages: dict[str, TreePage] = {}  # file below root -> the page last written
        self.written = 0  # files written since start (tests, metrics)
        self.rendered = 0  # pages rendered since start

    def update(
        self, source: object, make_tree: Callable[[], ImageTree], *, style: object = None
    ) -> int:
        """`write(make_tree())`, unless `source` (what the tree is made from) and
        `style` are those of the last update: a quiet pass builds no tree."""
        if source == self._source and style == self._style:
            return 0
        written = self.write(make_tree(), style=style)
        self._source = source
        return written

    def write(self, tree: ImageTree, *, style: object = None) -> int:
        """Bring the directory up to date with `tree`; the number of files written.

        `style`: what else the rendered pages depend on (the site writer's
        static files' fingerprints, which the pages' links carry): when it
        changes, every page is rendered again."""
        if style != self._style:
            self._style = style
            self._last = None
            self._pages = {}
        if tree == self._last:
            return 0
        self.root.mkdir(parents=True, exist_ok=True)
        pending: list[tuple[str | Path, bytes]] = []
        pages: dict[str, TreePage] = {}
        for path, page in tree.pages.items():
            target = safe_join(self.root, path)
            if not target.parent.is_dir():
                continue  # the directory went since it was observed
            if target.is_dir() and not target.is_symlink():
                log.warning("%s is a directory: no page written there", target)
                continue
            pages[path] = page
            if self._pages.get(path) == page:
                continue
            text = self._render(page.template, {"page": page})
            self.rendered += 1
            if _differs(target, text.encode()):
                pending.append((target, text.encode()))
        index = self.root / INDEX_JSON
        if _differs(index, tree.index_json):
            pending.append((index, tree.index_json))
        write_batch(pending)
        self.written += len(pending)
        self._remove_stale(set(tree.pages))
        self._pages = pages
        self._last = tree
        return len(pending)

    def _remove_stale(self, listed: set[str]) -> None:
        """Remove the `index.html` of each directory of the tree that `listed`
        does not name (the directories of the levels, valid names only)."""
        for relpath in _directories(self.root):
            page = f"{relpath}/{INDEX_HTML}"
            if page not in listed and remove(safe_join(self.root, page)):
                log.info("removed %s/%s: the tree lists no image there", self.root, page)


def _directories(root: Path) -> list[str]:
    """The directories of the tree's levels below `root` (release, device, UI,
    date), as relative paths; names the model refuses and symlinks are skipped."""
    found: list[str] = []
    level = [""]
    for valid in _LEVELS:
        below = []
        for relpath in level:
            try:
                entries = list(os.scandir(root / relpath if relpath else root))
            except OSError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and valid(entry.name):
                    below.append(f"{relpath}/{entry.name}" if relpath else entry.name)
        found += below
        level = below
    return sorted(found)


def _differs(path: Path, data: bytes) -> bool:
    """Whether the regular file at `path` does not hold `data` (missing, another
    kind of file or other bytes)."""
    try:
        info, old = read_regular(str(path), max(len(data), MAX_PAGE_BYTES))
    except (Refused, OSError):
        return True
    return info.st_size != len(data) or old != data
