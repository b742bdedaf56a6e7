"""Performs the plan's actions, one at a time, each inside its own error boundary.

Execute never decides anything: it turns each Action into job submissions and
repository changes and reports an Outcome. One failing action (a refused apk, a
full disk, an unreachable job service) is logged and reported; the others still
run, and the next pass plans again from what is then on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconciler.config.settings import BranchConfig, Config
from reconciler.execute.mirror import MirrorError, push_repository
from reconciler.execute.repos import RefusedError, RepoStore
from reconciler.fs.crashpoint import crashpoint
from reconciler.jobs.scripts import SIGNED_NAME, IndexSource, build_script, sign_script
from reconciler.jobs.service import JobExistsError, JobService, JobSpec
from reconciler.memory.store import StateStore
from reconciler.model.names import RepoKey
from reconciler.observed.scanner import INDEX_NAME
from reconciler.plan.actions import (
    Action,
    CancelJob,
    CollectBuild,
    MirrorFinal,
    Outcome,
    PruneFinal,
    PruneWip,
    PublishFinal,
    ReindexWip,
    SeedFromOrigin,
    SubmitBuild,
    SubmitSign,
    WriteSymlinkRepo,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Executor:
    config: Config
    jobs: JobService
    store: RepoStore
    state: StateStore
    clock: Callable[[], float]
    commits: dict[str, str]  # branch -> commit of the desired state being built
    # Checkouts of branches that are not configured (staging): branch -> directory.
    checkouts: dict[str, Path] = field(default_factory=dict)
    # When a failed transfer to the mirror may be tried again (in memory: a
    # restart simply tries at once).
    mirror_retry_at: dict[RepoKey, float] = field(default_factory=dict)

    def apply(self, actions: Iterable[Action]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for action in actions:
            try:
                message = self._apply_one(action)
                outcomes.append(Outcome(action, True, message))
            except RefusedError as exc:
                log.error("%s refused: %s", type(action).__name__, exc)
                outcomes.append(Outcome(action, False, str(exc)))
            except Exception as exc:  # the per-action boundary: log, report, carry on
                log.exception("%s failed", type(action).__name__)
                outcomes.append(Outcome(action, False, f"{type(exc).__name__}: {exc}"))
        return outcomes

    def _apply_one(self, action: Action) -> str:
        now = self.clock()
        match action:
            case SubmitBuild():
                return self._submit_build(action)
            case CollectBuild(job=job, spec=spec):
                try:
                    names = self.store.import_build(spec, Path(job.artifacts_dir or "/nonexistent"))
                except RefusedError as exc:
                    self.state.reject(job.key.job_id, f"results refused: {exc}")
                    raise
                crashpoint("build-collected")
                return f"collected {', '.join(names)}"
            case SeedFromOrigin(repo=repo, origin=origin, filenames=names):
                self.store.seed_from_origin(repo, origin, names)
                return f"copied {len(names)} apk(s) from {origin} into WIP {repo}"
            case ReindexWip(repo=repo):
                self.store.reindex_wip(repo, now)
                crashpoint("wip-indexed")
                return f"reindexed WIP {repo}"
            case PruneWip(repo=repo, filenames=names, why=why):
                self.store.prune_wip(repo, names)
                return f"removed {len(names)} apk(s) from WIP {repo}: {why}"
            case WriteSymlinkRepo(repo=repo, from_wip=wip, from_final=final, commit=commit):
                sha = self.store.write_symlink_repo(repo, wip, final, commit, now)
                crashpoint("symlink-indexed")
                counts = f"{len(wip)} new + {len(final)} published"
                return f"symlink repo {repo}: {counts}, index {sha[:12]}"
            case SubmitSign(key=key):
                unsigned = self.store.unsigned_index(key.intent.repo)
                script, files = sign_script(
                    unsigned,
                    key.intent.version,
                    self.config.keys.final_private,
                    self.config.keys.final_name,
                )
                self._submit(
                    JobSpec(
                        key,
                        script,
                        f"sign the index of {key.intent.repo}",
                        self.config.jobs.timeout_seconds,
                        files,
                    )
                )
                crashpoint("sign-submitted")
                return f"submitted sign job {key.job_id}"
            case PublishFinal(repo=repo, job=job, unsigned_sha256=sha, replace=replace):
                signed = Path(job.artifacts_dir or "/nonexistent") / SIGNED_NAME
                try:
                    removed = self.store.publish(repo, signed, sha, replace)
                except RefusedError as exc:
                    self.state.reject(job.key.job_id, str(exc))
                    raise
                return f"published {repo}, removed {len(removed)} old apk(s)"
            case MirrorFinal(repo=repo, index_sha256=sha):
                return self._mirror(repo, sha, now)
            case CancelJob(key=key, why=why):
                self.jobs.cancel(key)
                return f"cancelled {key.job_id}: {why}"
            case PruneFinal(repo=repo, filenames=names):
                removed = self.store.prune_final(repo, names)
                return f"removed {len(removed)} unlisted apk(s) from final {repo}"
        raise TypeError(f"unknown action {action!r}")

    def _mirror(self, repo: RepoKey, sha: str, now: float) -> str:
        mirror = self.config.mirror
        if now < self.mirror_retry_at.get(repo, 0.0):
            raise RefusedError(f"mirror of {repo}: waiting before the next try")
        try:
            push_repository(self.store.final_dir(repo), mirror.rsync, repo.relpath)
        except MirrorError as exc:
            self.mirror_retry_at[repo] = now + mirror.retry_seconds
            raise RefusedError(f"mirror of {repo}: {exc}") from exc
        self.state.mark_mirrored(str(repo), sha)
        return f"mirrored {repo}"

    def _submit_build(self, action: SubmitBuild) -> str:
        spec = action.spec
        keys = self.config.keys
        indexes: list[IndexSource] = []
        for repo in action.dep_repos:
            indexes.append(IndexSource(self.store.wip_dir(repo) / INDEX_NAME, keys.wip_public))
            indexes.append(IndexSource(self.store.final_dir(repo) / INDEX_NAME, keys.final_public))
        builder = self.config.builder
        if spec.repo.branch in self.checkouts:
            checkout = (spec.repo.branch, self.checkouts[spec.repo.branch], "")
            builder = replace(builder, pmaports=(checkout, *builder.pmaports))
        script, files = build_script(
            action.key,
            spec,
            builder,
            indexes,
            action.required,
            self.commits.get(spec.repo.branch, ""),
        )
        note = f"build {spec.pkgname} {spec.version} for {spec.repo}, try {action.key.attempt}"
        self._submit(JobSpec(action.key, script, note, self.config.jobs.timeout_seconds, files))
        return f"submitted {action.key.job_id}"

    def _submit(self, spec: JobSpec) -> None:
        try:
            self.jobs.submit(spec)
        except JobExistsError:
            # The job service already holds it: the next listing shows it. Never resubmit.
            log.warning("job %s already exists; re-attaching", spec.key.job_id)


def repo_keys(config: Config, staging: tuple[BranchConfig, ...] = ()) -> list[RepoKey]:
    """Every repository the configuration (and the staging branches) publish, in build order."""
    return [
        RepoKey(branch.name, splitrepo, arch)
        for branch in (*config.branches, *staging)
        for arch in branch.arches
        for splitrepo in ("", *config.splitrepos)
    ]
