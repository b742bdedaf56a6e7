"""The image job's script and input files: what the daemon submits to build one
device image.

Pure: given the desired image, the date directory the daemon chose, where the
final index of the image's branch and arch is and the final public key, return
the bash script and the files placed beside it (`image.json`, the key).
`image_script_for` picks the builder by `builder.kind`: `synthetic` runs
`reconciler.jobs.image_synthetic` by its stable entry point `python -m
reconciler.synthetic_image image.json artifacts`; `pmbootstrap` runs
`pmbootstrap install` as bpo does (`jobs.pmbootstrap_image`), with the final
repositories of the image's index as its mirror.

`image.json` holds an `ImageJob`: the target, arch, date directory, release,
pretty names, UI version, the names to install, the names the branch's tree
provides (they must come from the index; others are Alpine's), the index (a
local path, or a URL a remote job fetches), the expected signing key name, the
apk version rules and the install password (what pmbootstrap's `install
--password` would get).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.config.builder import BuilderConfig
from reconciler.jobs import pmbootstrap_image
from reconciler.jobs.pmbootstrap_build import mirror_base
from reconciler.model.errors import InputError
from reconciler.model.images import (
    DesiredImage,
    ImageTarget,
    file_prefix,
    file_stem,
    is_image_name,
    is_release_name,
    is_slot_name,
)
from reconciler.model.jobs import JobKey
from reconciler.model.names import is_safe_arch, is_safe_name

JOB_FILE = "image.json"
KEY_FILE = "final.rsa.pub"  # the final public key, beside the script
ARTIFACTS = "artifacts"
ENTRY_POINT = "reconciler.synthetic_image"


class ImageJobError(InputError):
    """An image job's input is not what a job can run."""


@dataclass(frozen=True, slots=True)
class ImageJob:
    """Everything one image job needs, as written to `image.json`."""

    target: ImageTarget
    arch: str
    attempt: int
    date_dir: str  # YYYYMMDD-HHMM, chosen by the daemon when it submits
    release: str
    device_pretty: str
    ui_pretty: str
    ui_version: str
    packages: tuple[str, ...]  # the names to install
    tree_names: tuple[str, ...]  # names the index must provide
    index_path: str  # the final APKINDEX.tar.gz of (branch, arch) on this machine
    index_url: str = ""  # a remote job fetches this instead
    key_name: str = ""  # the `.SIGN.RSA.<name>` that must verify ("" any)
    apk_version: str = "3.0"
    password: str = ""

    @property
    def key(self) -> JobKey:
        return JobKey(self.target.intent(self.arch), self.attempt)

    @property
    def stem(self) -> str:
        """What every file name of the image starts with (`model.images.image_stem`)."""
        t = self.target
        prefix = file_prefix(self.release, t.ui, self.ui_version, t.device)
        return file_stem(self.date_dir, prefix, t.kernel)

    def to_json(self) -> bytes:
        t = self.target
        data = {
            "target": {
                "branch": t.branch,
                "device": t.device,
                "ui": t.ui,
                "kernel": t.kernel,
                "slot": t.slot,
            },
            "arch": self.arch,
            "attempt": self.attempt,
            "date_dir": self.date_dir,
            "release": self.release,
            "device_pretty": self.device_pretty,
            "ui_pretty": self.ui_pretty,
            "ui_version": self.ui_version,
            "packages": list(self.packages),
            "tree_names": list(self.tree_names),
            "index_path": self.index_path,
            "index_url": self.index_url,
            "key_name": self.key_name,
            "apk_version": self.apk_version,
            "password": self.password,
        }
        return json.dumps(data, indent=1, sort_keys=True).encode()

    @staticmethod
    def from_json(data: bytes) -> ImageJob:
        """Read `image.json`; ImageJobError names the first field that is wrong."""
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ImageJobError(f"{JOB_FILE}: not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ImageJobError(f"{JOB_FILE}: expected an object")
        t = _get(raw, "target", dict)
        target = ImageTarget(
            _get(t, "branch", str),
            _get(t, "device", str),
            _get(t, "ui", str),
            _get(t, "kernel", str),
            _get(t, "slot", str),
        )
        try:
            target.check()
        except ValueError as exc:
            raise ImageJobError(f"{JOB_FILE}: target: {exc}") from exc
        job = ImageJob(
            target=target,
            arch=_get(raw, "arch", str),
            attempt=_get(raw, "attempt", int),
            date_dir=_get(raw, "date_dir", str),
            release=_get(raw, "release", str),
            device_pretty=_get(raw, "device_pretty", str),
            ui_pretty=_get(raw, "ui_pretty", str),
            ui_version=_get(raw, "ui_version", str),
            packages=_names(raw, "packages"),
            tree_names=_names(raw, "tree_names"),
            index_path=_get(raw, "index_path", str),
            index_url=_get(raw, "index_url", str),
            key_name=_get(raw, "key_name", str),
            apk_version=_get(raw, "apk_version", str),
            password=_get(raw, "password", str),
        )
        job.check()
        return job

    def check(self) -> None:
        """ImageJobError for a value that cannot reach a file name or a command."""
        checks = (
            ("arch", is_safe_arch(self.arch)),
            ("attempt", self.attempt >= 1),
            ("date_dir", is_slot_name(self.date_dir)),
            ("release", is_release_name(self.release)),
            ("ui_version", _is_version_part(self.ui_version)),
            ("packages", bool(self.packages) and all(map(is_safe_name, self.packages))),
            ("index_path", bool(self.index_path or self.index_url)),
            ("apk_version", self.apk_version in ("3.0", "2.14")),
        )
        for name, ok in checks:
            if not ok:
                raise ImageJobError(f"{JOB_FILE}: {name}: unusable value")
        if not is_image_name(self.target.device):
            raise ImageJobError(f"{JOB_FILE}: target.device: unusable value")


def _is_version_part(text: str) -> bool:
    """A pkgver as it may appear in a file name."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+~")
    return bool(text) and set(text) <= allowed and ".." not in text and len(text) <= 64


def _get(raw: Mapping[str, Any], name: str, kind: type[Any]) -> Any:
    value = raw.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ImageJobError(f"{JOB_FILE}: {name}: expected a {kind.__name__}")
    return value


def _names(raw: Mapping[str, Any], name: str) -> tuple[str, ...]:
    values = _get(raw, name, list)
    if not all(isinstance(v, str) for v in values):
        raise ImageJobError(f"{JOB_FILE}: {name}: expected a list of names")
    return tuple(values)


def image_job(
    image: DesiredImage,
    attempt: int,
    date_dir: str,
    index_path: str,
    *,
    index_url: str = "",
    key_name: str = "",
    apk_version: str = "3.0",
    password: str,
) -> ImageJob:
    """The job input for `image`, tried the `attempt`th time, dated `date_dir`."""
    job = ImageJob(
        target=image.target,
        arch=image.arch,
        attempt=attempt,
        date_dir=date_dir,
        release=image.release,
        device_pretty=image.device_pretty,
        ui_pretty=image.ui_pretty,
        ui_version=image.ui_version,
        packages=image.packages,
        tree_names=image.tree_names,
        index_path=index_path,
        index_url=index_url,
        key_name=key_name,
        apk_version=apk_version,
        password=password,
    )
    job.check()
    return job


def image_script(
    job: ImageJob, final_public_key: bytes, python: str = sys.executable
) -> tuple[str, dict[str, bytes]]:
    """Script and inputs of an image job; `python` runs reconciler's modules in the job."""
    script = (
        "#!/bin/bash\n"
        "# Synthetic image: resolves the packages of the image from the signed final\n"
        "# index and writes a small real image (xz), its package list and checksums.\n"
        "set -eu\n"
        f"exec {shlex.quote(python)} -m {ENTRY_POINT} {JOB_FILE} {ARTIFACTS}\n"
    )
    return script, {JOB_FILE: job.to_json(), KEY_FILE: final_public_key}


def image_script_for(
    builder: BuilderConfig,
    job: ImageJob,
    final_public_key: bytes,
    *,
    android_recovery_zip: bool = False,
    pmaports: str = "",
    python: str = sys.executable,
) -> tuple[str, dict[str, bytes]]:
    """Script and inputs of an image job, made by the builder `builder.kind` names.

    `synthetic`: `image_script`. `pmbootstrap`: `pmbootstrap install` of the
    device (see `jobs.pmbootstrap_image`), from the final repositories the
    job's index is in (`index_url` when set, else `index_path`), the final
    public key installed under `job.key_name` (required); `pmaports` is the
    branch's checkout ("" = pmbootstrap's own), `android_recovery_zip` the
    device's setting. ImageJobError when the job cannot make a safe script."""
    if builder.kind != "pmbootstrap":
        return image_script(job, final_public_key, python)
    pmb_job = pmbootstrap_image_job(
        job, builder, android_recovery_zip=android_recovery_zip, pmaports=pmaports
    )
    script = pmbootstrap_image.render_image_script(pmb_job, python)
    files = {
        JOB_FILE: job.to_json(),
        pmbootstrap_image.JOB_FILE: pmb_job.to_json(),
        KEY_FILE: final_public_key,
    }
    return script, files


def pmbootstrap_image_job(
    job: ImageJob,
    builder: BuilderConfig,
    *,
    android_recovery_zip: bool = False,
    pmaports: str = "",
) -> pmbootstrap_image.PmbImageJob:
    """The pmbootstrap job of an image job: one install, of the target's kernel."""
    if not job.key_name:
        raise ImageJobError(f"{JOB_FILE}: key_name: pmbootstrap needs the final key's name")
    mirror, split = mirror_base(job.index_url or job.index_path)
    if split or mirror == "/":
        raise ImageJobError(f"{JOB_FILE}: index: not a <root>/<branch>/<arch>/ index")
    pmb_job = pmbootstrap_image.PmbImageJob(
        device=job.target.device,
        ui=job.target.ui,
        branch=job.target.branch,
        arch=job.arch,
        images=(pmbootstrap_image.KernelImage(job.target.kernel, job.stem),),
        password=job.password,
        mirror=mirror,
        key_file=KEY_FILE,
        key_name=job.key_name,
        android_recovery_zip=android_recovery_zip,
        silence_timeout_seconds=builder.silence_timeout_seconds,
        command=builder.pmbootstrap,
        aports=pmaports,
    )
    try:
        pmb_job.check()
    except pmbootstrap_image.PmbImageError as exc:
        raise ImageJobError(str(exc)) from exc
    return pmb_job


def image_note(job: ImageJob) -> str:
    """The job's one-line description."""
    kernel = f" ({job.target.kernel})" if job.target.kernel else ""
    return (
        f"image {job.target.device}{kernel} {job.target.ui} for {job.target.branch}/{job.arch}"
        f" (slot {job.target.slot}), try {job.attempt}"
    )
