"""One pass's snapshot: every repository, the job service's jobs, what the
daemon remembers, and the images tree with its file system's free space, as
one frozen ObservedState that plan() reads.

Nothing here writes. A job service that cannot be asked is reported in the
snapshot (and no job is listed), never raised: the plan then submits nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from reconciler.jobs.service import JobService, JobServiceError
from reconciler.memory.cache import Memory
from reconciler.model.names import RepoKey
from reconciler.model.observations import ObservedState
from reconciler.observed.images import ImageScanner
from reconciler.observed.scanner import RepoScanner

log = logging.getLogger(__name__)


def observe(
    scanner: RepoScanner,
    repos: Iterable[RepoKey],
    jobs: JobService,
    memory: Memory,
    *,
    full: bool = False,
    images: ImageScanner | None = None,
) -> ObservedState:
    """The whole snapshot for one pass; `full` lists every directory again."""
    error = ""
    try:
        job_map = dict(jobs.list_jobs())
    except JobServiceError as exc:
        log.error("job service unreachable: %s", exc)
        job_map, error = {}, str(exc)
    return ObservedState(
        repos={key: scanner.scan(key, full=full) for key in repos},
        jobs=job_map,
        rejected=dict(memory.rejected),
        job_service_error=error,
        mirrored=dict(memory.mirrored),
        mirror_failures=dict(memory.mirror_failures),
        images=images.scan(full=full) if images is not None else (),
        images_free_bytes=images.free_bytes() if images is not None else None,
    )
