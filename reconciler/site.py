"""Writes the status site: renders pages whose view model changed, atomically.

Rendering uses jinja2 with autoescaping for HTML, SVG and Atom and undefined
variables as errors. A pass whose snapshot equals the previous one renders
nothing; otherwise only pages whose model changed are rendered, and a file is
replaced (write aside, rename) only when its bytes differ. Pages of packages that
disappeared are removed. Logs of finished jobs are copied beside the pages.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import jinja2

from .atomicfile import remove, safe_join, write_batch, write_bytes
from .model import JobObservation
from .sitejson import status_documents
from .sitemodel import NO_CELL_HTML, STATES, SiteInput, iso
from .sitepages import Page, build_pages

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "site_templates"
GZIP_MIN_BYTES = 8 * 1024  # larger pages get a .gz twin for nginx's gzip_static
LOG_GZIP_BYTES = 256 * 1024
MANIFEST = ".manifest.json"


class SiteWriter:
    def __init__(self, out_dir: Path, templates: Path = TEMPLATES_DIR) -> None:
        self.out_dir = out_dir
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
        self._last_input: SiteInput | None = None
        self._pages: dict[str, Page] = {}
        self._updated: dict[str, str] = {}
        self._manifest = self._read_manifest()
        logs = out_dir / "logs"
        self._logs = {p.name for p in logs.iterdir()} if logs.is_dir() else set()
        self._pending: list[tuple[Path, bytes]] = []
        self.written = 0  # files written since start (tests, metrics)
        self.rendered = 0  # templates rendered since start

    # --- pages ---------------------------------------------------------------
    def render(self, site: SiteInput, now: float) -> bool:
        """Bring the site up to date with `site`; False when nothing had changed."""
        if site == self._last_input:
            return False
        self._pending = []
        pages = build_pages(site)
        templates: dict[str, jinja2.Template] = {}
        for path, page in pages.items():
            if self._pages.get(path) == page:
                continue
            self._updated[path] = iso(now)
            template = templates.get(page.template) or self.env.get_template(page.template)
            templates[page.template] = template
            text = template.render(
                page=page,
                d=page.data,
                root=page.root,
                updated=self._updated[path],
                states=STATES,
                none_cell=NO_CELL_HTML,
            )
            self.rendered += 1
            self._write(path, text.encode())
        files = set(pages)
        for path, data in status_documents(site).items():
            self._write(path, data)
            files.add(path)
        static = self.templates / "static"
        for source in sorted(static.iterdir()) if static.is_dir() else []:
            self._write(f"static/{source.name}", source.read_bytes())
            files.add(f"static/{source.name}")
        write_batch(self._pending)
        self._pending = []
        for stale in sorted(self._manifest - files):
            target = safe_join(self.out_dir, stale)
            remove(target)
            remove(target.with_name(target.name + ".gz"))
        if files != self._manifest:
            self._manifest = files
            write_bytes(self.out_dir / MANIFEST, json.dumps(sorted(files)).encode())
        self._pages = pages
        self._last_input = site
        return True

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

    # --- files ----------------------------------------------------------------
    def _write(self, relpath: str, data: bytes) -> None:
        target = safe_join(self.out_dir, relpath)
        try:
            if target.read_bytes() == data:
                return
        except FileNotFoundError:
            pass
        self._pending.append((target, data))
        self.written += 1
        twin = target.with_name(target.name + ".gz")
        if len(data) >= GZIP_MIN_BYTES and not relpath.startswith("static/"):
            self._pending.append((twin, gzip.compress(data, compresslevel=4, mtime=0)))
        else:
            remove(twin)

    def _read_manifest(self) -> set[str]:
        try:
            names = json.loads((self.out_dir / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return set()
        return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()
