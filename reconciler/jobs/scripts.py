"""The text of job scripts and their input files, for every kind of job.

Pure: given what a job must do, return the bash script and the files placed
beside it. Every value that reaches a script is quoted with shlex.quote; names
were validated before they got here, quoting is the second fence.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from ..config import BuilderConfig
from ..model import JobKey, PkgSpec, RepoKey

UNSIGNED_NAME = "APKINDEX.unsigned.tar.gz"
SIGNED_NAME = "APKINDEX.tar.gz"


@dataclass(frozen=True, slots=True)
class IndexSource:
    """An index a build may read, and the public key that must have signed it."""

    path: Path
    public_key: Path


def build_script(
    key: JobKey,
    spec: PkgSpec,
    builder: BuilderConfig,
    indexes: list[IndexSource],
    required: tuple[tuple[str, str], ...],
    commit: str,
) -> tuple[str, dict[str, bytes]]:
    """Script and inputs of a build job."""
    if builder.kind == "pmbootstrap":
        return _pmbootstrap_script(spec, builder), {}
    job_input = {
        "repo": str(spec.repo),
        "pkgname": spec.pkgname,
        "version": spec.version,
        "arch": spec.repo.arch,
        "pkgarch": spec.pkgarch,
        "description": spec.description,
        "url": spec.url,
        "license": spec.license,
        "maintainer": spec.maintainer,
        "commit": commit,
        "depends": list(spec.depends),
        "provides": list(spec.provides),
        "subpackages": [
            {
                "name": s.name,
                "arch": s.arch,
                "description": s.description,
                "depends": list(s.depends),
                "provides": list(s.provides),
            }
            for s in spec.subpackages
        ],
        "indexes": [{"path": str(i.path), "public_key": str(i.public_key)} for i in indexes],
        "required": [list(r) for r in required],
        "duration_seconds": builder.duration_seconds,
        "fail": should_fail(builder, spec.repo, spec.pkgname),
        "attempt": key.attempt,
    }
    script = (
        "#!/bin/bash\n"
        "# Synthetic build: writes real apk files for the package, compiles nothing.\n"
        "set -eu\n"
        f"exec {shlex.quote(sys.executable)} -m reconciler.synthetic build.json artifacts\n"
    )
    return script, {"build.json": json.dumps(job_input, indent=1).encode()}


def should_fail(builder: BuilderConfig, repo: RepoKey, pkgname: str) -> bool:
    """The synthetic builder's failure switch: `pkgname` or `branch/arch/pkgname` globs."""
    names = (pkgname, f"{repo.branch}/{repo.arch}/{pkgname}")
    return any(fnmatch.fnmatchcase(n, pattern) for pattern in builder.fail for n in names)


def _pmbootstrap_script(spec: PkgSpec, builder: BuilderConfig) -> str:
    strict = not any(fnmatch.fnmatchcase(spec.pkgname, p) for p in builder.strict_exclude)
    args = [builder.pmbootstrap, "build", "--no-depends", "--force"]
    if strict:
        args.append("--strict")
    args += ["--arch", spec.repo.arch, spec.pkgname]
    return (
        "#!/bin/bash\n"
        "set -eu\n"
        f"{' '.join(shlex.quote(a) for a in args)}\n"
        'work="$(pmbootstrap config work)"\n'
        f'cp "$work"/packages/*/{shlex.quote(spec.repo.arch)}/*.apk artifacts/\n'
        "sha512sum artifacts/*.apk\n"
    )


def sign_script(
    unsigned: bytes, sha256: str, final_key: Path, key_name: str
) -> tuple[str, dict[str, bytes]]:
    """Script and inputs of a sign job: the only job that is given the final key."""
    script = (
        "#!/bin/bash\n"
        "# Sign the index it was given, and only if it has the expected sha256.\n"
        "set -eu\n"
        f"exec {shlex.quote(sys.executable)} -m reconciler.signer"
        f" --unsigned {UNSIGNED_NAME} --sha256 {shlex.quote(sha256)}"
        f" --key {shlex.quote(str(final_key))} --key-name {shlex.quote(key_name)}"
        f" --out artifacts/{SIGNED_NAME}\n"
    )
    return script, {UNSIGNED_NAME: unsigned}
