"""The pmbootstrap build job (`builder.kind: pmbootstrap`): what it does, as a value and a script.

Owns what a real build does, the way bpo's build_package job does it:

* the WIP and final repositories the build may use become pmbootstrap mirrors
  (`mirrors.pmaports_custom` = WIP, searched first; `mirrors.pmaports` = final;
  `systemd_custom`/`systemd` for the systemd split repository), each the
  directory or URL to which pmbootstrap appends `<branch>/` and apk `<arch>/`;
  a WIP repository without an index yet is left out;
* the public key of every index is installed into `<work>/config_apk_keys/` under
  the name its signature carries (`.SIGN.RSA.<name>`), which pmbootstrap mounts as
  the chroots' /etc/apk/keys;
* `PMB_APK_FORCE_MISSING_REPOSITORIES=1` while the branch has no final index yet;
* `pmbootstrap build --no-depends --force [--strict] --arch ARCH PKG`, without
  `--strict` for `builder.strict_exclude` globs, run under the silence watchdog
  (`python -m reconciler.jobs.pmbootstrap watch`, see `silence`), which ends the
  build when it prints nothing for `builder.silence_timeout_seconds`;
* the apks the build wrote go to `artifacts/`, their sha256 and sha512 to the log.

Pure: `build_job` turns a package and what is known of its index sources into a
`PmbJob` (a value, kept in the job directory as `pmbootstrap.json`),
`render_script` writes the bash script. A job on builds.sr.ht renders the same
job with public URLs and guest paths (see sourcehut/manifest.py), so both run the
same steps.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from reconciler.config.builder import BuilderConfig
from reconciler.jobs.indexes import IndexSource
from reconciler.model.packages import PkgSpec

JOB_FILE = "pmbootstrap.json"
KNOWN_SPLITREPOS = frozenset({"systemd"})  # split repositories pmbootstrap has mirror keys for


@dataclass(frozen=True, slots=True)
class Mirror:
    """One repository as pmbootstrap sees it: `mirrors.<option>` = `location`."""

    option: str  # pmaports_custom, pmaports, systemd_custom or systemd
    location: str  # directory or URL, ending in "/"; pmbootstrap appends <branch>/
    key_file: str  # the public key that signed its index
    key_name: str  # file name apk looks the key up by; "" when there is no index
    present: bool  # its index exists


@dataclass(frozen=True, slots=True)
class PmbJob:
    pkgname: str
    arch: str
    branch: str
    strict: bool
    silence_timeout_seconds: float
    command: str  # the pmbootstrap executable
    aports: str  # the pmaports checkout ("" = pmbootstrap's configured one)
    mirrors: tuple[Mirror, ...]
    force_missing: bool  # no final index yet: PMB_APK_FORCE_MISSING_REPOSITORIES=1
    commit: str = ""  # the pmaports commit the desired state was read from

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> PmbJob:
        raw: dict[str, Any] = json.loads(data)
        mirrors = tuple(Mirror(**m) for m in raw.pop("mirrors"))
        return cls(**raw, mirrors=mirrors)


def is_strict(pkgname: str, builder: BuilderConfig) -> bool:
    return not any(fnmatch.fnmatchcase(pkgname, p) for p in builder.strict_exclude)


def build_job(
    spec: PkgSpec,
    builder: BuilderConfig,
    indexes: Sequence[IndexSource],
    commit: str = "",
    pmaports: str = "",
) -> PmbJob:
    """The job for `spec`; `indexes` come as (WIP, final) pairs, one per repository,
    in the order the build looks them up; `pmaports` is the branch's checkout."""
    mirrors: dict[str, Mirror] = {}
    force_missing = False
    for number, source in enumerate(indexes):
        final = number % 2 == 1
        base, split = mirror_base(source.url or source.path.as_posix())
        if split and split not in KNOWN_SPLITREPOS:
            continue
        option = (split or "pmaports") + ("" if final else "_custom")
        if final and not source.present:
            force_missing = True
        if option in mirrors or not (final or source.present):
            continue
        name = source.key_name if source.present else ""
        mirrors[option] = Mirror(option, base, str(source.public_key), name, source.present)
    return PmbJob(
        pkgname=spec.pkgname,
        arch=spec.repo.arch,
        branch=spec.repo.branch,
        strict=is_strict(spec.pkgname, builder),
        silence_timeout_seconds=builder.silence_timeout_seconds,
        command=builder.pmbootstrap,
        aports=pmaports,
        mirrors=tuple(sorted(mirrors.values(), key=lambda m: m.option)),
        force_missing=force_missing,
        commit=commit,
    )


def mirror_base(index: str) -> tuple[str, str]:
    """`<base>/<branch>/<arch>/APKINDEX.tar.gz` -> ("<base>/", split repo or "")."""
    parts = index.rstrip("/").split("/")
    base = parts[:-3]
    split = ""
    if "extra-repos" in base:
        at = len(base) - 1 - base[::-1].index("extra-repos")
        split = base[at + 1] if at + 1 < len(base) else ""
    return "/".join(base) + "/", split


def render_script(
    job: PmbJob,
    python: str = sys.executable,
    command: str | None = None,
    aports: str | None = None,
) -> str:
    """The bash script; `command` and `aports` are shell words (default: job's, quoted)."""
    q = shlex.quote
    pmb = command if command is not None else q(job.command)
    aports_word = aports if aports is not None else (q(job.aports) if job.aports else "")
    aports_args = f" --aports {aports_word}" if aports_word else ""
    set_options = {m.option for m in job.mirrors}
    lines = [
        "#!/bin/bash",
        f"# pmbootstrap build of {job.pkgname} for {job.branch}/{job.arch}",
        "set -eu",
        f'pmb() {{ {pmb}{aports_args} "$@"; }}',
        'work="$(pmb -q config work)"',
        'echo "pmbootstrap work directory: $work"',
        "# Repositories: WIP first (_custom), then final.",
    ]
    for mirror in job.mirrors:
        lines.append(f"pmb config mirrors.{mirror.option} {q(mirror.location)}")
    for option in ("pmaports_custom", "systemd_custom"):
        if option not in set_options:
            lines.append(f"pmb config -r mirrors.{option}")
    lines.append('mkdir -p "$work/config_apk_keys"')
    for mirror in job.mirrors:
        if mirror.key_name:
            target = f'"$work/config_apk_keys/"{q(mirror.key_name)}'
            lines.append(
                f"cp -- {q(mirror.key_file)} {target} || sudo cp -- {q(mirror.key_file)} {target}"
            )
            lines.append(
                f"echo {q(f'installed key {mirror.key_name} for mirrors.{mirror.option}')}"
            )
    if job.force_missing:
        lines.append("# The branch has no final index yet.")
        lines.append("export PMB_APK_FORCE_MISSING_REPOSITORIES=1")
    timeout = f"{job.silence_timeout_seconds:g}"
    build = ["build", "--no-depends", "--force"]
    if job.strict:
        build.append("--strict")
    build += ["--arch", job.arch, job.pkgname]
    lines += [
        "touch .build-started",
        f"{q(python)} -m reconciler.jobs.pmbootstrap watch {timeout} --"
        f" {pmb}{aports_args} --details-to-stdout --timeout {timeout}"
        f" {' '.join(q(a) for a in build)}",
        "# Every apk the build wrote (the package and its subpackages).",
        f'find "$work/packages" -type f -path {q(f"*/{job.arch}/*.apk")} -newer .build-started'
        " -exec cp -- {} artifacts/ \\;",
        "cd artifacts",
        'set -- *.apk\n[ -e "$1" ] || { echo "pmbootstrap wrote no .apk"; exit 1; }',
        'sha256sum -- "$@"',
        'sha512sum -- "$@"',
    ]
    return "\n".join(lines) + "\n"
