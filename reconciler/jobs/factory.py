"""Builds the configured job service: `local` (this machine) or `sourcehut` (builds.sr.ht).

The only place that reads the sourcehut token file. Everything else the services
need comes from the Config; the final private key is never read here (a sign job
on builds.sr.ht gets it as a sourcehut secret).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from reconciler.config.settings import Config
from reconciler.config.sourcehut import uploads_root
from reconciler.fs.retention import Limits
from reconciler.jobs.local import LocalJobService
from reconciler.jobs.service import JobService
from reconciler.jobs.sourcehut.client import GraphQLClient
from reconciler.jobs.sourcehut.manifest import ManifestSettings
from reconciler.jobs.sourcehut.service import SourcehutJobService, SourcehutSettings
from reconciler.model.errors import ConfigError


def make_job_service(
    config: Config,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> JobService:
    """The configured service; `sleep` is how builds.sr.ht retries wait (injected by
    tests, which do not wait)."""
    if config.jobs.service != "sourcehut":
        keep = config.retention
        limits = Limits(keep.job_days * 86400.0, max_bytes=keep.job_max_bytes)
        return LocalJobService(
            config.paths.jobs, config.paths.triggers, clock, limits, config.jobs.build_user
        )
    return _sourcehut_service(config, clock, sleep)


def _sourcehut_service(
    config: Config, clock: Callable[[], float], sleep: Callable[[float], None]
) -> SourcehutJobService:
    """The builds.sr.ht client, manifests and service its section describes."""
    sh = config.jobs.sourcehut
    if sh is None:
        raise ConfigError([f"{config.source}:1: jobs.sourcehut: missing"])
    try:
        token = sh.token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [f"{config.source}:1: jobs.sourcehut.token_file: cannot read {sh.token_file}: {exc}"]
        ) from exc
    if not token:
        raise ConfigError(
            [f"{config.source}:1: jobs.sourcehut.token_file {sh.token_file} is empty"]
        )
    client = GraphQLClient(
        sh.endpoint,
        token,
        timeout=(sh.connect_timeout_seconds, sh.read_timeout_seconds),
        sleep=sleep,
    )
    manifests = ManifestSettings(
        image=sh.image,
        packages=sh.packages,
        reconciler_source=sh.reconciler_source,
        final_key_secret=sh.final_key_secret,
        final_key_path=sh.final_key_path,
        final_key_name=config.keys.final_name,
        url_roots=((config.paths.wip_repo, sh.wip_url), (config.paths.final_repo, sh.final_url)),
        symlink_url=sh.symlink_url,
        tag=sh.tag,
        pmbootstrap_git=config.builder.pmbootstrap_git,
        pmbootstrap_branches=config.builder.pmbootstrap_branches,
        pmaports_git=tuple(
            (branch.name, config.builder.pmaports_git or _public_git(branch.remote))
            for branch in config.branches
        ),
        callback_url=sh.callback_url,
        callback_secret=sh.callback_secret,
        callback_token_path=sh.callback_token_path,
        look_now_url=sh.look_now_url,
        upload_url=sh.upload_url,
    )
    settings = SourcehutSettings(
        user=sh.user,
        tag=sh.tag,
        poll_interval_seconds=sh.poll_interval_seconds,
        lookback_seconds=sh.lookback_days * 86400,
        max_artifact_bytes=sh.max_artifact_bytes,
    )
    cache = config.paths.jobs / "sourcehut"
    uploads = uploads_root(config.paths.data) if sh.upload_url else None
    images = config.paths.images
    return SourcehutJobService(
        client, manifests, settings, cache, clock, uploads=uploads, images=images
    )


def _public_git(remote: str) -> str:
    """A branch's remote when a job on builds.sr.ht can clone it (an http(s) URL), else ""."""
    return remote if remote.startswith(("http://", "https://")) else ""
