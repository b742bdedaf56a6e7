"""Performs the plan's actions, one at a time, each inside its own error boundary.

Execute decides nothing: every Action carries what it needs, and execute turns
it into job submissions and repository changes and reports an Outcome. A failing
action (a refused apk, a full disk, an unreachable job service) is logged and
reported; the others still run, and the next pass plans again from what is then
on disk. Facts that cannot be observed later (a refused result, a mirrored or
failed copy) are written to the daemon's memory for the next plan.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from reconciler.config.settings import Config
from reconciler.execute.images import ImageStore
from reconciler.execute.mirror import MirrorError, push_repository
from reconciler.execute.repos import RefusedError, RepoStore
from reconciler.fs.atomicfile import is_no_space
from reconciler.fs.crashpoint import crashpoint
from reconciler.jobs.images import image_job, image_note, image_script_for
from reconciler.jobs.indexes import IndexSource
from reconciler.jobs.scripts import build_script, sign_script
from reconciler.jobs.service import JobExistsError, JobService, JobSpec
from reconciler.memory.cache import Memory
from reconciler.model.errors import ReconcilerError, UnavailableError
from reconciler.model.layout import INDEX_NAME
from reconciler.model.names import RepoKey
from reconciler.plan.actions import (
    Action,
    CancelJob,
    CollectBuild,
    MirrorFinal,
    Outcome,
    PruneFinal,
    PruneImages,
    PruneWip,
    PublishFinal,
    PublishImage,
    ReindexWip,
    RemoveBranch,
    RemoveImages,
    SeedFromOrigin,
    SubmitBuild,
    SubmitImage,
    SubmitSign,
    WriteSymlinkRepo,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Executor:
    config: Config
    jobs: JobService
    store: RepoStore
    memory: Memory
    clock: Callable[[], float]
    images: ImageStore

    def apply(self, actions: Iterable[Action]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for action in actions:
            try:
                message = self._apply_one(action)
                outcomes.append(Outcome(action, True, message))
            except ReconcilerError as exc:  # refused input, a service out of reach
                log.error("%s: %s", type(action).__name__, exc)
                outcomes.append(Outcome(action, False, str(exc)))
            except Exception as exc:  # the per-action boundary: log, report, carry on
                if is_no_space(exc):  # said once per pass by the loop, not per action
                    outcomes.append(Outcome(action, False, f"{exc}", no_space=True))
                    continue
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
                    self.memory.reject(job.key.job_id, f"results refused: {exc}")
                    raise
                crashpoint("build-collected")
                return f"collected {', '.join(names)}"
            case SeedFromOrigin(repo=repo, origin=origin, filenames=names):
                self.store.seed_from_origin(repo, origin, names)
                return f"copied {len(names)} apk(s) from {origin} into WIP {repo}"
            case ReindexWip(repo=repo, apks=apks):
                self.store.reindex_wip(repo, apks, now)
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
                return self._submit_sign(action)
            case PublishFinal():
                return self._publish(action)
            case MirrorFinal(repo=repo, index_sha256=sha):
                return self._mirror(repo, sha, now)
            case CancelJob(key=key, why=why):
                self.jobs.cancel(key)
                return f"cancelled {key.job_id}: {why}"
            case PruneFinal(repo=repo, filenames=names):
                removed = self.store.prune_final(repo, names)
                return f"removed {len(removed)} unlisted apk(s) from final {repo}"
            case SubmitImage():
                return self._submit_image(action)
            case PublishImage() | PruneImages() | RemoveImages():
                return self._images_tree(action)
            case RemoveBranch(branch=branch, splitrepos=splitrepos, checkout=checkout, why=why):
                self.store.remove_branch(branch, splitrepos)
                if checkout:
                    shutil.rmtree(checkout, ignore_errors=True)
                return f"removed the repositories of {branch}: {why}"
        raise TypeError(f"unknown action {action!r}")

    def _images_tree(self, action: PublishImage | PruneImages | RemoveImages) -> str:
        """Publish into, prune or remove from the images tree."""
        match action:
            case PublishImage(job=job, image=image):
                try:
                    return self.images.publish(job, image)
                except RefusedError as exc:
                    self.memory.reject(job.key.job_id, f"image refused: {exc}")
                    raise
            case PruneImages(release=release, device=device, ui=ui, dates=dates, why=why):
                removed = self.images.prune(release, device, ui, dates, action.job_ids)
                where = f"{release}/{device}/{ui}"
                return f"removed {len(removed)} image(s) of {where}: {', '.join(removed)} ({why})"
            case RemoveImages(release=release, device=device, ui=ui, job_ids=job_ids, why=why):
                removed = self.images.remove(release, device, ui, job_ids)
                return f"removed {', '.join(removed) or 'nothing'} from the images tree ({why})"

    def _publish(self, action: PublishFinal) -> str:
        job, repo = action.job, action.repo
        signed = Path(job.artifacts_dir or "/nonexistent") / INDEX_NAME
        try:
            removed = self.store.publish(
                repo, signed, action.unsigned_sha256, action.replace, action.unlisted
            )
        except RefusedError as exc:
            self.memory.reject(job.key.job_id, str(exc))
            raise
        return f"published {repo}, removed {len(removed)} old apk(s)"

    def _mirror(self, repo: RepoKey, sha: str, now: float) -> str:
        try:
            push_repository(self.store.final_dir(repo), self.config.mirror.rsync, repo.relpath)
        except MirrorError as exc:
            self.memory.mark_mirror_failed(str(repo), now)
            raise MirrorError(f"mirror of {repo}: {exc}") from exc
        self.memory.mark_mirrored(str(repo), sha)
        return f"mirrored {repo}"

    def _submit_build(self, action: SubmitBuild) -> str:
        spec = action.spec
        keys = self.config.keys
        indexes = [
            IndexSource(
                (self.store.final_dir if index.final else self.store.wip_dir)(index.repo)
                / INDEX_NAME,
                keys.final_public if index.final else keys.wip_public,
                present=index.present,
                key_name=index.signer,
            )
            for index in action.indexes
        ]
        script, files = build_script(
            action.key,
            spec,
            self.config.builder,
            indexes,
            action.required,
            action.commit,
            action.pmaports,
        )
        note = f"build {spec.pkgname} {spec.version} for {spec.repo}, try {action.key.attempt}"
        self._submit(JobSpec(action.key, script, note, self.config.jobs.timeout_seconds, files))
        return f"submitted {action.key.job_id}"

    def _submit_sign(self, action: SubmitSign) -> str:
        key = action.key
        unsigned = self.store.unsigned_index(key.intent.repo)
        keys = self.config.keys
        script, files = sign_script(
            unsigned, key.intent.version, keys.final_private, keys.final_name
        )
        note = f"sign the index of {key.intent.repo}"
        self._submit(JobSpec(key, script, note, self.config.jobs.timeout_seconds, files))
        crashpoint("sign-submitted")
        return f"submitted sign job {key.job_id}"

    def _submit_image(self, action: SubmitImage) -> str:
        image = action.image
        index = self.store.final_dir(image.repo) / INDEX_NAME
        job = image_job(
            image,
            action.key.attempt,
            action.date_dir,
            str(index),
            key_name=self.config.keys.final_name,
            password=self.config.images.password,
        )
        try:
            public_key = self.config.keys.final_public.read_bytes()
        except OSError as exc:
            raise UnavailableError(f"cannot read {self.config.keys.final_public}: {exc}") from exc
        device = self.config.images.device(image.target.device)
        branch = next((b for b in self.config.branches if b.name == image.target.branch), None)
        script, files = image_script_for(
            self.config.builder,
            job,
            public_key,
            android_recovery_zip=bool(device and device.android_recovery_zip),
            pmaports=str(branch.pmaports) if branch is not None else "",
        )
        timeout = self.config.jobs.timeout_seconds
        self._submit(JobSpec(action.key, script, image_note(job), timeout, files))
        return f"submitted image job {action.key.job_id}"

    def _submit(self, spec: JobSpec) -> None:
        try:
            self.jobs.submit(spec)
        except JobExistsError:
            # The job service already holds it: the next listing shows it. Never resubmit.
            log.warning("job %s already exists; re-attaching", spec.key.job_id)
