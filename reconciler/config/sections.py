"""The configuration's smaller sections: paths (images included), jobs, retries, loop, keys, site,
mirror, inputs and retention, each a frozen dataclass with its defaults and its
reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from reconciler.config.reader import NodeReader
from reconciler.config.sourcehut import SourcehutConfig, read_sourcehut
from reconciler.model.names import is_safe_name

# A user name as useradd takes it (what reaches sudo's command line).
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


@dataclass(frozen=True, slots=True)
class PathsConfig:
    data: Path
    html_out: Path
    final_repo: Path
    wip_repo: Path
    symlink_repo: Path
    jobs: Path
    triggers: Path
    state: Path  # caches: deleting it costs a full re-read, nothing else
    durable: Path  # operators' decisions and tokens: never deleted with the caches
    images: Path  # the published device images (served as the images site)


@dataclass(frozen=True, slots=True)
class JobsConfig:
    service: str = "local"
    max_parallel: int = 2
    timeout_seconds: float = 3 * 3600
    sourcehut: SourcehutConfig | None = None
    # Local build jobs run as this user (through sudo), so they cannot read the
    # keys; "" runs them as the daemon's user.
    build_user: str = ""


@dataclass(frozen=True, slots=True)
class RetryConfig:
    max_tries: int = 3
    backoff_seconds: float = 60.0
    backoff_max_seconds: float = 3600.0


@dataclass(frozen=True, slots=True)
class LoopConfig:
    resync_interval_seconds: float = 300.0
    poll_interval_seconds: float = 5.0
    settle_seconds: float = 0.2


@dataclass(frozen=True, slots=True)
class KeysConfig:
    wip_private: Path
    final_public: Path
    final_private: Path  # handed to sign jobs only; the daemon never opens it
    final_name: str = "reconciler-local.rsa.pub"
    # Make missing keys at start: the WIP pair always may be made; the final pair
    # only for local jobs (a sourcehut setup holds its private key elsewhere).
    generate_missing: bool = True

    @property
    def wip_public(self) -> Path:
        return self.wip_private.with_name(self.wip_private.name + ".pub")


@dataclass(frozen=True, slots=True)
class SiteConfig:
    url: str = "http://localhost:8080/"
    title: str = "reconciler"
    monitoring_max_failures: int = 10
    monitoring_footer: str = ""
    # A commit's web page, "{commit}" standing for its hash ("": commits are not links).
    commit_url: str = ""


@dataclass(frozen=True, slots=True)
class MirrorConfig:
    rsync: str = ""  # e.g. rsync://mirror.example.org/postmarketos/ ("" = no mirror)
    retry_seconds: float = 60.0  # wait after a failed transfer before the next try

    @property
    def enabled(self) -> bool:
        return bool(self.rsync)


@dataclass(frozen=True, slots=True)
class InputsConfig:
    """Limits on what is read from a pmaports tree."""

    max_apkbuild_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """How long, and up to how much, history is kept on disk: whatever is older
    than its days or beyond its size (oldest first) is deleted."""

    trigger_days: float = 30.0  # processed/ and rejected/ trigger files
    trigger_max_files: int = 10_000  # in each of the two
    event_days: float = 180.0  # events.jsonl lines
    event_max_bytes: int = 32 * 1024 * 1024
    job_days: float = 30.0  # finished local job directories (log, artifacts)
    job_max_bytes: int = 20 * 1024**3
    log_days: float = 30.0  # the site's copies of job logs (those still shown stay)
    log_max_bytes: int = 2 * 1024**3


def read_paths(r: NodeReader, node: yaml.Node | None) -> PathsConfig:
    names = {"data", "html_out", "final_repo", "wip_repo", "symlink_repo", "jobs", "triggers"}
    p = r.mapping(node, "paths", names | {"state", "durable", "images"})
    data = r.path(p.get("data"), "paths.data", Path("_data"))
    return PathsConfig(
        data=data,
        html_out=r.path(p.get("html_out"), "paths.html_out", Path("_html_out")),
        final_repo=r.path(p.get("final_repo"), "paths.final_repo", data / "repo" / "final"),
        wip_repo=r.path(p.get("wip_repo"), "paths.wip_repo", data / "repo" / "wip"),
        symlink_repo=r.path(p.get("symlink_repo"), "paths.symlink_repo", data / "repo" / "symlink"),
        jobs=r.path(p.get("jobs"), "paths.jobs", data / "jobs"),
        triggers=r.path(p.get("triggers"), "paths.triggers", data / "triggers"),
        state=r.path(p.get("state"), "paths.state", data / "state"),
        durable=r.path(p.get("durable"), "paths.durable", data / "durable"),
        images=r.path(p.get("images"), "paths.images", data / "images"),
    )


def read_jobs(r: NodeReader, node: yaml.Node | None) -> JobsConfig:
    j = r.mapping(
        node, "jobs", {"service", "max_parallel", "timeout_seconds", "sourcehut", "build_user"}
    )
    service = r.choice(j.get("service"), "jobs.service", "local", ("local", "sourcehut"))
    if service == "sourcehut" and j.get("sourcehut") is None:
        r.error(j.get("service"), "jobs.sourcehut: missing, required with jobs.service: sourcehut")
    build_user = r.string(j.get("build_user"), "jobs.build_user", "")
    if build_user and not _USER_RE.fullmatch(build_user):
        r.error(j.get("build_user"), f"jobs.build_user: {build_user!r} is not a user name")
        build_user = ""
    if build_user and service != "local":
        r.error(j.get("build_user"), "jobs.build_user: only for jobs.service: local")
    return JobsConfig(
        service=service,
        max_parallel=r.integer(j.get("max_parallel"), "jobs.max_parallel", 2, minimum=1),
        timeout_seconds=r.number(j.get("timeout_seconds"), "jobs.timeout_seconds", 10800.0),
        sourcehut=read_sourcehut(r, j.get("sourcehut")),
        build_user=build_user,
    )


def read_retries(r: NodeReader, node: yaml.Node | None) -> RetryConfig:
    t = r.mapping(node, "retries", {"max_tries", "backoff_seconds", "backoff_max_seconds"})
    return RetryConfig(
        max_tries=r.integer(t.get("max_tries"), "retries.max_tries", 3, minimum=1),
        backoff_seconds=r.number(t.get("backoff_seconds"), "retries.backoff_seconds", 60.0),
        backoff_max_seconds=r.number(
            t.get("backoff_max_seconds"), "retries.backoff_max_seconds", 3600.0
        ),
    )


def read_loop(r: NodeReader, node: yaml.Node | None) -> LoopConfig:
    lp = r.mapping(
        node, "loop", {"resync_interval_seconds", "poll_interval_seconds", "settle_seconds"}
    )
    return LoopConfig(
        resync_interval_seconds=r.number(
            lp.get("resync_interval_seconds"), "loop.resync_interval_seconds", 300.0
        ),
        poll_interval_seconds=r.number(
            lp.get("poll_interval_seconds"), "loop.poll_interval_seconds", 5.0
        ),
        settle_seconds=r.number(lp.get("settle_seconds"), "loop.settle_seconds", 0.2),
    )


def read_keys(
    r: NodeReader, node: yaml.Node | None, data: Path, where: yaml.Node | None, service: str
) -> KeysConfig:
    """The keys section; key files default to `<data>/keys/`, `where` is the node
    an error about a missing final_name points at. `generate_missing` defaults to
    true for local jobs only, and is refused for another job service: there the
    final private key lives with the signer, and a key made here would replace
    the public key every client trusts."""
    k = r.mapping(
        node,
        "keys",
        {"wip_private", "final_public", "final_private", "final_name", "generate_missing"},
    )
    keys_dir = data / "keys"
    final_name = r.string(k.get("final_name"), "keys.final_name", "reconciler-local.rsa.pub")
    if not (is_safe_name(final_name) and final_name.endswith(".pub")):
        r.error(k.get("final_name") or where, "keys.final_name: expected a file name ending .pub")
    return KeysConfig(
        wip_private=r.path(k.get("wip_private"), "keys.wip_private", keys_dir / "wip.rsa"),
        final_public=r.path(k.get("final_public"), "keys.final_public", keys_dir / "final.rsa.pub"),
        final_private=r.path(k.get("final_private"), "keys.final_private", keys_dir / "final.rsa"),
        final_name=final_name,
        generate_missing=_generate_missing(r, k.get("generate_missing"), service),
    )


def _generate_missing(r: NodeReader, node: yaml.Node | None, service: str) -> bool:
    local = service == "local"
    generate = r.boolean(node, "keys.generate_missing", local)
    if generate and not local:
        r.error(
            node,
            f"keys.generate_missing: must be false with jobs.service: {service}"
            " (the final key pair is made once, with the signer, never by the daemon)",
        )
        return False
    return generate


def read_site(r: NodeReader, node: yaml.Node | None) -> SiteConfig:
    s = r.mapping(
        node,
        "site",
        {"url", "title", "monitoring_max_failures", "monitoring_footer", "commit_url"},
    )
    commit_url = r.string(s.get("commit_url"), "site.commit_url", "")
    if commit_url and (
        "{commit}" not in commit_url or not commit_url.startswith(("https://", "http://"))
    ):
        r.error(
            s.get("commit_url"),
            "site.commit_url: expected an http(s) URL with {commit} where the hash goes",
        )
        commit_url = ""
    return SiteConfig(
        url=r.string(s.get("url"), "site.url", "http://localhost:8080/"),
        title=r.string(s.get("title"), "site.title", "reconciler"),
        monitoring_max_failures=r.integer(
            s.get("monitoring_max_failures"), "site.monitoring_max_failures", 10, minimum=1
        ),
        monitoring_footer=r.string(s.get("monitoring_footer"), "site.monitoring_footer", ""),
        commit_url=commit_url,
    )


def read_mirror(r: NodeReader, node: yaml.Node | None) -> MirrorConfig:
    m = r.mapping(node, "mirror", {"rsync", "retry_seconds"})
    target = r.string(m.get("rsync"), "mirror.rsync", "")
    if target and (target.startswith("-") or "\n" in target or "\x00" in target):
        r.error(m.get("rsync"), "mirror.rsync: expected an rsync destination")
        target = ""
    return MirrorConfig(
        rsync=target.rstrip("/") + "/" if target else "",
        retry_seconds=r.number(m.get("retry_seconds"), "mirror.retry_seconds", 60.0),
    )


def read_inputs(r: NodeReader, node: yaml.Node | None) -> InputsConfig:
    i = r.mapping(node, "inputs", {"max_apkbuild_bytes"})
    return InputsConfig(
        max_apkbuild_bytes=r.integer(
            i.get("max_apkbuild_bytes"), "inputs.max_apkbuild_bytes", 1024 * 1024, minimum=1024
        )
    )


def read_retention(r: NodeReader, node: yaml.Node | None) -> RetentionConfig:
    d = RetentionConfig()
    t = r.mapping(node, "retention", set(RetentionConfig.__dataclass_fields__))

    def days(name: str, default: float) -> float:
        return r.number(t.get(name), f"retention.{name}", default)

    def amount(name: str, default: int) -> int:
        return r.integer(t.get(name), f"retention.{name}", default, minimum=1)

    return RetentionConfig(
        trigger_days=days("trigger_days", d.trigger_days),
        trigger_max_files=amount("trigger_max_files", d.trigger_max_files),
        event_days=days("event_days", d.event_days),
        event_max_bytes=amount("event_max_bytes", d.event_max_bytes),
        job_days=days("job_days", d.job_days),
        job_max_bytes=amount("job_max_bytes", d.job_max_bytes),
        log_days=days("log_days", d.log_days),
        log_max_bytes=amount("log_max_bytes", d.log_max_bytes),
    )
