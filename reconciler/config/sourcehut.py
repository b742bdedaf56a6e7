"""The jobs.sourcehut section of the configuration: the builds.sr.ht account,
image, secrets, public URLs, the optional job-end callback and the uploads of
image jobs, read with every problem reported by line.

Also the uploads' shared names, used by the receiver that writes them
(`hooks.upload`) and the job service that hands them to the daemon and removes
them (`jobs.sourcehut`): `<paths.data>/uploads/<job id>/files/` holds a job's
finished files, `.../partial/` the ones still arriving, and one chunk is at most
`UPLOAD_CHUNK_BYTES` (the receiver's and nginx's body limit for the route).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from reconciler.config.reader import NodeReader
from reconciler.model.names import is_safe_name

UPLOADS_DIR = "uploads"  # below paths.data
UPLOAD_FILES_DIR = "files"  # a job's finished files: what the daemon checks and publishes
UPLOAD_PARTIAL_DIR = "partial"  # files still arriving, as `<total size>-<name>`
UPLOAD_CHUNK_BYTES = 16 * 1024 * 1024  # one PUT's body at most; deploy/nginx.conf: 16m


def uploads_root(data: Path) -> Path:
    """Where uploaded image results live: `<paths.data>/uploads`."""
    return data / UPLOADS_DIR


def upload_files_dir(root: Path, job_id: str) -> Path:
    """A job's finished uploads (the caller validated `job_id`)."""
    return root / job_id / UPLOAD_FILES_DIR


@dataclass(frozen=True, slots=True)
class SourcehutConfig:
    """The builds.sr.ht job service (jobs.service: sourcehut)."""

    user: str  # the account that owns the jobs (log links: <origin>/~<user>/job/<id>)
    token_file: Path  # personal access token; read at start, never logged
    final_key_secret: str  # UUID of the secret file holding the final private key
    reconciler_source: str  # git URL of reconciler, cloned into every job
    wip_url: str  # public URL of paths.wip_repo
    final_url: str  # public URL of paths.final_repo
    symlink_url: str  # public URL of paths.symlink_repo (sign jobs fetch the unsigned index)
    endpoint: str = "https://builds.sr.ht/query"
    image: str = "alpine/edge"
    packages: tuple[str, ...] = ("python3", "py3-cryptography")
    final_key_path: str = "~/.reconciler-final.rsa"  # where the secret file lands in the job
    tag: str = "reconciler"  # first tag of every job; jobs without it are not ours
    poll_interval_seconds: float = 15.0
    lookback_days: float = 7.0
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 60.0
    max_artifact_bytes: int = 2 * 1024**3
    # Optional job-end callback (README, "Building on builds.sr.ht"): the public URL of
    # /api/job-callback, the secret file holding its token and where it lands in the
    # job; and the public URL of /api/look-now for builds.sr.ht's failure webhook.
    callback_url: str = ""
    callback_secret: str = ""
    callback_token_path: str = "~/.reconciler-callback-token"
    look_now_url: str = ""
    # Image jobs upload their files to the receiver (README, "Building on
    # builds.sr.ht"): the public URL of /api/job-upload (needs callback_secret, whose
    # token authenticates the uploads) and the receiver's caps on what it keeps.
    upload_url: str = ""
    upload_max_file_bytes: int = 4 * 1024**3
    upload_max_job_bytes: int = 8 * 1024**3
    upload_max_total_bytes: int = 32 * 1024**3


_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_SH_NUMBERS = (
    "poll_interval_seconds",
    "lookback_days",
    "connect_timeout_seconds",
    "read_timeout_seconds",
)
_SH_URLS = ("reconciler_source", "wip_url", "final_url", "symlink_url")
_SH_OPTIONAL_URLS = ("callback_url", "look_now_url", "upload_url")
_SH_CAPS = ("upload_max_file_bytes", "upload_max_job_bytes", "upload_max_total_bytes")
_SH_STRINGS = ("image", "final_key_path", "callback_token_path")
_SH_KEYS = frozenset(
    {"endpoint", "user", "token_file", "packages", "final_key_secret", "tag", "max_artifact_bytes"}
    | {"callback_secret", *_SH_NUMBERS, *_SH_URLS, *_SH_OPTIONAL_URLS, *_SH_STRINGS, *_SH_CAPS}
)


def read_sourcehut(r: NodeReader, node: yaml.Node | None) -> SourcehutConfig | None:
    """The jobs.sourcehut section; when present, every account-specific key is required."""
    if node is None:
        return None
    m = r.mapping(node, "jobs.sourcehut", _SH_KEYS)
    w = "jobs.sourcehut."
    default = {f.name: f.default for f in fields(SourcehutConfig)}

    def url(name: str, fallback: str | None = None) -> str:
        value = r.string(m.get(name), w + name, fallback)
        optional_and_unset = fallback == "" and value == ""
        if (
            value is not None
            and not optional_and_unset
            and not value.startswith(("http://", "https://"))
        ):
            r.error(m.get(name), f"{w}{name}: expected an http:// or https:// URL")
        return (value or "").rstrip("/")

    user = (r.string(m.get("user"), w + "user", None) or "").removeprefix("~")
    if user and not is_safe_name(user):
        r.error(m.get("user"), f"{w}user: {user!r} is not a sourcehut user name")
    secret = r.string(m.get("final_key_secret"), w + "final_key_secret", None) or ""
    if secret and not _UUID_RE.fullmatch(secret):
        r.error(m.get("final_key_secret"), f"{w}final_key_secret: expected a secret's UUID")
    callback_secret = r.string(m.get("callback_secret"), w + "callback_secret", "")
    if callback_secret and not _UUID_RE.fullmatch(callback_secret):
        r.error(m.get("callback_secret"), f"{w}callback_secret: expected a secret's UUID")
    optional: dict[str, Any] = {n: url(n, "") for n in _SH_OPTIONAL_URLS}
    for name in ("callback_url", "upload_url"):
        if optional[name] and not callback_secret:
            r.error(m.get(name), f"{w}{name}: needs callback_secret (its token)")
    caps = _upload_caps(r, m)
    tag = r.string(m.get("tag"), w + "tag", "reconciler")
    if not is_safe_name(tag):
        r.error(m.get("tag"), f"{w}tag: {tag!r} must be a plain name (no '/')")
    packages = r.str_list(m.get("packages"), w + "packages", ["python3", "py3-cryptography"])
    max_bytes = r.integer(
        m.get("max_artifact_bytes"), w + "max_artifact_bytes", 2 * 1024**3, minimum=1024
    )
    token_file: Path | None = r.path(m.get("token_file"), w + "token_file", None)
    values: dict[str, Any] = {n: url(n) for n in _SH_URLS}
    values |= {n: r.string(m.get(n), w + n, str(default[n])) for n in _SH_STRINGS}
    values |= {n: r.number(m.get(n), w + n, float(str(default[n]))) for n in _SH_NUMBERS}
    return SourcehutConfig(
        user=user,
        token_file=token_file or Path("/nonexistent"),
        final_key_secret=secret,
        endpoint=url("endpoint", str(default["endpoint"])),
        packages=tuple(packages),
        tag=tag,
        max_artifact_bytes=max_bytes,
        callback_secret=callback_secret,
        **optional,
        **caps,
        **values,
    )


def _upload_caps(r: NodeReader, m: dict[str, yaml.Node]) -> dict[str, Any]:
    """The receiver's upload caps: at least a chunk each, file <= job <= total."""
    w = "jobs.sourcehut."
    default = {f.name: f.default for f in fields(SourcehutConfig)}
    caps: dict[str, Any] = {
        n: r.integer(m.get(n), w + n, int(str(default[n])), minimum=UPLOAD_CHUNK_BYTES)
        for n in _SH_CAPS
    }
    if not caps[_SH_CAPS[0]] <= caps[_SH_CAPS[1]] <= caps[_SH_CAPS[2]]:
        r.error(m.get(_SH_CAPS[1]), f"{w}upload caps: expected {' <= '.join(_SH_CAPS)}")
    return caps
