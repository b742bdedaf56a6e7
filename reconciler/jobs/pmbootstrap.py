"""The pmbootstrap build job (`builder.kind: pmbootstrap`): its script, and the watchdog in it.

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
  `--strict` for `builder.strict_exclude` globs, run under `watch` (this module
  run with `python -m`), which ends the build when it prints nothing for
  `builder.silence_timeout_seconds`;
* the apks the build wrote go to `artifacts/`, their sha256 and sha512 to the log.

`plan_job` turns a package and its index sources into a `PmbJob` (a value, kept
in the job directory as `pmbootstrap.json`), `render_script` writes the bash
script. A job on builds.sr.ht renders the same job with public URLs and guest
paths (see manifest.py), so both run the same steps.
"""

from __future__ import annotations

import fnmatch
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reconciler.config.settings import BuilderConfig
from reconciler.model.packages import PkgSpec

JOB_FILE = "pmbootstrap.json"
SILENCE_EXIT = 124  # like timeout(1)
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


def plan_job(
    spec: PkgSpec, builder: BuilderConfig, indexes: list[tuple[Path, Path, str]], commit: str = ""
) -> PmbJob:
    """The job for `spec`; `indexes` are (index path, public key, url) as (WIP, final) pairs.

    The pairs are in the order execute lists a build's repositories: each
    repository's WIP index, then its final index.
    """
    mirrors: dict[str, Mirror] = {}
    force_missing = False
    for number, (path, public_key, url) in enumerate(indexes):
        final = number % 2 == 1
        base, split = mirror_base(url or path.as_posix())
        if split and split not in KNOWN_SPLITREPOS:
            continue
        option = (split or "pmaports") + ("" if final else "_custom")
        present = path.is_file()
        if final and not present:
            force_missing = True
        if option in mirrors or not (final or present):
            continue
        name = signer_name(path) if present else ""
        mirrors[option] = Mirror(option, base, str(public_key), name, present)
    aports = dict((b, str(p)) for b, p, _ in builder.pmaports).get(spec.repo.branch, "")
    return PmbJob(
        pkgname=spec.pkgname,
        arch=spec.repo.arch,
        branch=spec.repo.branch,
        strict=is_strict(spec.pkgname, builder),
        silence_timeout_seconds=builder.silence_timeout_seconds,
        command=builder.pmbootstrap,
        aports=aports,
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


def signer_name(index: Path) -> str:
    """The key name in an index's `.SIGN.RSA.<name>` member ("" when unreadable)."""
    try:
        with tarfile.open(index, "r:gz") as tar:
            first = tar.next()
    except (OSError, tarfile.TarError, EOFError):
        return ""
    if first is None:
        return ""
    name = first.name.rpartition(".SIGN.RSA.")[2] if ".SIGN.RSA." in first.name else ""
    return name if name and "/" not in name and not name.startswith(".") else ""


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


# --- the watchdog, run inside the job ------------------------------------------------


def watch(seconds: float, argv: list[str]) -> int:
    """Run argv with its output passed through; stop it after `seconds` of silence."""
    out = sys.stdout.buffer
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
    except OSError as exc:
        print(f"reconciler: cannot run {argv[0]}: {exc}", flush=True)
        return 127
    assert proc.stdout is not None

    def stop(signum: int, _frame: object) -> None:  # cancel or timeout of the job
        _kill_group(proc)
        sys.exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    fd = proc.stdout.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], seconds)
        if not ready:
            out.flush()
            print(
                f"\nreconciler: silence timeout: the build printed nothing for {seconds:g} s;"
                " stopping it",
                flush=True,
            )
            _kill_group(proc)
            return SILENCE_EXIT
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        out.write(chunk)
        out.flush()
    return proc.wait()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for signum, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 4 or args[0] != "watch" or args[2] != "--":
        print("usage: python -m reconciler.jobs.pmbootstrap watch SECONDS -- COMMAND...")
        return 2
    try:
        seconds = float(args[1])
    except ValueError:
        print(f"watch: {args[1]!r} is not a number of seconds")
        return 2
    return watch(seconds, args[3:])


if __name__ == "__main__":
    sys.exit(main())
