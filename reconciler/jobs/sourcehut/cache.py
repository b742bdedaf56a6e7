"""The sourcehut job service's own directory: the jobs it knows and what it
downloaded; and the cleanup of the files image jobs uploaded to the receiver.

`<cache_dir>/jobs.json` remembers our jobs (id, key, status, times, settled
outcome) and the newest job id seen; losing it costs a longer listing, never a
second submit. A settled job's result is downloaded into `<cache_dir>/<job id>/`
(prepared as `.new-<job id>` and renamed in) and read from there by the daemon's
next pass: a build's apks, a sign job's index, an image job's log (its files
are in the uploads directory). Downloads are pruned by `prune_downloads`, at
every poll and at start: a download stays only while its job is the newest
settled job of its intent family (same kind, repository and package: a newer
version, try or index supersedes it; for an image, the same image) and for
`keep_seconds` after it was downloaded, by which time the daemon has long taken
the result in. Everything else in the directory (abandoned downloads, cut-short
`.new-*` directories, orphans of jobs no longer known) is removed. A pruned
job's outcome keeps its status but loses its `artifacts_dir` and `log_path`, so
a result that was never taken in counts as a failed try.

`prune_uploads` does the same for `<paths.data>/uploads/<job id>/`, which the
receiver writes (`hooks.upload`): a job's directory stays while the job may
still be uploading (not settled) and, once it succeeded, while its outcome
points at it and its image is not published; it goes once the image is
published, the job failed or its download was pruned, and, for a job this
service does not know, once nothing changed in it for a grace period.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reconciler.config.sourcehut import upload_files_dir
from reconciler.fs.atomicfile import write_text
from reconciler.model.jobs import JobKey, JobKind, JobObservation, JobStatus

log = logging.getLogger(__name__)

JOBS_FILE = "jobs.json"
STAGING_PREFIX = ".new-"
TRASH_PREFIX = ".trash-"  # an upload directory being removed


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
            if row[5] is not None:  # [status, ended_at, reason, artifacts_dir, (log_path)]
                state, ended, reason, artifacts, *log_path = row[5]
                log_file = log_path[0] if log_path else None
                outcome = JobObservation(
                    key, JobStatus(state), row[3], ended, reason, log_file, url(job_id), artifacts
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
    if o is None:
        return None
    return [str(o.status), o.ended_at, o.reason, o.artifacts_dir, o.log_path]


def download_dirs(cache_dir: Path, key: JobKey) -> tuple[Path, Path]:
    """(staging, target) directories of a job's download."""
    return cache_dir / f"{STAGING_PREFIX}{key.job_id}", cache_dir / key.job_id


def prune_downloads(
    cache_dir: Path, jobs: dict[int, TrackedJob], now: float, keep_seconds: float
) -> dict[int, TrackedJob]:
    """Remove downloads no longer wanted; return the jobs whose outcome lost its download."""
    newest: dict[tuple[str, ...], TrackedJob] = {}
    for job in jobs.values():
        family = _family(job.key)
        if job.outcome is not None and (family not in newest or newest[family].id < job.id):
            newest[family] = job
    keep: set[str] = set()
    changed: dict[int, TrackedJob] = {}
    for job in jobs.values():
        outcome = job.outcome
        if outcome is None or (outcome.artifacts_dir is None and outcome.log_path is None):
            continue
        target = download_dirs(cache_dir, job.key)[1]
        if newest.get(_family(job.key)) is job and now - job.downloaded_at < keep_seconds:
            keep.add(target.name)
        else:
            lost = replace(outcome, artifacts_dir=None, log_path=None)
            changed[job.id] = replace(job, outcome=lost)
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


def _family(key: JobKey) -> tuple[str, ...]:
    """Jobs whose newest result supersedes the others': same kind, repository and
    package (a newer version, try or index), or for an image the same image."""
    intent = key.intent
    family = (str(intent.kind), str(intent.repo), intent.pkgname)
    return (*family, intent.version) if intent.kind is JobKind.IMAGE else family


def prune_uploads(
    root: Path,
    jobs: dict[int, TrackedJob],
    now: float,
    grace_seconds: float,
    published: Callable[[JobKey], bool],
) -> dict[int, TrackedJob]:
    """Remove upload directories no longer wanted (see the module docstring); return
    the jobs whose outcome lost its files because their image was published."""
    by_id = {job.key.job_id: job for job in jobs.values()}
    changed: dict[int, TrackedJob] = {}
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return {}
    for entry in entries:
        name = entry.name
        if name.startswith(TRASH_PREFIX):
            shutil.rmtree(root / name, ignore_errors=True)
            continue
        if name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue  # the receiver's lock
        job = by_id.get(name)
        if job is None:
            if now - _last_change(root / name) < grace_seconds:
                continue
            why = "no job of this service uploads there"
        elif job.outcome is None:
            continue  # uploading, or its result not collected yet
        elif job.outcome.artifacts_dir != str(upload_files_dir(root, name)):
            why = f"its job is {job.outcome.status} without a result to publish"
        elif published(job.key):
            why = "its image is published"
            changed[job.id] = replace(job, outcome=replace(job.outcome, artifacts_dir=None))
        else:
            continue
        _remove_upload(root, name, why)
    return changed


def _remove_upload(root: Path, name: str, why: str) -> None:
    """Take a job's upload directory away at once (one rename), then delete it."""
    trash = root / f"{TRASH_PREFIX}{name}"
    try:
        os.rename(root / name, trash)
    except OSError as exc:
        log.warning("cannot remove the uploads %s: %s", root / name, exc)
        return
    log.info("removed the uploads of %s: %s", name, why)
    shutil.rmtree(trash, ignore_errors=True)


def _last_change(directory: Path) -> float:
    """The newest mtime of a job's upload directory, its subdirectories and their files."""
    newest = 0.0
    for path, _dirs, names in os.walk(directory):
        for name in (".", *names):
            try:
                newest = max(newest, os.lstat(os.path.join(path, name)).st_mtime)
            except OSError:
                continue
    return newest
