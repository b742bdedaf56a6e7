"""The status site: a pure view model of one pass, rendered to static files.

`build_model` turns the plan's package and repository states (plus history) into
plain values; `SiteWriter` renders them with jinja2 (autoescaping on, undefined
variables are errors) and writes only files whose bytes changed, atomically.
Logs of failed jobs are copied beside the pages so the site links to them.
"""

from __future__ import annotations

import gzip
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .atomicfile import safe_join, write_bytes
from .model import Event, JobObservation, PkgState, PkgStatus, RepoStatus

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "site_templates"
LOG_INLINE_LIMIT = 256 * 1024


@dataclass(frozen=True, slots=True)
class RepoRow:
    name: str
    phase: str
    reason: str
    counts: tuple[tuple[str, int], ...]
    published_commit: str
    published_at: str


@dataclass(frozen=True, slots=True)
class ProblemRow:
    repo: str
    pkgname: str
    version: str
    state: str
    letter: str
    reason: str
    log_href: str


@dataclass(frozen=True, slots=True)
class SiteModel:
    title: str
    generated_at: str
    repos: tuple[RepoRow, ...]
    packages: tuple[ProblemRow, ...]  # every package that is not published
    events: tuple[tuple[str, str, str], ...]  # (time, text, log href)
    states: tuple[str, ...]


def log_href(job_id: str | None) -> str:
    return f"logs/{job_id}.log" if job_id else ""


def build_model(
    title: str,
    packages: tuple[PkgStatus, ...],
    repos: tuple[RepoStatus, ...],
    events: list[Event],
    now: float,
) -> SiteModel:
    counts: dict[str, Counter[str]] = {}
    for status in packages:
        counts.setdefault(str(status.repo), Counter())[status.state] += 1
    rows = tuple(
        RepoRow(
            str(r.repo),
            str(r.phase),
            r.reason,
            tuple((s.value, counts.get(str(r.repo), Counter())[s]) for s in PkgState),
            r.published_commit,
            r.published_at,
        )
        for r in repos
    )
    problems = tuple(
        ProblemRow(
            str(s.repo),
            s.pkgname,
            s.version,
            str(s.state),
            s.state.letter,
            s.reason,
            log_href(s.job_id),
        )
        for s in packages
        if s.state is not PkgState.PUBLISHED
    )
    history = tuple(
        (
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.time)),
            f"{e.repo} {e.pkgname} {e.version}: {e.kind} ({e.message})".replace("  ", " "),
            log_href(e.job_id),
        )
        for e in events
    )
    return SiteModel(title, _iso(now), rows, problems, history, tuple(s.value for s in PkgState))


class SiteWriter:
    def __init__(self, out_dir: Path, templates: Path = TEMPLATES_DIR) -> None:
        self.out_dir = out_dir
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates)),
            autoescape=jinja2.select_autoescape(["html", "xml", "atom"]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
        )
        self.templates = templates
        self.written = 0  # files written in total, for tests and metrics

    def render(self, model: SiteModel) -> None:
        self._write("index.html", self.env.get_template("index.html").render(site=model).encode())
        static = self.templates / "static"
        if static.is_dir():
            for source in sorted(static.iterdir()):
                self._write(f"static/{source.name}", source.read_bytes())

    def copy_logs(self, jobs: list[JobObservation]) -> None:
        """Make the logs of finished jobs readable from the site (once each)."""
        for job in jobs:
            if not job.log_path or job.status.is_live:
                continue
            target = safe_join(self.out_dir, "logs", f"{job.key.job_id}.log")
            if target.exists():
                continue
            source = Path(job.log_path)
            if not source.is_file():
                continue
            data = source.read_bytes()
            write_bytes(target, data)
            if len(data) > LOG_INLINE_LIMIT:
                write_bytes(target.with_name(target.name + ".gz"), gzip.compress(data, mtime=0))

    def _write(self, relpath: str, data: bytes) -> None:
        target = safe_join(self.out_dir, relpath)
        try:
            if target.read_bytes() == data:
                return
        except FileNotFoundError:
            pass
        write_bytes(target, data)
        self.written += 1

    def clear(self) -> None:
        shutil.rmtree(self.out_dir, ignore_errors=True)


def _iso(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
