"""Benchmark fixture: fill every final repository of a config with real apks and indexes.

For each branch of the config, reads the desired state the way the daemon does
(reconciler.desired.reader.DesiredReader) and writes, into every final repository
directory (`paths.final_repo / RepoKey.relpath`), exactly the desired packages:
one real apk v2 file (reconciler.apk.build_apk) per package and subpackage, with
the repository's arch or noarch, plus an APKINDEX.tar.gz whose DESCRIPTION is
`reconciler <relpath> commit=- published=<iso>` (as reconciler/repo.py writes it),
signed with the final key the daemon verifies against (created first by
reconciler.loop.ensure_keys). A Daemon started on the result finds everything
published and has nothing to do. Repositories with no desired package are left
absent (the daemon reports them empty). Prints the counts: apks, bytes, repos.

Measures nothing itself (it prints how long it took); bench/run.py calls it.

    .venv/bin/python bench/populate.py --config CONFIG.yaml
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from reconciler.config.settings import Config, load_config
from reconciler.desired.reader import DesiredReader
from reconciler.formats.apk import read_apk_bytes
from reconciler.formats.apkindex import build_index_archive, format_index, sign_archive
from reconciler.formats.apkwrite import build_apk
from reconciler.fs.atomicfile import write_bytes
from reconciler.fs.keyfiles import load_private_key
from reconciler.loop import ensure_keys
from reconciler.model.layout import INDEX_NAME
from reconciler.model.names import RepoKey
from reconciler.model.packages import ApkInfo, PkgSpec

BUILDDATE = 1_764_000_000  # fixed, so the same tree always gives the same apk bytes


def _apk_bytes(
    cache: dict[tuple[str, ...], tuple[bytes, ApkInfo]],
    spec: PkgSpec,
    name: str,
    arch: str,
    description: str,
    depends: tuple[str, ...],
    provides: tuple[str, ...],
) -> tuple[bytes, ApkInfo]:
    """One package's bytes and index entry; identical inputs are built once."""
    key = (name, spec.version, arch, spec.pkgname, description, *depends, "|", *provides)
    cached = cache.get(key)
    if cached is not None:
        return cached
    content = f"{name} {spec.version} ({arch}) written by reconciler's bench/populate.py\n"
    data = build_apk(
        pkgname=name,
        version=spec.version,
        arch=arch,
        origin=spec.pkgname,
        description=description,
        url=spec.url,
        license=spec.license,
        maintainer=spec.maintainer,
        depends=depends,
        provides=provides,
        packager="reconciler bench",
        builddate=BUILDDATE,
        files={f"usr/share/{spec.pkgname}/{name}.txt": content.encode()},
    )
    result = (data, read_apk_bytes(data, f"{name}-{spec.version}.apk"))
    cache[key] = result
    return result


def populate(config: Config, now: float | None = None) -> dict[str, int]:
    """Write every final repository; return the counts."""
    now = time.time() if now is None else now
    ensure_keys(config)
    final_key = load_private_key(config.keys.final_private)
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    counts = {"apks": 0, "bytes": 0, "repos": 0, "empty repos": 0, "packages": 0}
    cache: dict[tuple[str, ...], tuple[bytes, ApkInfo]] = {}
    desired = {b.name: DesiredReader(config.splitrepos).read_branch(b) for b in config.branches}
    for key in config.repositories():
        specs = desired[key.branch].repos.get(key, {})
        directory = config.paths.final_repo / key.relpath
        if directory.exists():
            shutil.rmtree(directory)
        if not specs:
            counts["empty repos"] += 1
            continue
        directory.mkdir(parents=True)
        entries = _write_apks(directory, specs, cache, counts)
        _write_index(directory, key, entries, final_key, config.keys.final_name, iso, now)
        counts["repos"] += 1
        counts["packages"] += len(specs)
    return counts


def _write_apks(
    directory: Path,
    specs: dict[str, PkgSpec],
    cache: dict[tuple[str, ...], tuple[bytes, ApkInfo]],
    counts: dict[str, int],
) -> list[ApkInfo]:
    entries: list[ApkInfo] = []
    for spec in specs.values():
        parts = [(spec.pkgname, spec.pkgarch, spec.description, spec.depends, spec.provides)]
        parts += [(s.name, s.arch, s.description, s.depends, s.provides) for s in spec.subpackages]
        for name, arch, description, depends, provides in parts:
            data, info = _apk_bytes(cache, spec, name, arch, description, depends, provides)
            # Plain writes: this is set-up, and 40,000 fsyncs would take minutes.
            (directory / info.filename).write_bytes(data)
            entries.append(info)
            counts["apks"] += 1
            counts["bytes"] += len(data)
    return entries


def _write_index(
    directory: Path,
    key: RepoKey,
    entries: list[ApkInfo],
    final_key: RSAPrivateKey,
    key_name: str,
    iso: str,
    now: float,
) -> None:
    """The signed index, exactly as a sign job + RepoStore.publish would leave it."""
    description = f"reconciler {key.relpath} commit=- published={iso}"
    unsigned = build_index_archive(
        format_index(entries, rewrite_arch=key.arch), description=description, mtime=int(now)
    )
    signed = sign_archive(unsigned, final_key, key_name, mtime=int(now))
    write_bytes(directory / INDEX_NAME, signed)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    config = load_config(args.config)
    started = time.perf_counter()
    counts = populate(config)
    os.sync()
    elapsed = time.perf_counter() - started
    arches = sorted({a for b in config.branches for a in b.arches})
    print(
        f"populated {config.paths.final_repo}: {counts['repos']} repos"
        f" ({len(config.branches)} branches x {len(arches)} arches x"
        f" {1 + len(config.splitrepos)} split repos, {counts['empty repos']} empty),"
        f" {counts['packages']} packages, {counts['apks']} apks,"
        f" {counts['bytes'] / 1e6:.1f} MB of apks, in {elapsed:.1f} s"
    )


if __name__ == "__main__":
    main()
