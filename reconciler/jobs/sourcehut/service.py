"""The builds.sr.ht job service: jobs as build manifests, found again by their tags.

`list_jobs` pages `jobs(cursor)` newest-first only down to the newest job id it
already saw, then polls every live job in one batched query (GraphQL aliases).
A job is ours when its tags carry our marker and a JobKey. `submit` sends the
mutation once; when the answer is lost it pages back to the submit time looking
for the job's tags, and otherwise raises, never submitting blindly again.
Results are pulled: a successful job's one artifact is downloaded into
`cache_dir/<job id>/artifacts` (a build's apk tarball is extracted safely), and a
success without it counts as a failed try. An image job keeps no artifact: it
uploaded its files to the receiver, into `<uploads>/<job id>/files/`, which
becomes its `artifacts_dir`; its task logs are downloaded (GraphQL `tasks { log
{ fullURL } }`, fetched with the token) into `cache_dir/<job id>/job.log`, its
`log_path`, whose checksum block the daemon checks the uploaded files against
before it publishes them. An image job that succeeded without uploaded files,
or whose logs cannot be had, counts as a failed try. Known jobs persist in
`cache_dir`; downloads and uploads are pruned at every poll and at start (see
`cache`): an upload directory goes once its image is published or its job failed,
was superseded or is unknown.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.config.sourcehut import upload_files_dir
from reconciler.fs.regularfile import Refused, read_regular
from reconciler.jobs.service import JobExistsError, JobServiceError, JobSpec
from reconciler.jobs.sourcehut.cache import TrackedJob as _Job
from reconciler.jobs.sourcehut.cache import (
    download_dirs,
    load_jobs,
    prune_downloads,
    prune_uploads,
    save_jobs,
)
from reconciler.jobs.sourcehut.client import TRANSIENT, DownloadRefused, GraphQLClient, GraphQLError
from reconciler.jobs.sourcehut.manifest import (
    ManifestSettings,
    artifact_path,
    build_submission,
    extract_apks,
    key_from_tags,
)
from reconciler.model.images import JOB_ID_FILE, ImageTarget
from reconciler.model.jobs import JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.layout import INDEX_NAME

log = logging.getLogger(__name__)

_JOB = "fragment J on Job { id created updated status tags artifacts { path size url } }"
JOBS_QUERY = (
    "query Jobs($cursor: Cursor) { jobs(cursor: $cursor) { cursor results { ...J } } } " + _JOB
)
SUBMIT_MUTATION = (
    "mutation Submit($manifest: String!, $tags: [String!], $note: String, $secrets: Boolean)"
    " { submit(manifest: $manifest, tags: $tags, note: $note, secrets: $secrets,"
    f" execute: true) {{ ...J }} }} {_JOB}"
)
CANCEL_MUTATION = "mutation Cancel($id: Int!) { cancel(jobId: $id) { id status } }"
LOGS_QUERY = "query Logs($id: Int!) { job(id: $id) { tasks { name log { fullURL } } } }"
LOG_FILE = "job.log"
STATUSES = {
    "PENDING": JobStatus.QUEUED,
    "QUEUED": JobStatus.QUEUED,
    "RUNNING": JobStatus.RUNNING,
    "SUCCESS": JobStatus.SUCCESS,
    "FAILED": JobStatus.FAILED,
    "TIMEOUT": JobStatus.TIMEOUT,
    "CANCELLED": JobStatus.CANCELLED,
}
_REASONS = {
    "FAILED": "failed on builds.sr.ht (see its log)",
    "TIMEOUT": "timed out on builds.sr.ht",
    "CANCELLED": "cancelled on builds.sr.ht",
}
POLL_BATCH = 50
MAX_PAGES = 200


@dataclass(frozen=True, slots=True)
class SourcehutSettings:
    user: str
    tag: str = "reconciler"
    poll_interval_seconds: float = 15.0
    lookback_seconds: float = 7 * 86400.0
    clock_skew_seconds: float = 300.0  # margin when paging back to a lost submit
    max_artifact_bytes: int = 2 * 1024**3
    keep_downloads_seconds: float = 86400.0  # a settled job's download, at most
    max_log_bytes: int = 64 * 1024**2  # an image job's task logs, together
    orphan_upload_seconds: float = 3600.0  # uploads of a job this service does not know


class SourcehutJobService:
    def __init__(
        self,
        client: GraphQLClient,
        manifests: ManifestSettings,
        settings: SourcehutSettings,
        cache_dir: Path,
        clock: Callable[[], float] = time.time,
        *,
        uploads: Path | None = None,
        images: Path | None = None,
    ) -> None:
        """`uploads`: where the receiver keeps image jobs' files (None: no image jobs);
        `images`: the images tree, to see that an upload was published."""
        self.client = client
        self.manifests = manifests
        self.settings = settings
        self.cache_dir = cache_dir
        self.uploads = uploads
        self.images = images
        self._clock = clock
        self._jobs: dict[int, _Job] = {}
        self._newest_id = 0
        self._polled_at: float | None = None
        cache_dir.mkdir(parents=True, exist_ok=True)
        if uploads is not None:  # before the receiver's unit starts: it may write only there
            uploads.mkdir(mode=0o750, parents=True, exist_ok=True)
        self._jobs, self._newest_id = load_jobs(cache_dir, self._url)
        self._prune()  # orphans of a crash, downloads of jobs forgotten or superseded

    # --- JobService -----------------------------------------------------------
    def list_jobs(self) -> Mapping[JobKey, JobObservation]:
        now = self._clock()
        due = (
            self._polled_at is None or now - self._polled_at >= self.settings.poll_interval_seconds
        )
        if due or any(j.outcome is None and j.status == "SUCCESS" for j in self._jobs.values()):
            seen = self._page_new(now)
            self._poll_live(seen)
            self._settle()
            self._prune()
            self._polled_at = now
            self._save()
        return self._view()

    def submit(self, spec: JobSpec) -> JobObservation:
        if any(j.key == spec.key for j in self._jobs.values()):
            raise JobExistsError(f"job {spec.key.job_id} was already submitted")
        sub = build_submission(spec, self.manifests)
        variables = {
            "manifest": sub.manifest,
            "tags": list(sub.tags),
            "note": sub.note,
            "secrets": sub.secrets,
        }
        started = self._clock()
        try:
            data = self.client.post_once(SUBMIT_MUTATION, variables)
        except TRANSIENT as exc:
            log.warning("submit of %s got no answer (%s); looking for it", spec.key.job_id, exc)
            found = self._find_submitted(spec.key, started)
            if found is None:
                raise JobServiceError(
                    f"submit of {spec.key.job_id} got no answer ({exc}) and builds.sr.ht shows"
                    " no such job since; it may appear in the next listing"
                ) from exc
            log.info("found job %s as #%d after a lost answer", spec.key.job_id, found.id)
            self._save()
            return self._observe(found)
        job = self._remember(data["submit"])
        if job is None:
            raise JobServiceError(f"builds.sr.ht returned job {data['submit']} without our tags")
        log.info("submitted job %s as #%d", spec.key.job_id, job.id)
        self._save()
        return self._observe(job)

    def cancel(self, key: JobKey) -> None:
        job = next((j for j in self._jobs.values() if j.key == key), None)
        if job is None:
            return
        if job.status != "RUNNING":  # sourcehut cancels only running jobs; a queued one is
            log.info("not cancelling %s (#%d): it is %s", key.job_id, job.id, job.status)
            return
        try:
            data = self.client.query(CANCEL_MUTATION, {"id": job.id})
        except GraphQLError as exc:  # it ended between the poll and now
            log.warning("cancelling %s (#%d): %s", key.job_id, job.id, exc)
            return
        status = (data.get("cancel") or {}).get("status") or job.status
        self._jobs[job.id] = replace(job, status=str(status))

    # --- listing --------------------------------------------------------------
    def _page_new(self, now: float) -> set[int]:
        """Page newest-first down to the newest id already seen; return the ids seen."""
        floor = self._newest_id
        horizon = now - self.settings.lookback_seconds if floor == 0 else None
        newest, seen, cursor = floor, set[int](), None
        for _ in range(MAX_PAGES):
            page = self.client.query(JOBS_QUERY, {"cursor": cursor})["jobs"]
            stop = False
            for raw in page["results"]:
                job_id = int(raw["id"])
                if job_id <= floor or (horizon is not None and _time(raw["created"]) < horizon):
                    stop = True
                    break
                newest = max(newest, job_id)
                seen.add(job_id)
                self._remember(raw)
            cursor = page.get("cursor")
            if stop or cursor is None:
                break
        else:
            log.warning("stopped paging builds.sr.ht jobs after %d pages", MAX_PAGES)
        self._newest_id = newest
        return seen

    def _poll_live(self, fresh: set[int]) -> None:
        live = sorted(
            j.id for j in self._jobs.values() if j.id not in fresh and j.status not in _SETTLED
        )
        for start in range(0, len(live), POLL_BATCH):
            ids = live[start : start + POLL_BATCH]
            fields = " ".join(f"j{i}: job(id: {i}) {{ ...J }}" for i in ids)
            data = self.client.query(f"query Poll {{ {fields} }} {_JOB}")
            for job_id in ids:
                raw = data.get(f"j{job_id}")
                if raw is None:
                    job = self._jobs[job_id]
                    reason = "the job vanished from builds.sr.ht"
                    outcome = JobObservation(
                        job.key,
                        JobStatus.LOST,
                        job.created,
                        self._clock(),
                        reason,
                        url=self._url(job_id),
                    )
                    self._jobs[job_id] = replace(job, status="LOST", outcome=outcome)
                else:
                    self._remember(raw)

    def _find_submitted(self, key: JobKey, started: float) -> _Job | None:
        """Page newest-first back to the submit time looking for a job with key's tags."""
        since = started - self.settings.clock_skew_seconds
        cursor = None
        for _ in range(MAX_PAGES):
            page = self.client.query(JOBS_QUERY, {"cursor": cursor})["jobs"]
            for raw in page["results"]:
                if _time(raw["created"]) < since:
                    return None
                job = self._remember(raw)
                if job is not None and job.key == key:
                    return job
            cursor = page.get("cursor")
            if cursor is None:
                return None
        return None

    def _remember(self, raw: dict[str, Any]) -> _Job | None:
        key = key_from_tags(self.settings.tag, list(raw.get("tags") or []))
        if key is None:
            return None
        job_id = int(raw["id"])
        twin = next((j for j in self._jobs.values() if j.key == key and j.id != job_id), None)
        if twin is not None and twin.id < job_id:
            log.warning(
                "job %s exists twice (#%d, #%d); using #%d", key.job_id, twin.id, job_id, twin.id
            )
            return None
        old = self._jobs.get(job_id)
        artifacts = tuple(
            (a["path"], int(a["size"]), a.get("url")) for a in raw.get("artifacts") or []
        )
        job = _Job(
            job_id, key, str(raw["status"]), _time(raw["created"]), _time(raw["updated"]), artifacts
        )
        if old is not None and old.outcome is not None:
            job = old  # settled: what was downloaded stays what it was
        elif raw["status"] not in STATUSES and (old is None or old.status != raw["status"]):
            log.warning(
                "job %s (#%d): unknown status %r, taken as running",
                key.job_id,
                job_id,
                raw["status"],
            )
        self._jobs[job_id] = job
        return job

    # --- results ----------------------------------------------------------------
    def _settle(self) -> bool:
        """Settle finished jobs (downloading results); True when a download was made."""
        downloaded = False
        for job in list(self._jobs.values()):
            if job.outcome is not None or job.status not in _SETTLED:
                continue
            if job.status != "SUCCESS":
                reason = _REASONS.get(job.status, job.status.lower())
                state = STATUSES.get(job.status, JobStatus.FAILED)
                outcome = JobObservation(
                    job.key, state, job.created, job.updated, reason, url=self._url(job.id)
                )
            else:
                try:
                    outcome = self._collect(job)
                except DownloadRefused as exc:
                    outcome = self._failed(job, f"succeeded, but its artifact is unusable: {exc}")
                except JobServiceError as exc:  # transient: try again next pass
                    log.warning("job %s: downloading its artifact failed: %s", job.key.job_id, exc)
                    continue
                downloaded = True
                job = replace(job, downloaded_at=self._clock())
            self._jobs[job.id] = replace(job, outcome=outcome)
        return downloaded

    def _prune(self) -> None:
        keep, now = self.settings.keep_downloads_seconds, self._clock()
        self._jobs.update(prune_downloads(self.cache_dir, self._jobs, now, keep))
        if self.uploads is not None:
            grace = self.settings.orphan_upload_seconds
            pruned = prune_uploads(self.uploads, self._jobs, now, grace, self._published)
            self._jobs.update(pruned)

    def _published(self, key: JobKey) -> bool:
        """Whether the images tree holds a date directory this image job made."""
        if self.images is None:
            return False
        try:
            target = ImageTarget.from_intent(key.intent)
        except ValueError:
            return False
        for path in self.images.glob(f"*/{target.device}/{target.ui}/*/{JOB_ID_FILE}"):
            try:
                _, data = read_regular(str(path), 4096)
            except (OSError, Refused):
                continue
            if data.decode("utf-8", errors="replace").strip() == key.job_id:
                return True
        return False

    def _collect(self, job: _Job) -> JobObservation:
        if job.key.intent.kind is JobKind.IMAGE:
            return self._collect_image(job)
        wanted = artifact_path(job.key).rsplit("/", 1)[-1]
        found = [a for a in job.artifacts if a[0].rsplit("/", 1)[-1] == wanted]
        if not found:
            return self._failed(job, f"succeeded without its artifacts (no {wanted})")
        _path, size, url = found[0]
        if url is None:
            return self._failed(job, f"succeeded, but its artifact {wanted} was pruned")
        limit = self.settings.max_artifact_bytes
        if size > limit:
            return self._failed(job, f"its artifact {wanted} has {size} bytes, more than {limit}")
        staging, target = download_dirs(self.cache_dir, job.key)
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "artifacts").mkdir(parents=True)
        download = staging / "download"
        self.client.download(url, download, limit)
        if job.key.intent.kind is JobKind.SIGN:
            os.rename(download, staging / "artifacts" / INDEX_NAME)
        else:
            problem = extract_apks(download, staging / "artifacts", limit)
            download.unlink()
            if problem:
                shutil.rmtree(staging, ignore_errors=True)
                return self._failed(job, f"succeeded, but its apk tarball is refused: {problem}")
        shutil.rmtree(target, ignore_errors=True)
        os.rename(staging, target)
        return JobObservation(
            job.key,
            JobStatus.SUCCESS,
            job.created,
            job.updated,
            url=self._url(job.id),
            artifacts_dir=str(target / "artifacts"),
        )

    def _collect_image(self, job: _Job) -> JobObservation:
        """An image job's uploaded files and its downloaded logs, to check them by."""
        if self.uploads is None:
            return self._failed(job, "succeeded, but this daemon takes no uploads")
        files = upload_files_dir(self.uploads, job.key.job_id)
        try:
            uploaded = any(files.iterdir())
        except OSError:
            uploaded = False
        if not uploaded:
            return self._failed(job, "succeeded without uploading its files to the receiver")
        staging, target = download_dirs(self.cache_dir, job.key)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            self._download_logs(job, staging / LOG_FILE)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(target, ignore_errors=True)
        os.rename(staging, target)
        return JobObservation(
            job.key,
            JobStatus.SUCCESS,
            job.created,
            job.updated,
            log_path=str(target / LOG_FILE),
            url=self._url(job.id),
            artifacts_dir=str(files),
        )

    def _download_logs(self, job: _Job, target: Path) -> None:
        """Every task's log, in order, each after a `[<task>]` line, into `target`."""
        raw = self.client.query(LOGS_QUERY, {"id": job.id}).get("job") or {}
        budget = self.settings.max_log_bytes
        part = target.with_name(f".{target.name}.part")
        found = 0
        with open(target, "wb") as out:
            for task in raw.get("tasks") or []:
                url = (task.get("log") or {}).get("fullURL")
                if not isinstance(url, str) or not url:
                    continue
                budget -= self.client.download(url, part, budget)
                name = "".join(c if c.isalnum() or c in "-_." else "?" for c in str(task["name"]))
                out.write(f"[{name[:64]}]\n".encode())
                with open(part, "rb") as source:
                    shutil.copyfileobj(source, out)
                found += 1
        part.unlink(missing_ok=True)
        if not found:
            raise DownloadRefused("builds.sr.ht shows no task log (the token needs LOGS read)")

    def _failed(self, job: _Job, reason: str) -> JobObservation:
        log.warning("job %s (#%d) %s", job.key.job_id, job.id, reason)
        return JobObservation(
            job.key, JobStatus.FAILED, job.created, job.updated, reason, url=self._url(job.id)
        )

    # --- views and the cache file -------------------------------------------------
    def _observe(self, job: _Job) -> JobObservation:
        if job.outcome is not None:
            return job.outcome
        status = STATUSES.get(job.status, JobStatus.RUNNING)
        if not status.is_live:  # finished, outcome not settled yet (artifact pending)
            status = JobStatus.RUNNING
        return JobObservation(job.key, status, job.created, url=self._url(job.id))

    def _view(self) -> dict[JobKey, JobObservation]:
        return {
            job.key: self._observe(job) for job in sorted(self._jobs.values(), key=lambda j: -j.id)
        }

    def _url(self, job_id: int) -> str:
        return f"{self.client.origin}/~{self.settings.user}/job/{job_id}"

    def _save(self) -> None:
        save_jobs(self.cache_dir, self._jobs, self._newest_id)


_SETTLED = frozenset({"SUCCESS", "FAILED", "TIMEOUT", "CANCELLED", "LOST"})


def _time(text: str) -> float:
    """A sourcehut Time (%Y-%m-%dT%H:%M:%SZ) as a Unix timestamp; 0.0 when unreadable."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return 0.0
