"""How the tries of one intent stand: running, succeeded, failed n times, due again.

Pure. The job service's jobs are the attempts; an operator's retry grant or
rebuild request makes earlier attempts stop counting, a job declared dead counts
as a failure, and a refused result counts as one too. After a failure the next
try waits `backoff_seconds · 2^(failures−1)`, up to `max_tries` tries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from reconciler.model.jobs import JobIntent, JobKind, JobObservation, JobStatus
from reconciler.model.names import RepoKey
from reconciler.model.observations import ObservedState
from reconciler.model.progress import PkgState
from reconciler.plan.inputs import PlanSettings


@dataclass(frozen=True, slots=True)
class TryState:
    """The outcome of the attempts made so far for one intent."""

    failures: int
    live: JobObservation | None
    success: JobObservation | None
    last_failure: JobObservation | None
    last_reason: str

    @property
    def excerpt(self) -> str:
        """The last failed try's log lines that say why ("" when none)."""
        return self.last_failure.excerpt if self.last_failure is not None else ""


class Tries:
    """The attempts of one planning run, by intent; collects the retry deadlines."""

    def __init__(self, observed: ObservedState, settings: PlanSettings, now: float) -> None:
        self._attempts: dict[JobIntent, list[JobObservation]] = {}
        # When intents last succeeded, and when each repository's sign jobs did.
        self._succeeded: dict[JobIntent, float] = {}
        self._signed: dict[RepoKey, list[float]] = {}
        for key, obs in sorted(observed.jobs.items()):
            self._attempts.setdefault(key.intent, []).append(obs)
            if obs.status is JobStatus.SUCCESS and key.job_id not in observed.rejected:
                ended = obs.ended_at or 0.0
                self._succeeded[key.intent] = max(self._succeeded.get(key.intent, 0.0), ended)
                if key.intent.kind is JobKind.SIGN:
                    self._signed.setdefault(key.intent.repo, []).append(ended)
        self._rejected = observed.rejected
        self._settings = settings
        self._now = now
        self.wakeups: list[float] = []  # when scheduled retries become due

    def of(self, intent: JobIntent) -> TryState:
        failures = 0
        live = success = last_failure = None
        reason = ""
        intents = self._settings.intents
        if intent.kind is JobKind.IMAGE:  # an image's grants name its slot
            forgiven = intents.image_retried_after(intent)
        else:
            forgiven = intents.retried_after(intent.repo, intent.pkgname)
        rebuild = intents.rebuild_for(intent.repo, intent.pkgname, intent.version)
        if rebuild is not None and intent.kind is JobKind.BUILD:
            forgiven = max(forgiven, rebuild.after_attempt)
        for obs in self._attempts.get(intent, []):
            if obs.key.attempt <= forgiven and not obs.status.is_live:
                continue  # an operator granted fresh tries after this one
            rejected = self._rejected.get(obs.key.job_id)
            dead = intents.dead(obs.key.job_id)
            if dead is not None:
                failures += 1
                last_failure = obs
                reason = f"declared dead by {dead.who}: {dead.why}"
                success = None
            elif obs.status.is_live:
                live = obs
            elif obs.status.is_failure or rejected:
                failures += 1
                last_failure = obs
                reason = rejected or obs.reason or f"job {obs.status}"
                success = None
            else:
                success = obs
        return TryState(failures, live, success, last_failure, reason)

    def succeeded_at(self, intent: JobIntent) -> float:
        """When the intent's last successful job ended (0: none is known)."""
        return self._succeeded.get(intent, 0.0)

    def signed_after(self, repo: RepoKey, after: float) -> float:
        """When the first sign job of `repo` that ended after `after` ended: the
        publish that took in what was built by then (0: none is known)."""
        return min((t for t in self._signed.get(repo, ()) if t > after), default=0.0)

    def next_attempt(self, intent: JobIntent) -> int:
        return max((o.key.attempt for o in self._attempts.get(intent, [])), default=0) + 1

    def retry_or_fail(self, tries: TryState) -> tuple[PkgState, str, float | None]:
        """After a failure: whether another try may start now (QUEUED), later, or never,
        and when it may (None: never)."""
        n, cap = tries.failures, self._settings.max_tries
        if n >= cap:
            return PkgState.FAILED, f"{tries.last_reason} (try {n} of {cap})", None
        ended = (tries.last_failure.ended_at if tries.last_failure else None) or self._now
        due = ended + self._settings.backoff(n)
        if due > self._now:
            self.wakeups.append(due)
            when = time.strftime("%H:%M:%S", time.gmtime(due))
            return (
                PkgState.RETRYING,
                f"{tries.last_reason} (try {n} of {cap}); next try at {when} UTC",
                due,
            )
        return PkgState.QUEUED, f"try {n + 1} of {cap} next, after: {tries.last_reason}", due
