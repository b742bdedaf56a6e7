"""The synthetic builder: runs inside a build job and writes real apks, compiling nothing.

It behaves like a strict build: it checks the signature of every index it was
given (the WIP index with the WIP public key, final with the final key), fails
when an internal build dependency is missing from them at its desired version,
then writes one real apk v2 file per package and subpackage (complete .PKGINFO,
datahash, per-file checksums). Its duration and a failure switch come from the
job input, so tests can kill the daemon mid-build or make a package fail.
An index is a local path or, in a remote job, a URL fetched with a size limit;
`python -m reconciler.synthetic fetch URL FILE MAX_BYTES` is that download alone.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from reconciler.formats.apkindex import parse_index_text, read_index_archive, verify_index
from reconciler.formats.apkwrite import build_apk
from reconciler.formats.keys import SignatureError
from reconciler.fs.atomicfile import write_bytes
from reconciler.fs.keyfiles import load_public_key
from reconciler.model.errors import ReconcilerError

MAX_INDEX_BYTES = 64 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 60.0


class BuildFailure(ReconcilerError):
    pass


def fetch(url: str, max_bytes: int, timeout: float = FETCH_TIMEOUT_SECONDS) -> bytes | None:
    """GET `url` over HTTP(S); None when it does not exist (404). Refuses more than max_bytes."""
    if not url.startswith(("http://", "https://")):
        raise BuildFailure(f"{url}: only http:// and https:// URLs are fetched")
    # Imported here: local builds read indexes from disk, and urllib.request (with
    # http.client and email) was a quarter of every build process's start-up.
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data: bytes = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise BuildFailure(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise BuildFailure(f"{url}: {exc}") from exc
    if len(data) > max_bytes:
        raise BuildFailure(f"{url}: larger than {max_bytes} bytes")
    return data


def _read_index(source: dict[str, str]) -> tuple[str, bytes | None]:
    """(name, bytes) of an index source; bytes None when it does not exist yet."""
    if source.get("url"):
        return source["url"], fetch(source["url"], MAX_INDEX_BYTES)
    path = Path(source["path"])
    return str(path), path.read_bytes() if path.exists() else None


def available_packages(indexes: list[dict[str, str]]) -> set[tuple[str, str]]:
    """(name, version) pairs, including versioned provides, of every verified index."""
    found: set[tuple[str, str]] = set()
    for source in indexes:
        path, data = _read_index(source)
        if data is None:
            print(f"index {path} does not exist (yet), skipping it")
            continue
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


def build(job: dict[str, Any], out: Path, builddate: int) -> None:
    """Check the job's indexes and write its apks into `out`; BuildFailure says why not."""
    if job.get("fail"):
        raise BuildFailure(f"{job['pkgname']}: failing on purpose (builder.fail in the config)")
    available = available_packages(job["indexes"])
    missing = [f"{n}={v}" for n, v in job["required"] if (n, v) not in available]
    if missing:
        raise BuildFailure("missing build dependencies: " + ", ".join(missing))
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


USAGE = (
    "usage: python -m reconciler.synthetic BUILD_JSON ARTIFACTS_DIR\n"
    "       python -m reconciler.synthetic fetch URL FILE MAX_BYTES"
)


def run_build(job: dict[str, Any], out: Path, builddate: int) -> int:
    """One build as its job's log tells it; the exit code of the job."""
    what = f"{job['pkgname']} {job['version']} for {job['repo']}"
    print(f"synthetic build of {what}, try {job['attempt']}")
    try:
        build(job, out, builddate)
    except BuildFailure as exc:
        print(f"ERROR: {exc}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not (len(args) == 2 and args[0] != "fetch") and not (
        len(args) == 4 and args[0] == "fetch" and args[3].isdigit()
    ):
        print(USAGE, file=sys.stderr)
        return 2
    if args[0] == "fetch":  # fetch URL FILE MAX_BYTES
        try:
            data = fetch(args[1], int(args[3]))
        except BuildFailure as exc:
            print(f"ERROR: {exc}")
            return 1
        if data is None:
            print(f"ERROR: {args[1]}: not found")
            return 1
        write_bytes(Path(args[2]), data)
        print(f"fetched {args[1]} ({len(data)} bytes)")
        return 0
    job = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    time.sleep(float(job.get("duration_seconds", 0)))  # what a build takes
    return run_build(job, Path(args[1]), int(time.time()))


if __name__ == "__main__":
    sys.exit(main())
