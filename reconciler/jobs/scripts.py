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
from collections.abc import Sequence
from pathlib import Path

from reconciler.config.builder import BuilderConfig
from reconciler.jobs import pmbootstrap_build
from reconciler.jobs.indexes import IndexSource
from reconciler.model.jobs import JobKey
from reconciler.model.layout import INDEX_NAME, UNSIGNED_INDEX_NAME
from reconciler.model.names import RepoKey
from reconciler.model.packages import PkgSpec


def build_script(
    key: JobKey,
    spec: PkgSpec,
    builder: BuilderConfig,
    indexes: Sequence[IndexSource],
    required: tuple[tuple[str, str], ...],
    commit: str,
    pmaports: str = "",
    python: str = sys.executable,
) -> tuple[str, dict[str, bytes]]:
    """Script and inputs of a build job; `pmaports` is the branch's checkout, `python`
    runs reconciler's modules in the job."""
    if builder.kind == "pmbootstrap":
        job = pmbootstrap_build.build_job(spec, builder, indexes, commit, pmaports)
        script = pmbootstrap_build.render_script(job, python)
        return script, {pmbootstrap_build.JOB_FILE: job.to_json()}
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
                "arch": spec.arch_of(s),
                "description": s.description,
                "depends": list(s.depends),
                "provides": list(s.provides),
            }
            for s in spec.subpackages
        ],
        "indexes": [i.as_input() for i in indexes],
        "required": [list(r) for r in required],
        "duration_seconds": builder.duration_seconds,
        "fail": should_fail(builder, spec.repo, spec.pkgname),
        "attempt": key.attempt,
    }
    return synthetic_script(python), {"build.json": json.dumps(job_input, indent=1).encode()}


def synthetic_script(python: str = sys.executable) -> str:
    """The synthetic build's script: reads build.json, writes apks into artifacts/."""
    return (
        "#!/bin/bash\n"
        "# Synthetic build: writes real apk files for the package, compiles nothing.\n"
        "set -eu\n"
        f"exec {shlex.quote(python)} -m reconciler.synthetic build.json artifacts\n"
    )


def should_fail(builder: BuilderConfig, repo: RepoKey, pkgname: str) -> bool:
    """The synthetic builder's failure switch: `pkgname` or `branch/arch/pkgname` globs."""
    names = (pkgname, f"{repo.branch}/{repo.arch}/{pkgname}")
    return any(fnmatch.fnmatchcase(n, pattern) for pattern in builder.fail for n in names)


def sign_script(
    unsigned: bytes, sha256: str, final_key: Path, key_name: str
) -> tuple[str, dict[str, bytes]]:
    """Script and inputs of a sign job: the only job that is given the final key."""
    return _sign_command(sys.executable, sha256, str(final_key), key_name), {
        UNSIGNED_INDEX_NAME: unsigned
    }


def remote_sign_script(url: str, sha256: str, final_key: str, key_name: str, python: str) -> str:
    """A sign job that downloads the unsigned index over HTTP (size-limited) first.

    The signer still refuses any bytes without the expected sha256, so whoever
    serves the URL cannot get anything else signed.
    """
    fetch = (
        f"{shlex.quote(python)} -m reconciler.synthetic fetch"
        f" {shlex.quote(url)} {UNSIGNED_INDEX_NAME} {MAX_INDEX_DOWNLOAD}\n"
    )
    return _sign_command(python, sha256, final_key, key_name, fetch)


# An unsigned index larger than this is not fetched by a sign job.
MAX_INDEX_DOWNLOAD = 64 * 1024 * 1024


def _sign_command(python: str, sha256: str, final_key: str, key_name: str, fetch: str = "") -> str:
    return (
        "#!/bin/bash\n"
        "# Sign the index it was given, and only if it has the expected sha256.\n"
        "set -eu\n"
        f"{fetch}"
        f"exec {shlex.quote(python)} -m reconciler.signer"
        f" --unsigned {UNSIGNED_INDEX_NAME} --sha256 {shlex.quote(sha256)}"
        f" --key {shlex.quote(final_key)} --key-name {shlex.quote(key_name)}"
        f" --out artifacts/{INDEX_NAME}\n"
    )
