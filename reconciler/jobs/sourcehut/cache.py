"""The sourcehut job service's own directory: the jobs it knows and what it downloaded.

`<cache_dir>/jobs.json` remembers our jobs (id, key, status, times, settled
outcome) and the newest job id seen; losing it costs a longer listing, never a
second submit. A settled job's result is downloaded into `<cache_dir>/<job id>/`
(prepared as `.new-<job id>` and renamed in) and read from there by the daemon's
next pass. Downloads are pruned by `prune_downloads`, called after each collect
and at start: a download stays only while its job is the newest settled job of
its intent family (same kind, repository and package: a newer version, try or
index supersedes it) and for `keep_seconds` after it was downloaded, by which time
the daemon has long taken the result in. Everything else in the directory
(abandoned downloads, cut-short `.new-*` directories, orphans of jobs no longer
known) is removed. A pruned job's outcome keeps its status but loses its
`artifacts_dir`, so a result that was never taken in counts as a failed try.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reconciler.fs.atomicfile import write_text
from reconciler.model.jobs import JobKey, JobObservation, JobStatus

log = logging.getLogger(__name__)

JOBS_FILE = "jobs.json"
STAGING_PREFIX = ".new-"


@dataclass(frozen=True, slots=True)
class TrackedJob:
    """One of our jobs as builds.sr.ht last showed it, and its outcome once settled."""

    id: int
    key: JobKey
    status: str
    created: float
    updated: float
    artifacts: tuple[tuple[str, int, str | None], ...] = ()
    outcome: JobObservation | None = None
    downloaded_at: float = 0.0  # when its result was downloaded (this host's clock)


def load_jobs(cache_dir: Path, url: Callable[[int], str]) -> tuple[dict[int, TrackedJob], int]:
    """The jobs and the newest job id in `jobs.json`; nothing when it is missing or bad."""
    path = cache_dir / JOBS_FILE
    jobs: dict[int, TrackedJob] = {}
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        for row in saved["jobs"]:
            job_id, key, status = int(row[0]), JobKey.from_job_id(row[1]), str(row[2])
            outcome = None
            if row[5] is not None:  # [status, ended_at, reason, artifacts_dir]
                state, ended, reason, artifacts = row[5]
                outcome = JobObservation(
                    key, JobStatus(state), row[3], ended, reason, None, url(job_id), artifacts
                )
            downloaded = float(row[6]) if len(row) > 6 else 0.0
            jobs[job_id] = TrackedJob(
                job_id, key, status, row[3], row[4], outcome=outcome, downloaded_at=downloaded
            )
        return jobs, int(saved["newest_id"])
    except FileNotFoundError:
        return {}, 0
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return {}, 0


def save_jobs(cache_dir: Path, jobs: dict[int, TrackedJob], newest_id: int) -> None:
    rows = [
        [
            *(j.id, j.key.job_id, j.status, j.created, j.updated),
            *(_outcome_row(j.outcome), j.downloaded_at),
        ]
        for j in sorted(jobs.values(), key=lambda j: j.id)
    ]
    text = json.dumps({"newest_id": newest_id, "jobs": rows})
    write_text(cache_dir / JOBS_FILE, text + "\n")


def _outcome_row(o: JobObservation | None) -> list[Any] | None:
    return None if o is None else [str(o.status), o.ended_at, o.reason, o.artifacts_dir]


def download_dirs(cache_dir: Path, key: JobKey) -> tuple[Path, Path]:
    """(staging, target) directories of a job's download."""
    return cache_dir / f"{STAGING_PREFIX}{key.job_id}", cache_dir / key.job_id


def prune_downloads(
    cache_dir: Path, jobs: dict[int, TrackedJob], now: float, keep_seconds: float
) -> dict[int, TrackedJob]:
    """Remove downloads no longer wanted; return the jobs whose outcome lost its download."""
    newest: dict[tuple[str, str, str], TrackedJob] = {}
    for job in jobs.values():
        family = (str(job.key.intent.kind), str(job.key.intent.repo), job.key.intent.pkgname)
        if job.outcome is not None and (family not in newest or newest[family].id < job.id):
            newest[family] = job
    keep: set[str] = set()
    changed: dict[int, TrackedJob] = {}
    for job in jobs.values():
        outcome = job.outcome
        if outcome is None or outcome.artifacts_dir is None:
            continue
        family = (str(job.key.intent.kind), str(job.key.intent.repo), job.key.intent.pkgname)
        target = download_dirs(cache_dir, job.key)[1]
        if newest.get(family) is job and now - job.downloaded_at < keep_seconds:
            keep.add(target.name)
        else:
            changed[job.id] = replace(job, outcome=replace(outcome, artifacts_dir=None))
    try:
        entries = list(cache_dir.iterdir())
    except OSError as exc:
        log.warning("cannot list %s: %s", cache_dir, exc)
        return {}
    for entry in entries:
        if entry.name in keep or not entry.is_dir() or entry.is_symlink():
            continue
        log.info("removing the download %s", entry)
        shutil.rmtree(entry, ignore_errors=True)
    return changed
