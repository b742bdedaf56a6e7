"""The last rungs of a repository's ladder, once nothing is left to build.

Pure. Complete -> the unsigned symlink index of exactly what the repository
publishes next -> a sign job for those bytes -> publish final under the signed
index -> prune WIP and final -> copy to the mirror. Each rung is read back from
disk by `observed` on the next pass, so a restart resumes wherever things stand.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from reconciler.model.jobs import JobIntent, JobKey, JobKind
from reconciler.model.names import RepoKey
from reconciler.model.observations import IndexView, ObservedState, RepoObserved
from reconciler.model.packages import BranchDesired, PkgSpec
from reconciler.model.progress import PkgState, PkgStatus, RepoPhase, RepoStatus
from reconciler.plan.actions import (
    Action,
    MirrorFinal,
    PruneFinal,
    PruneWip,
    PublishFinal,
    SubmitSign,
    WriteSymlinkRepo,
)
from reconciler.plan.inputs import PlanSettings
from reconciler.plan.next_publish import publish_target, published_from, rebuilt_packages
from reconciler.plan.tries import Tries

DONE_STATES = (PkgState.PUBLISHED, PkgState.BUILT, PkgState.HELD, PkgState.BROKEN)


class PublishLadder:
    """The publish rungs of every repository in one planning run."""

    def __init__(
        self, observed: ObservedState, settings: PlanSettings, tries: Tries, now: float
    ) -> None:
        self.observed = observed
        self.settings = settings
        self.tries = tries
        self.now = now

    def rungs(
        self,
        desired: BranchDesired,
        key: RepoKey,
        specs: Mapping[str, PkgSpec],
        obs: RepoObserved,
        states: Mapping[str, PkgStatus],
        waiting: Mapping[str, list[tuple[RepoKey, str]]],
        stuck: set[str],
    ) -> tuple[list[Action], RepoStatus]:
        """The actions that bring the repository one rung further, and where it
        stands. Broken packages, and those that wait for one, never hold the rest
        back: they keep what final has of them, and the repository publishes the
        rest, then says it is blocked by them. A failed package blocks it."""
        actions: list[Action] = []
        published = published_from(obs.final_index, desired.commit)

        def status(phase: RepoPhase, reason: str = "") -> RepoStatus:
            return RepoStatus(key, phase, reason, *published)

        if not specs and obs.final_index is None and not states:
            return actions, RepoStatus(key, RepoPhase.EMPTY)
        unfinished = [
            s for s in states.values() if s.state not in DONE_STATES and s.pkgname not in stuck
        ]
        if unfinished:
            return actions, status(*_unfinished_phase(key, unfinished, states, waiting, stuck))
        keep = {
            n
            for n, s in states.items()
            if s.state in (PkgState.HELD, PkgState.BROKEN) or n in stuck
        }
        rebuilt = rebuilt_packages(self.settings.intents, key, specs, obs)
        target, from_wip, from_final, conflicts = publish_target(
            desired, key, specs, obs, keep, rebuilt
        )
        if conflicts:
            return actions, status(RepoPhase.BLOCKED, "; ".join(conflicts))
        final_index = obs.final_index
        if final_index is not None and final_index.files == target:
            actions, done = self._published(key, obs, final_index, target, published)
            blocked = _blocked_by(states, stuck)
            if blocked:
                return actions, status(RepoPhase.BLOCKED, blocked)
            return actions, done
        symlink = obs.symlink_index
        if symlink is None or symlink.files != target:
            wip = tuple(obs.wip[n] for n in from_wip)
            final = tuple(obs.final[n] for n in from_final)
            actions.append(WriteSymlinkRepo(key, wip, final, desired.commit))
            return actions, status(RepoPhase.INDEXING, "writing the index to sign")
        return self._sign_and_publish(key, obs, symlink, target, published)

    def _published(
        self,
        key: RepoKey,
        obs: RepoObserved,
        final_index: IndexView,
        target: Mapping[str, str],
        published: tuple[str, str],
    ) -> tuple[list[Action], RepoStatus]:
        """Final already lists the target: prune, and copy to the mirror when due."""
        actions: list[Action] = []
        extra = sorted(set(obs.final) - set(target))
        if extra:
            actions.append(PruneFinal(key, tuple(extra)))
        # Published already (the same bytes, or other bytes that final keeps).
        done = sorted(n for n in obs.wip if n in final_index.files)
        if done:
            actions.append(PruneWip(key, tuple(done), "published"))
        reason = ""
        if self.settings.mirror and self.observed.mirrored.get(str(key)) != final_index.sha256:
            failed_at = self.observed.mirror_failures.get(str(key))
            due = None if failed_at is None else failed_at + self.settings.mirror_retry_seconds
            if due is None or self.now >= due:
                actions.append(MirrorFinal(key, final_index.sha256))
            else:
                when = time.strftime("%H:%M:%S", time.gmtime(due))
                reason = f"copying to the mirror failed; next try at {when} UTC"
        return actions, RepoStatus(key, RepoPhase.PUBLISHED, reason, *published)

    def _sign_and_publish(
        self,
        key: RepoKey,
        obs: RepoObserved,
        symlink: IndexView,
        target: Mapping[str, str],
        published: tuple[str, str],
    ) -> tuple[list[Action], RepoStatus]:
        """The symlink index is the target: have it signed, then publish it."""

        def status(phase: RepoPhase, reason: str) -> RepoStatus:
            return RepoStatus(key, phase, reason, *published)

        intent = JobIntent(JobKind.SIGN, key, "", symlink.sha256)
        tries = self.tries.of(intent)
        if tries.live is not None:
            return [], status(RepoPhase.SIGNING, "waiting for the sign job")
        if tries.success is not None:
            replace = tuple(
                n
                for n, c in sorted(target.items())
                if n in obs.final and obs.final[n].checksum != c
            )
            unlisted = tuple(sorted((set(obs.final) | set(obs.bad_final)) - set(target)))
            publish = PublishFinal(key, tries.success, symlink.sha256, replace, unlisted)
            return [publish], status(RepoPhase.PUBLISHING, "publishing the signed index")
        if tries.failures:
            state, why, _ = self.tries.retry_or_fail(tries)
            if state is not PkgState.QUEUED:
                return [], status(RepoPhase.BLOCKED, f"the sign job failed: {why}")
        if self.observed.job_service_error:  # never submit blind: it may hold the job
            return [], status(RepoPhase.SIGNING, "the sign job waits for the job service")
        paused = self.settings.paused(key, self.now)
        if paused:
            return [], status(RepoPhase.SIGNING, f"the sign job waits: {paused}")
        sign = SubmitSign(JobKey(intent, self.tries.next_attempt(intent)))
        return [sign], status(RepoPhase.SIGNING, "submitting the sign job")


def _counted(noun: str, names: list[str]) -> str:
    return f"{len(names)} {noun}{'s' if len(names) > 1 else ''} ({', '.join(sorted(names))})"


def _blocked_by(states: Mapping[str, PkgStatus], stuck: set[str]) -> str:
    """What keeps a repository from holding every desired package ("" when nothing)."""
    parts = []
    failed = [n for n, s in states.items() if s.state is PkgState.FAILED]
    broken = [n for n, s in states.items() if s.state is PkgState.BROKEN]
    if failed:
        parts.append(_counted("failed package", failed))
    if broken:
        parts.append(_counted("broken package", broken))
    if stuck:
        parts.append(_counted("package", sorted(stuck)) + " waiting for them")
    return ", ".join(parts)


def _unfinished_phase(
    key: RepoKey,
    unfinished: list[PkgStatus],
    states: Mapping[str, PkgStatus],
    waiting: Mapping[str, list[tuple[RepoKey, str]]],
    stuck: set[str],
) -> tuple[RepoPhase, str]:
    """Where a repository stands while some packages are not done: blocked by a
    failure; waiting for other repositories (nothing here can build until they
    publish); or building, with what remains."""
    if any(s.state is PkgState.FAILED for s in unfinished):
        return RepoPhase.BLOCKED, _blocked_by(states, stuck)
    elsewhere: dict[RepoKey, dict[str, None]] = {}
    for s in unfinished:
        needs = waiting.get(s.pkgname, []) if s.state is PkgState.WAITING else []
        if not needs or any(repo == key for repo, _ in needs):
            break  # something here can build, or waits for something built here
        for repo, name in needs:
            elsewhere.setdefault(repo, {})[name] = None
    else:
        text = "; ".join(
            f"{_where(repo, key)} to publish {', '.join(names)}"
            for repo, names in sorted(elsewhere.items())
        )
        return RepoPhase.BUILDING, f"waiting for {text}"
    retrying = [s for s in unfinished if s.state is PkgState.RETRYING]
    n = len(unfinished)
    reason = f"{n} package{'s' if n > 1 else ''} still to build"
    if retrying:
        due = min((s.next_try_at for s in retrying if s.next_try_at), default=None)
        when = f", next try at {time.strftime('%H:%M:%S', time.gmtime(due))} UTC" if due else ""
        reason += f" ({len(retrying)} retrying{when})"
    return RepoPhase.BUILDING, reason


def _where(repo: RepoKey, here: RepoKey) -> str:
    """Another repository, named as briefly as is clear from `here`."""
    if repo.branch == here.branch and repo.splitrepo == here.splitrepo:
        return repo.arch
    return str(repo)
