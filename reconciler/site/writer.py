"""Writes the status site: renders pages whose view model changed, atomically.

Rendering uses jinja2 with autoescaping for HTML, SVG and Atom and undefined
variables as errors: all HTML is in `site_templates/`, all escaping is the
templates' autoescape. A pass whose snapshot equals the previous one renders
nothing. Otherwise the view model kept from the last render (site.state) says
which pages the snapshot may have changed, in work proportional to what changed
(one changed package of hundreds of thousands: its pages, its grid page, the
summaries and feeds); of those, only pages whose model differs from the one last
written are rendered, and a file is replaced (write aside, rename, all in one
batch) only when its bytes differ from what this writer last wrote (kept in
memory as hashes, the status documents as bytes; read back from disk only for
files it has not written yet). The first render into an empty directory builds
its files aside and moves each top-level entry in with one rename. A page's
footer names the pass that last changed its content, since an unchanged page is
never written again. Pages and documents the model no longer has (packages that
disappeared, the grid pages of a branch cut again) are removed; `.manifest.json`
lists every file, for the next start to find what is gone. A render that fails
(a full disk) leaves the kept model past what it wrote: the next render writes
those pages too. The first render into an empty directory writes its files in
batches on a thread of its own while it renders (`NewTree`).

Package pages, tens of thousands of them, are rendered each with one call of the
`package_page` macro (`_package.html`) into a `Frame` of their template:
`package.html` rendered once with markers, so a page costs one macro call
instead of a template render. Grid cells, hundreds of thousands, are rendered
once per kind (state and reason) by the `cells` macro with a marker where the
link goes; each grid row then joins those pieces with its link in `grid_rows`,
once per render for the grid page and the package pages that list it as a
dependency (`Pieces`); the rows of a branch's list of grid pages are kept from
render to render. Large pages get a `.gz` twin for nginx's gzip_static; the
status and package documents do not (`NO_TWINS`). Logs of finished jobs are
copied beside the pages (a running local job's log is served from where it is
written).

The files of `site_templates/static/` are copied as they are, and pages link
each one as `static/<name>?v=<first 12 hex digits of its sha256>` (the template
function `static_url`), so nginx may let browsers cache them for a year: new
bytes get a new URL. They are staged before the pages, so a page never names a
version before its file is in place; when a fingerprint changes, every page is
rendered again.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from reconciler.collector import collector_paused
from reconciler.fs.atomicfile import (
    check_relative,
    discard_unfinished_trees,
    remove,
    safe_join,
    write_batch,
    write_bytes,
    write_fresh,
    write_new_tree,
)
from reconciler.fs.retention import Limits, prune, without_suffix
from reconciler.model.jobs import JobObservation
from reconciler.model.progress import PkgState, PkgStatus
from reconciler.site.grid import GRID_PAGE_ROWS
from reconciler.site.model import STATES, GridRow, SiteInput, cell_kind, cell_title, iso
from reconciler.site.package import PackagePage, PackagePages, PkgLink
from reconciler.site.pages import PACKAGE_ROOT, PACKAGE_TEMPLATE, Page, PartLink, SitePages
from reconciler.site.state import SiteState, merged

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "site_templates"
GZIP_MIN_BYTES = 8 * 1024  # larger pages get a .gz twin for nginx's gzip_static
# The digest of a file whose bytes are not hashed (no hash is -1): a status document
# (kept whole instead), or a package page of the first render into an empty
# directory (tens of thousands: its model says when it changes, and then its
# bytes are written again).
UNHASHED = -1
# Files without a .gz twin: the static files, and the status and package documents
# (JSON for scripts, read now and then, many megabytes at Alpine's size and most
# of them rewritten as packages change; nginx compresses them on the fly).
NO_TWINS = ("static/", "status.json", "status/")


def is_status_document(relpath: str) -> bool:
    """status.json and status/<branch>.json: every changed package changes them, and
    at Alpine's size they are megabytes (the packages not published), read by
    scripts now and then: the writer keeps their bytes to compare with."""
    return relpath == "status.json" or (relpath.startswith("status/") and relpath.count("/") == 1)


# Twice as fast as level 4 on these pages (status.json, the grids) for ~10 % more bytes.
GZIP_LEVEL = 2
LOG_GZIP_BYTES = 256 * 1024
MANIFEST = ".manifest.json"
SLOTS = ("title", "main", "updated")
FINGERPRINT_HEX = 12  # hex digits of a static file's sha256 in its URL ("?v=")
# Markers that templates render where a value goes in later (a frame's slots, the
# link of a grid cell, the path to the site root, a table's rows): text that no
# template writes of its own, and that no value a template escapes holds (names
# and paths are checked; NUL never reaches a page from an APKBUILD or a log).
TITLE_MARK = "\x00title\x00"
MAIN_MARK = Markup("\x00main\x00")
UPDATED_MARK = "\x00updated\x00"
ROOT_MARK = "\x00root\x00"
ROWS_MARK = "\x00rows\x00"
PACKAGE_MACROS = "_package.html"
PACKAGE_DIR = "package/"
GRID_MACROS = "_grid.html"


def fingerprint(data: bytes) -> str:
    """The version a static file's URL carries: the start of its sha256, in hex."""
    return hashlib.sha256(data).hexdigest()[:FINGERPRINT_HEX]


def as_markup(pieces: list[str]) -> Markup:
    """Pieces of template output (each escaped by a template, or a marker's
    replacement: a root path or a time) as one piece of HTML for a template."""
    return Markup("".join(pieces))


@dataclass(frozen=True, slots=True)
class FrameData:
    main: Markup
    branch: str
    name: str  # the marker of the title slot: a package page's heading is its name


@dataclass(frozen=True, slots=True)
class Frame:
    """A page template rendered once with a marker in each slot (title, main,
    updated), cut at the markers: (literal, the slot that follows it) pairs, the
    last with slot ""."""

    parts: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, template: jinja2.Template, name: str, root: str, branch: str) -> Frame:
        text = template.render(
            page=Page(name, root, f"{TITLE_MARK} ({branch})", None),
            d=FrameData(MAIN_MARK, branch, TITLE_MARK),
            root=root,
            updated=UPDATED_MARK,
            states=STATES,
        )
        marks = {"title": TITLE_MARK, "main": str(MAIN_MARK), "updated": UPDATED_MARK}
        parts: list[tuple[str, str]] = []
        while True:
            found = [(text.find(mark), slot) for slot, mark in marks.items() if mark in text]
            if not found:
                parts.append((text, ""))
                break
            _, slot = min(found)
            literal, _, text = text.partition(marks[slot])
            parts.append((literal, slot))
        if {slot for _, slot in parts} != {*SLOTS, ""}:
            raise ValueError(f"{name}: the frame lacks a slot of {SLOTS}")
        return cls(tuple(parts))

    def fill(self, title: str, main: list[str], stamp: str) -> str:
        """The page: `title`, the pieces of `main` and the time in their slots."""
        pieces: list[str] = []
        for literal, slot in self.parts:
            pieces.append(literal)
            if slot == "main":
                pieces += main
            elif slot:
                pieces.append(title if slot == "title" else stamp)
        return "".join(pieces)


def stamp_in(segments: list[str], text: str) -> str | None:
    """The time that makes a page (cut where its time goes into `segments`) read
    `text`, or None when there is none."""
    head = segments[0]
    after = segments[1] if len(segments) > 1 else ""
    end = text.find(after, len(head)) if after and text.startswith(head) else -1
    if end < 0:
        return None
    stamp = text[len(head) : end]
    return stamp if stamp.join(segments) == text else None


class Pieces:
    """What the pages of one pass repeat, each rendered once by its macro of
    `_grid.html` and then only joined where it is used: a grid cell per kind
    (site.model.cell_kind; with the template's link marker), a grid row per
    package (its cells joined in; ROOT_MARK for the path to the site root, so
    that the branch page and the package pages that list it as a dependency
    share it), a dependency table's frame per branch (ROWS_MARK for its rows)
    and each link to a package page from package pages. Tens of thousands of
    cells cost a dictionary lookup each instead of a render."""

    def __init__(
        self, macros: Any, parts: dict[str, dict[tuple[PartLink, tuple[int, ...], str], str]]
    ) -> None:
        self._macros = macros
        self._parts = parts  # branch -> (grid page link, columns, root) -> its row (kept)
        self._kinds: dict[object, str] = {}  # cell kind -> the cell
        self._rows: dict[int, tuple[GridRow, str]] = {}  # id -> row (kept alive), its HTML
        self._deps: dict[int, str] = {}  # id(row) -> the row on a package page
        self._tables: dict[int, tuple[tuple[str, ...], str, str]] = {}  # id(arches) -> frame

    def _cells(self, statuses: tuple[PkgStatus | None, ...]) -> Markup:
        """A row's cells (each kind rendered already), with their link markers."""
        kinds, published = self._kinds, PkgState.PUBLISHED
        return as_markup(
            [  # site.model.cell_kind, inline (tens of thousands of cells; a KeyError if not)
                kinds[
                    None
                    if s is None
                    else (s.state if s.state is published else (s.state, s.reason, s.next_try_at))
                ]
                for s in statuses
            ]
        )

    def _render_cells(self, rows: list[GridRow]) -> None:
        """Render the kinds of cell of these rows not rendered yet, in one call of
        `cells`, cut at its `cell_separator`."""
        kinds = self._kinds
        new: dict[object, tuple[str, str, str]] = {}
        for row in rows:
            for s in row.statuses:
                key = None if s is None else cell_kind(s)
                if key not in kinds and key not in new:
                    new[key] = (
                        ("", "", "")
                        if s is None
                        else (
                            s.state.value,
                            s.state.letter,
                            cell_title(s),
                        )
                    )
        if new:
            text = str(self._macros.cells(list(new.values())))
            kinds.update(zip(new, text.split(self._macros.cell_separator), strict=False))

    def render(self, rows: Iterable[GridRow]) -> None:
        """Render the rows not rendered yet, in one call of `grid_rows`: each comes
        as its escaped link, a line break (package names have none) and the row;
        each is kept with ROOT_MARK where the path to the site root goes."""
        rendered = self._rows
        missing = list({id(row): row for row in rows if id(row) not in rendered}.values())
        if not missing:
            return
        self._render_cells(missing)
        new = [(row, self._cells(row.statuses)) for row in missing]
        text = str(self._macros.grid_rows(new))
        marker = self._macros.link_marker
        for (row, _), piece in zip(new, text.split(self._macros.row_separator), strict=False):
            link, _, piece = piece.partition("\n")
            rendered[id(row)] = (row, piece.replace(marker, ROOT_MARK + link))

    def _row(self, row: GridRow) -> str:
        """The row, with ROOT_MARK where the path to the site root goes."""
        found = self._rows.get(id(row))
        if found is None:
            self.render((row,))
            found = self._rows[id(row)]
        return found[1]

    def rows(self, rows: tuple[GridRow, ...], root: str) -> Markup:
        """The rows of a grid, for a page `root` away from the site root."""
        self.render(rows)
        rendered = self._rows
        return as_markup([rendered[id(row)][1].replace(ROOT_MARK, root) for row in rows])

    def parts(
        self, branch: str, parts: tuple[PartLink, ...], columns: tuple[int, ...], root: str
    ) -> Markup:
        """The rows of a branch's list of grid pages: those that changed since the
        branch page was last rendered, in one call of `grid_index_rows`."""
        known = self._parts.get(branch, {})
        keys = [(part, columns, root) for part in parts]
        missing = [key[0] for key in keys if key not in known]
        found = {key: known[key] for key in keys if key in known}
        if missing:
            text = str(self._macros.grid_index_rows(STATES, columns, missing, root))
            for part, row in zip(missing, text.split(self._macros.part_separator), strict=False):
                found[(part, columns, root)] = row
        self._parts[branch] = found
        return as_markup([found[key] for key in keys])

    def links(self, links: list[PkgLink]) -> dict[int, str]:
        """id() -> the list item of each link to a package page (from a package
        page), each rendered once, all in one call of `pkg_links`. The pages
        being rendered hold the links: their ids stay theirs meanwhile."""
        unique = list({id(link): link for link in links}.values())
        if not unique:
            return {}
        text = str(self._macros.pkg_links(unique, PACKAGE_ROOT))
        items = text.split(self._macros.link_separator)
        return {id(link): item for link, item in zip(unique, items, strict=False)}

    def dep_table(self, rows: tuple[GridRow, ...], arches: tuple[str, ...]) -> str:
        """The table of a package's build dependencies, on its page."""
        frame = self._tables.get(id(arches))
        if frame is None:
            text = str(self._macros.grid_table(arches, ROWS_MARK))
            head, _, tail = text.partition(ROWS_MARK)
            frame = self._tables[id(arches)] = (arches, head, tail)  # arches kept alive
        parts = [frame[1]]
        deps = self._deps
        for row in rows:
            found = deps.get(id(row))
            if found is None:
                found = deps[id(row)] = self._row(row).replace(ROOT_MARK, PACKAGE_ROOT)
            parts.append(found)
        parts.append(frame[2])
        return "".join(parts)


class NewTree:
    """The first render into an empty directory, written while it is rendered: each
    batch of files (the static files, each branch's package pages, then the rest)
    becomes a new tree (atomicfile.write_new_tree) in a thread of its own, one batch
    after the other, so that the disk's work (tens of thousands of files at
    Alpine's size) runs beside the rendering of the next batch instead of after
    all of it. A batch's failure is raised by `finish`."""

    def __init__(self, root: str) -> None:
        self._root = root
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="site-tree")
        self._batches: list[Future[None]] = []

    def add(self, items: list[tuple[str, bytes]]) -> None:
        if items:
            self._batches.append(self._pool.submit(write_new_tree, self._root, items))

    def finish(self) -> None:
        """Wait for every batch; raise the first failure."""
        try:
            for batch in self._batches:
                batch.result()
        finally:
            self._batches = []

    def close(self) -> None:
        """Wait for what was started (a failed render leaves no thread behind)."""
        self._pool.shutdown(wait=True)


class SiteWriter:
    def __init__(
        self, out_dir: Path, templates: Path = TEMPLATES_DIR, grid_rows: int = GRID_PAGE_ROWS
    ) -> None:
        self.out_dir = out_dir
        self.grid_rows = grid_rows  # at most this many rows on a page of a branch's grid
        self._root = str(out_dir)
        self.templates = templates
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates)),
            autoescape=jinja2.select_autoescape(["html", "xml", "atom", "svg"]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
            optimized=False,  # folds constants: compiles slower, renders no faster here
        )
        self._versions: dict[str, str] = {}  # static file name -> its fingerprint
        self.env.globals["static_url"] = self.static_url
        self._last_input: SiteInput | None = None
        self._state = SiteState(grid_rows)  # the view model of the last render
        # The pages and documents of a render that failed (a full disk): the kept
        # model has moved past them, so the next render writes them too.
        self._unwritten: SitePages | None = None
        self._pages: dict[str, Page] = {}  # the models of the pages as last written
        self._packages: dict[str, PackagePage] = {}  # package page -> its value as last written
        self._static: set[str] = set()  # the static files staged
        self._part_rows: dict[str, dict[tuple[PartLink, tuple[int, ...], str], str]] = {}
        self._documents: dict[str, bytes] = {}  # status documents as last written
        self._pending_documents: dict[str, bytes] = {}
        # What is on disk, as far as this writer knows: relative path -> hash of its
        # bytes, and the files with a .gz twin. When the directory was empty at the
        # start, a file missing here does not exist; otherwise it is read to compare.
        self._digests: dict[str, int] = {}
        self._twins: set[str] = set()
        discard_unfinished_trees(self._root)
        self._fresh = not out_dir.is_dir() or not any(out_dir.iterdir())
        self._frames: dict[str, Frame] = {}  # branch -> the frame of its package pages
        # Every file of the site as .manifest.json lists it: compared whole with the
        # files of a render after a start (what an earlier daemon wrote that is gone),
        # then kept up to date with what each render adds and removes.
        self._manifest = self._read_manifest()
        self._compare_manifest = True
        logs = out_dir / "logs"
        self._logs = {p.name for p in logs.iterdir()} if logs.is_dir() else set()
        self._pending: list[tuple[str, bytes]] = []  # relative path, bytes
        self._tree: NewTree | None = None  # the first render into an empty directory
        self._pending_digests: dict[str, int] = {}
        self._pending_twins: dict[str, bool] = {}
        self.written = 0  # files written since start (tests, metrics)
        self.rendered = 0  # pages rendered since start

    def render_template(self, name: str, context: Mapping[str, object]) -> str:
        """A page of another tree (the images') in this site's templates and look;
        after `render`, which stages the static files its links name."""
        return self.env.get_template(name).render(context)

    @property
    def style(self) -> tuple[tuple[str, str], ...]:
        """The static files' fingerprints: pages rendered elsewhere depend on them."""
        return tuple(sorted(self._versions.items()))

    # --- pages ---------------------------------------------------------------
    def render(self, site: SiteInput, now: float) -> bool:
        """Bring the site up to date with `site`; False when nothing had changed."""
        if site == self._last_input:
            return False
        with collector_paused():
            self._render(site, now)
        return True

    def _render(self, site: SiteInput, now: float) -> None:
        self._pending = []
        self._pending_digests = {}
        self._pending_documents = {}
        self._pending_twins = {}
        stamp = iso(now)
        self._stage_static()  # first: renamed into place before any page
        self._tree = NewTree(self._root) if self._fresh and not self._digests else None
        try:
            if self._tree is not None:
                self._tree.add(self._pending)
                self._pending = []
            try:
                update = self._state.update(site)
            except BaseException:  # a bug: the kept model may be half updated
                self._start_over()
                raise
            if self._unwritten is not None:  # what a failed render did not write
                update = merged(self._unwritten, update)
            self._unwritten = update
            pieces = Pieces(self.env.get_template(GRID_MACROS).module, self._part_rows)
            # Package pages first: into an empty directory, they are written while
            # the rest renders, and the pages that link to them land after them.
            self._render_packages(update.packages, stamp, pieces)
            self._render_pages(update.pages, stamp, pieces)
            for path, data in update.documents.items():
                self._write(path, data)
            self._commit(update.removed, update.added)
            self._unwritten = None
        except BaseException:
            if self._unwritten is not None:  # render them again next time, not as written
                for path in (*self._unwritten.pages, *self._unwritten.packages.built):
                    self._pages.pop(path, None)
                    self._packages.pop(path, None)
            raise
        finally:
            if self._tree is not None:
                self._tree.close()
                self._tree = None
        for path in update.removed:
            self._pages.pop(path, None)
            self._packages.pop(path, None)
        self._last_input = site

    def _start_over(self) -> None:
        """Forget the kept view model: the next render builds every page's model again
        and compares each file with what was written."""
        self._state = SiteState(self.grid_rows)
        self._pages = {}
        self._packages = {}
        self._unwritten = None
        self._compare_manifest = True

    def _stage_static(self) -> None:
        """Stage the static files; new fingerprints make every page render again."""
        static = self.templates / "static"
        files: set[str] = set()
        versions: dict[str, str] = {}
        for source in sorted(static.iterdir()) if static.is_dir() else []:
            data = source.read_bytes()
            versions[source.name] = fingerprint(data)
            self._write(f"static/{source.name}", data)
            files.add(f"static/{source.name}")
        if files != self._static:
            self._static = files
            self._compare_manifest = True
        if versions != self._versions:
            self._versions = versions
            self._frames = {}
            self._part_rows = {}
            self._start_over()  # every page names them: render every page again

    def static_url(self, name: str) -> str:
        """`static/<name>?v=<fingerprint>`, relative to the site root (templates prefix
        `root`); a name that is not a static file is an error, not a broken link."""
        try:
            version = self._versions[name]
        except KeyError:
            raise ValueError(f"no static file {name!r} in {self.templates / 'static'}") from None
        return f"static/{name}?v={version}"

    def _render_pages(self, pages: dict[str, Page], stamp: str, pieces: Pieces) -> None:
        """The pages rendered from their own template, where their model changed."""
        templates: dict[str, jinja2.Template] = {}
        written = self._pages
        for path, page in pages.items():
            if written.get(path) == page:
                continue
            template = templates.get(page.template) or self.env.get_template(page.template)
            templates[page.template] = template
            text = template.render(
                page=page, d=page.data, root=page.root, updated=stamp, states=STATES, pieces=pieces
            )
            self.rendered += 1
            self._write(path, text.encode())
            written[path] = page

    def _render_packages(self, packages: PackagePages, stamp: str, pieces: Pieces) -> None:
        """The package pages whose value changed, each with one call of the
        `package_page` macro (the package's name, a line break, its main block) put into
        the frame of its branch, the tables of its build dependencies (joined
        from the grid's rows) and the links of what needs it where the macro
        put its `slot_marker`."""
        module: Any = self.env.get_template(PACKAGE_MACROS).module
        render, marker = module.package_page, module.slot_marker
        dep_table = pieces.dep_table
        built = packages.built.values()
        links = pieces.links([link for page in built for link in page.needed_by])
        pieces.render([row for page in built for s in page.sections for row in s.deps])
        frames = self._frames
        values = self._packages
        branch = ""
        for path, package in packages.built.items():
            if package.branch != branch:  # the pages come by branch
                branch = package.branch
                if self._tree is not None and self._pending:
                    self._tree.add(self._pending)
                    self._pending = []
            if values.get(path) == package:
                continue
            values[path] = package
            # A package's name (the title slot) has no line break.
            title, _, main = str.partition(render(package), "\n")
            fills = [dep_table(s.deps, package.arches) for s in package.sections if s.deps]
            if package.needed_by:
                fills.append("".join([links[id(link)] for link in package.needed_by]))
            parts = main.split(marker)
            if fills:
                parts = [piece for pair in zip(parts, [*fills, ""], strict=True) for piece in pair]
            frame = frames.get(package.branch) or self._package_frame(package.branch)
            if not self._fresh and path not in self._digests:
                segments = frame.fill(title, parts, UPDATED_MARK).split(UPDATED_MARK)
                if self._kept(path, segments):
                    continue  # as an earlier daemon wrote it: keep it and the time it names
            self.rendered += 1
            self._write(path, frame.fill(title, parts, stamp).encode())

    def _commit(self, removed: frozenset[str], added: frozenset[str]) -> None:
        """Write what was staged in one batch (into an empty directory: as one new
        tree), then remove the files of the site that are gone (pages of packages
        that disappeared, grid pages of a cut that changed) and list the site's
        files in the manifest when they changed."""
        try:
            if self._tree is not None:  # the first render into an empty dir
                self._tree.add(self._pending)
                self._tree.finish()
            else:  # every relative path was checked when it was staged
                write_batch([(f"{self._root}/{rel}", data) for rel, data in self._pending])
        except BaseException:
            self._fresh = False  # some files may have landed: look before the next write
            raise
        finally:
            self._pending = []
        self._digests.update(self._pending_digests)
        self._documents.update(self._pending_documents)
        for path, twin in self._pending_twins.items():
            if twin:
                self._twins.add(path)
            else:
                self._twins.discard(path)
        manifest = self._manifest
        if self._compare_manifest:  # after a start (or new static files): compare whole
            files = self._static | self._state.paths
            stale, changed = manifest - files, files != manifest
            manifest = self._manifest = files
            self._compare_manifest = False
        else:
            stale, changed = set(removed), bool(removed or added)
            manifest -= removed
            manifest |= added
        for gone in sorted(stale):
            target = safe_join(self.out_dir, gone)
            remove(target)
            remove(target.with_name(target.name + ".gz"))
            self._digests.pop(gone, None)
            self._documents.pop(gone, None)
            self._twins.discard(gone)
        if changed:
            write_bytes(self.out_dir / MANIFEST, json.dumps(sorted(manifest)).encode())

    def _kept(self, relpath: str, segments: list[str]) -> bool:
        """Whether the file on disk is this page, rendered at some earlier pass (a
        restart: what changed it then is still what the page says); `segments` is
        the page cut where its time goes."""
        try:
            data = safe_join(self.out_dir, relpath).read_bytes()
            stamp = stamp_in(segments, data.decode())
        except (OSError, UnicodeDecodeError):
            return False
        if stamp is None:
            return False
        self._pending_digests[relpath] = hash(data)
        self._pending_twins[relpath] = True  # it may have one: look when it shrinks
        return True

    def _package_frame(self, branch: str) -> Frame:
        frame = self._frames.get(branch)
        if frame is None:
            template = self.env.get_template(PACKAGE_TEMPLATE)
            frame = self._frames[branch] = Frame.of(
                template, PACKAGE_TEMPLATE, PACKAGE_ROOT, branch
            )
        return frame

    def write_metrics(self, text: str) -> None:
        """The heartbeat file: written every pass, not synced (see write_fresh)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_fresh(self.out_dir / "metrics.prom", text.encode())

    def copy_logs(self, jobs: list[JobObservation]) -> None:
        """Make the logs of finished jobs readable from the site (once each)."""
        for job in jobs:
            name = f"{job.key.job_id}.log"
            if not job.log_path or job.status.is_live or name in self._logs:
                continue
            source = Path(job.log_path)
            try:
                data = source.read_bytes()
            except OSError:
                continue
            target = safe_join(self.out_dir, "logs", name)
            write_bytes(target, data)
            if len(data) > LOG_GZIP_BYTES:
                write_bytes(target.with_name(name + ".gz"), gzip.compress(data, mtime=0))
            self._logs.add(name)

    def prune_logs(self, now: float, max_age: float, max_bytes: int, shown: set[str]) -> None:
        """Delete copied logs beyond the age and size limits, oldest first; the logs
        of jobs in `shown` (job ids the job service still lists) stay."""
        keep = {f"{job_id}.log" for job_id in shown}
        limits = Limits(max_age, max_bytes=max_bytes)
        logs = self.out_dir / "logs"
        for name in prune(logs, now, limits, keep=keep, group=without_suffix(".gz")):
            self._logs.discard(name)

    # --- files ----------------------------------------------------------------
    def _write(self, relpath: str, data: bytes) -> None:
        """Stage `data` for `relpath` (and its .gz twin) unless the file holds it already.
        The status documents, megabytes at Alpine's size, are kept to compare with
        (faster than hashing them again)."""
        document = is_status_document(relpath)
        if document:
            if self._documents.get(relpath) == data:
                return
            digest = UNHASHED
        elif self._tree is not None and relpath.startswith(PACKAGE_DIR):
            digest = UNHASHED
        else:
            digest = hash(data)
        known = self._digests.get(relpath)
        if known == digest and digest != UNHASHED:
            return
        check_relative(relpath, self._root)
        unknown = known is None and not self._fresh  # what is on disk: look
        if unknown:
            try:
                with open(f"{self._root}/{relpath}", "rb") as handle:
                    same = handle.read() == data
            except FileNotFoundError:
                same = False
            if same:
                self._pending_digests[relpath] = digest
                if document:
                    self._pending_documents[relpath] = data
                self._pending_twins[relpath] = True  # it may have one: look when it shrinks
                return
        self._pending.append((relpath, data))
        self._pending_digests[relpath] = digest
        if document:
            self._pending_documents[relpath] = data
        self.written += 1
        big = len(data) >= GZIP_MIN_BYTES and not relpath.startswith(NO_TWINS)
        if big:
            twin = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
            self._pending.append((relpath + ".gz", twin))
        elif unknown or relpath in self._twins:
            remove(Path(f"{self._root}/{relpath}.gz"))
        self._pending_twins[relpath] = big

    def _read_manifest(self) -> set[str]:
        try:
            names = json.loads((self.out_dir / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return set()
        return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()
