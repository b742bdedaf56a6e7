"""Writes the status site: renders pages whose view model changed, atomically.

Rendering uses jinja2 with autoescaping for HTML, SVG and Atom and undefined
variables as errors. A pass whose snapshot equals the previous one renders
nothing; otherwise only pages whose model changed are rendered, and a file is
replaced (write aside, rename, all in one batch) only when its bytes differ from
what this writer last wrote (kept in memory as hashes; read back from disk only
for files it has not written yet). The first render into an empty directory
builds its files aside and moves each top-level entry in with one rename.
Package pages, thousands of them, are built only where their inputs changed
since the last render, as a ready body (sitepackage) put into a `Frame` of their
template: the template rendered once with markers, so a page costs a join
instead of a template render. Pages of packages that disappeared are removed.
Logs of finished jobs are copied beside the pages.

The files of `site_templates/static/` are copied as they are, and pages link
each one as `static/<name>?v=<first 12 hex digits of its sha256>` (the template
function `static_url`), so nginx may let browsers cache them for a year: new
bytes get a new URL. They are staged before the pages, so a page never names a
version before its file is in place; when a fingerprint changes, every page is
rendered again.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
from markupsafe import Markup

from reconciler.fs.atomicfile import (
    check_relative,
    discard_unfinished_trees,
    remove,
    safe_join,
    write_batch,
    write_bytes,
    write_new_tree,
)
from reconciler.fs.retention import Limits, prune, without_suffix
from reconciler.model.jobs import JobObservation
from reconciler.site.model import STATES, SiteInput, esc, iso
from reconciler.site.package import PackageInputs, PackagePages
from reconciler.site.pages import PACKAGE_ROOT, PACKAGE_TEMPLATE, Page, build_pages

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "site_templates"
GZIP_MIN_BYTES = 8 * 1024  # larger pages get a .gz twin for nginx's gzip_static
# Twice as fast as level 4 on these pages (status.json, the grids) for ~10 % more bytes.
GZIP_LEVEL = 2
LOG_GZIP_BYTES = 256 * 1024
MANIFEST = ".manifest.json"
SLOTS = ("title", "main", "updated")
SLOT_MARK = re.compile("\x00(" + "|".join(SLOTS) + ")\x00")
FINGERPRINT_HEX = 12  # hex digits of a static file's sha256 in its URL ("?v=")


def fingerprint(data: bytes) -> str:
    """The version a static file's URL carries: the start of its sha256, in hex."""
    return hashlib.sha256(data).hexdigest()[:FINGERPRINT_HEX]


@dataclass(frozen=True, slots=True)
class FrameData:
    main: Markup


@dataclass(frozen=True, slots=True)
class Frame:
    """A page template rendered once with a marker in each slot (title, main,
    updated), split at the markers: literal, slot name, literal, ..., literal."""

    parts: tuple[str, ...]

    @classmethod
    def of(cls, template: jinja2.Template, name: str, root: str) -> Frame:
        marks = {slot: f"\x00{slot}\x00" for slot in SLOTS}
        text = template.render(
            page=Page(name, root, marks["title"], None),
            d=FrameData(Markup(marks["main"])),
            root=root,
            updated=marks["updated"],
            states=STATES,
        )
        parts = tuple(SLOT_MARK.split(text))
        if set(parts[1::2]) != set(SLOTS):
            raise ValueError(f"{name}: the frame lacks a slot of {SLOTS}")
        return cls(parts)

    def fill(self, values: Mapping[str, str]) -> str:
        """The page: every slot replaced by its (already escaped) value."""
        return "".join([values[p] if i % 2 else p for i, p in enumerate(self.parts)])

    def stamp_in(self, text: str, values: Mapping[str, str]) -> str | None:
        """The `updated` value that makes the frame filled with `values` read `text`,
        or None when there is none."""
        first = self.parts.index("updated", 1)
        head = "".join([values[p] if i % 2 else p for i, p in enumerate(self.parts[:first])])
        after = self.parts[first + 1]
        end = text.find(after, len(head)) if after and text.startswith(head) else -1
        if end < 0:
            return None
        stamp = text[len(head) : end]
        return stamp if self.fill({**values, "updated": stamp}) == text else None


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Rendering makes hundreds of thousands of short-lived objects and no cycles:
    the cyclic collector would only walk the daemon's whole heap again and again
    meanwhile. Reference counting still frees everything at once."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class SiteWriter:
    def __init__(self, out_dir: Path, templates: Path = TEMPLATES_DIR) -> None:
        self.out_dir = out_dir
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
        )
        self._versions: dict[str, str] = {}  # static file name -> its fingerprint
        self.env.globals["static_url"] = self.static_url
        self._last_input: SiteInput | None = None
        self._pages: dict[str, Page] = {}  # the models of the pages as last written
        self._bodies: dict[str, int] = {}  # package page -> hash of its title and body
        self._package_inputs: PackageInputs | None = None  # of the pages as last written
        # What is on disk, as far as this writer knows: relative path -> hash of its
        # bytes, and the files with a .gz twin. When the directory was empty at the
        # start, a file missing here does not exist; otherwise it is read to compare.
        self._digests: dict[str, int] = {}
        self._twins: set[str] = set()
        discard_unfinished_trees(self._root)
        self._fresh = not out_dir.is_dir() or not any(out_dir.iterdir())
        self._frame: Frame | None = None
        self._manifest = self._read_manifest()
        logs = out_dir / "logs"
        self._logs = {p.name for p in logs.iterdir()} if logs.is_dir() else set()
        self._pending: list[tuple[str, bytes]] = []  # relative path, bytes
        self._pending_digests: dict[str, int] = {}
        self._pending_twins: dict[str, bool] = {}
        self.written = 0  # files written since start (tests, metrics)
        self.rendered = 0  # pages rendered since start

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
        self._pending_twins = {}
        stamp = iso(now)
        files = self._stage_static()  # first: renamed into place before any page
        built = build_pages(site, self._package_inputs)
        self._render_pages(built.pages, stamp)
        bodies = self._render_packages(built.packages, stamp)
        files |= set(built.pages) | built.packages.paths
        for path, data in built.documents.items():
            self._write(path, data)
            files.add(path)
        self._commit(files)
        self._pages = built.pages
        self._bodies = bodies
        self._package_inputs = built.packages.inputs
        self._last_input = site

    def _stage_static(self) -> set[str]:
        """Stage the static files; new fingerprints make every page render again."""
        static = self.templates / "static"
        files: set[str] = set()
        versions: dict[str, str] = {}
        for source in sorted(static.iterdir()) if static.is_dir() else []:
            data = source.read_bytes()
            versions[source.name] = fingerprint(data)
            self._write(f"static/{source.name}", data)
            files.add(f"static/{source.name}")
        if versions != self._versions:
            self._versions = versions
            self._pages = {}
            self._bodies = {}
            self._package_inputs = None  # build every package page again
            self._frame = None
        return files

    def static_url(self, name: str) -> str:
        """`static/<name>?v=<fingerprint>`, relative to the site root (templates prefix
        `root`); a name that is not a static file is an error, not a broken link."""
        try:
            version = self._versions[name]
        except KeyError:
            raise ValueError(f"no static file {name!r} in {self.templates / 'static'}") from None
        return f"static/{name}?v={version}"

    def _render_pages(self, pages: dict[str, Page], stamp: str) -> None:
        """The pages rendered from their own template, where their model changed."""
        templates: dict[str, jinja2.Template] = {}
        for path, page in pages.items():
            if self._pages.get(path) == page:
                continue
            template = templates.get(page.template) or self.env.get_template(page.template)
            templates[page.template] = template
            text = template.render(
                page=page, d=page.data, root=page.root, updated=stamp, states=STATES
            )
            self.rendered += 1
            self._write(path, text.encode())

    def _render_packages(self, packages: PackagePages, stamp: str) -> dict[str, int]:
        """The package pages whose body changed, in their frame; every page's body hash."""
        frame = self._package_frame()
        # The pages not built are known to be as the last render left them.
        bodies = {path: self._bodies[path] for path in packages.paths - packages.built.keys()}
        for path, package in packages.built.items():
            body = bodies[path] = hash((package.title, package.main))
            if self._bodies.get(path) == body:
                continue
            values = {"title": esc(package.title), "main": package.main, "updated": stamp}
            if not self._fresh and path not in self._digests and self._kept(path, frame, values):
                continue  # as an earlier daemon wrote it: keep it and the time it names
            self.rendered += 1
            self._write(path, frame.fill(values).encode())
        return bodies

    def _commit(self, files: set[str]) -> None:
        """Write what was staged in one batch (into an empty directory: as one new
        tree), then remove the files of the site that are gone (pages of packages
        that disappeared)."""
        try:
            if self._fresh and not self._digests:  # the first render into an empty dir
                write_new_tree(self._root, self._pending)
            else:  # every relative path was checked when it was staged
                write_batch([(f"{self._root}/{rel}", data) for rel, data in self._pending])
        except BaseException:
            self._fresh = False  # some files may have landed: look before the next write
            raise
        finally:
            self._pending = []
        self._digests.update(self._pending_digests)
        for path, twin in self._pending_twins.items():
            if twin:
                self._twins.add(path)
            else:
                self._twins.discard(path)
        for stale in sorted(self._manifest - files):
            target = safe_join(self.out_dir, stale)
            remove(target)
            remove(target.with_name(target.name + ".gz"))
            self._digests.pop(stale, None)
            self._twins.discard(stale)
        if files != self._manifest:
            self._manifest = files
            write_bytes(self.out_dir / MANIFEST, json.dumps(sorted(files)).encode())

    def _kept(self, relpath: str, frame: Frame, values: Mapping[str, str]) -> bool:
        """Whether the file on disk is this page as filled by `frame` at some earlier
        pass (a restart: what changed it then is still what the page says)."""
        try:
            data = safe_join(self.out_dir, relpath).read_bytes()
            stamp = frame.stamp_in(data.decode(), values)
        except (OSError, UnicodeDecodeError):
            return False
        if stamp is None:
            return False
        self._pending_digests[relpath] = hash(data)
        self._pending_twins[relpath] = True  # it may have one: look when it shrinks
        return True

    def _package_frame(self) -> Frame:
        if self._frame is None:
            template = self.env.get_template(PACKAGE_TEMPLATE)
            self._frame = Frame.of(template, PACKAGE_TEMPLATE, PACKAGE_ROOT)
        return self._frame

    def write_metrics(self, text: str) -> None:
        """The heartbeat file: written every pass."""
        write_bytes(self.out_dir / "metrics.prom", text.encode())

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
        """Stage `data` for `relpath` (and its .gz twin) unless the file holds it already."""
        digest = hash(data)
        known = self._digests.get(relpath)
        if known == digest:
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
                self._pending_twins[relpath] = True  # it may have one: look when it shrinks
                return
        self._pending.append((relpath, data))
        self._pending_digests[relpath] = digest
        self.written += 1
        big = len(data) >= GZIP_MIN_BYTES and not relpath.startswith("static/")
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
