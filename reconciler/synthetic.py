"""The synthetic builder: runs inside a build job and writes real apks, compiling nothing.

It behaves like a strict build: it checks the signature of every index it was
given (the WIP index with the WIP public key, final with the final key), fails
when an internal build dependency is missing from them at its desired version,
then writes one real apk v2 file per package and subpackage (complete .PKGINFO,
datahash, per-file checksums). Its duration and a failure switch come from the
job input, so tests can kill the daemon mid-build or make a package fail.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from .apk import build_apk
from .apkindex import parse_index_text, read_index_archive, verify_index
from .atomicfile import write_bytes
from .keys import SignatureError, load_public_key


class BuildFailure(Exception):
    pass


def available_packages(indexes: list[dict[str, str]]) -> set[tuple[str, str]]:
    """(name, version) pairs, including versioned provides, of every verified index."""
    found: set[tuple[str, str]] = set()
    for source in indexes:
        path = Path(source["path"])
        if not path.exists():
            print(f"index {path} does not exist (yet), skipping it")
            continue
        data = path.read_bytes()
        try:
            key_name = verify_index(data, load_public_key(Path(source["public_key"])), str(path))
        except SignatureError as exc:
            raise BuildFailure(f"index {path} is not trusted: {exc}") from exc
        print(f"index {path}: signature by {key_name} OK")
        archive = read_index_archive(data, str(path))
        for entry in parse_index_text(archive.text, str(path)):
            found.add((entry.pkgname, entry.version))
            for provide in entry.provides:
                name, _, version = provide.partition("=")
                if version:
                    found.add((name, version))
    return found


def build(job: dict[str, Any], out: Path) -> None:
    time.sleep(float(job.get("duration_seconds", 0)))
    if job.get("fail"):
        raise BuildFailure(f"{job['pkgname']}: failing on purpose (builder.fail in the config)")
    available = available_packages(job["indexes"])
    missing = [f"{n}={v}" for n, v in job["required"] if (n, v) not in available]
    if missing:
        raise BuildFailure("missing build dependencies: " + ", ".join(missing))
    builddate = int(time.time())
    packages = [
        {
            "name": job["pkgname"],
            "arch": job["pkgarch"],
            "description": job["description"],
            "depends": job["depends"],
            "provides": job["provides"],
        },
        *job["subpackages"],
    ]
    for pkg in packages:
        content = f"{pkg['name']} {job['version']} built by the reconciler synthetic builder\n"
        data = build_apk(
            pkgname=pkg["name"],
            version=job["version"],
            arch=pkg["arch"],
            origin=job["pkgname"],
            description=pkg["description"],
            url=job["url"],
            license=job["license"],
            maintainer=job["maintainer"],
            commit=job["commit"],
            depends=tuple(pkg["depends"]),
            provides=tuple(pkg["provides"]),
            packager="reconciler synthetic builder",
            builddate=builddate,
            files={f"usr/share/reconciler-synthetic/{pkg['name']}": content.encode()},
        )
        target = out / f"{pkg['name']}-{job['version']}.apk"
        write_bytes(target, data)
        print(f"wrote {target.name} ({len(data)} bytes)")


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    out = Path(sys.argv[2])
    what = f"{job['pkgname']} {job['version']} for {job['repo']}"
    print(f"synthetic build of {what}, try {job['attempt']}")
    try:
        build(job, out)
    except BuildFailure as exc:
        print(f"ERROR: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
