"""pmaports tree -> the packages each (branch, splitrepo, arch) repository should hold.

Reads APKBUILDs statically (never running shell), caches each parse by the file's
path, size and mtime, and resolves internal dependencies the way pmbootstrap does
(apk-formats.md §4.7): through package names, subpackage names and versioned
provides; names nothing in the tree provides are external (Alpine) and dropped.
`device/archived/` is never built. A file that cannot be used becomes a
BrokenPackage with its reason; the rest of the tree carries on.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from . import apkversion
from .apkbuild import (
    Apkbuild,
    ApkbuildError,
    check_arch,
    package_arch,
    parse_apkbuild,
    subpackage_arch,
)
from .config import BranchConfig
from .dependency import Dependency, parse_dependency
from .gitref import read_head_commit
from .model import BranchDesired, BrokenPackage, DepRef, PkgSpec, RepoKey, SubpackageSpec

log = logging.getLogger(__name__)

SKIPPED_DIRS = ("device/archived/",)


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """One APKBUILD as found in the tree: parsed, or the reason it is not."""

    path: str  # directory relative to the tree root, e.g. "main/foo"
    splitrepo: str
    apkbuild: Apkbuild | None
    error: str = ""
    mtime_ns: int = 0


class DesiredReader:
    """Turns pmaports trees into BranchDesired values, caching parses across passes."""

    def __init__(self, splitrepos: tuple[str, ...]) -> None:
        self._splitrepos = splitrepos
        self._cache: dict[Path, tuple[int, int, ParsedFile]] = {}
        # branch -> (fingerprint, result, the parses it came from: kept alive so
        # their ids in the fingerprint cannot be reused by other objects)
        self._resolved: dict[str, tuple[tuple[object, ...], BranchDesired, list[ParsedFile]]] = {}

    def read_branch(self, branch: BranchConfig) -> BranchDesired:
        """The branch's desired state; resolved again only when a file changed."""
        files = self.scan_tree(branch.pmaports)
        commit = read_head_commit(branch.pmaports)
        # Parses are cached objects: the same objects mean the same tree.
        fingerprint = (branch, commit, tuple(id(f) for f in files))
        cached = self._resolved.get(branch.name)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        result = resolve_branch(branch, files, commit)
        self._resolved[branch.name] = (fingerprint, result, files)
        return result

    def scan_tree(self, root: Path) -> list[ParsedFile]:
        """Every usable APKBUILD below root, in path order."""
        found: list[ParsedFile] = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            if "APKBUILD" not in filenames:
                continue
            rel = Path(dirpath).relative_to(root).as_posix()
            if rel == "." or any((rel + "/").startswith(s) for s in SKIPPED_DIRS):
                continue
            splitrepo = self._splitrepo_of(rel)
            if splitrepo is None:
                continue
            found.append(self._parse_cached(Path(dirpath) / "APKBUILD", rel, splitrepo))
        return found

    def _splitrepo_of(self, rel: str) -> str | None:
        parts = rel.split("/")
        if parts[0] != "extra-repos":
            return ""
        if len(parts) >= 3 and parts[1] in self._splitrepos:
            return parts[1]
        return None  # an extra repo this configuration does not publish

    def _parse_cached(self, file: Path, rel: str, splitrepo: str) -> ParsedFile:
        try:
            stat = file.stat()
        except OSError as exc:
            return ParsedFile(rel, splitrepo, None, f"{rel}/APKBUILD: cannot read: {exc}")
        cached = self._cache.get(file)
        if cached and cached[0] == stat.st_mtime_ns and cached[1] == stat.st_size:
            return cached[2]
        parsed = _parse_file(file, rel, splitrepo, stat.st_mtime_ns)
        self._cache[file] = (stat.st_mtime_ns, stat.st_size, parsed)
        return parsed


def _parse_file(file: Path, rel: str, splitrepo: str, mtime_ns: int) -> ParsedFile:
    try:
        # Bytes, then decode: read_text would turn CRLF into LF and hide it.
        text = file.read_bytes().decode("utf-8")
        return ParsedFile(rel, splitrepo, parse_apkbuild(text, f"{rel}/APKBUILD"), "", mtime_ns)
    except UnicodeDecodeError as exc:
        reason = f"{rel}/APKBUILD: not UTF-8 text ({exc.reason} at byte {exc.start})"
    except (OSError, ApkbuildError) as exc:
        reason = str(exc)
    return ParsedFile(rel, splitrepo, None, reason, mtime_ns)


def resolve_branch(branch: BranchConfig, files: list[ParsedFile], commit: str) -> BranchDesired:
    """Pure: parsed files -> per-repository package specs with resolved dependencies."""
    mode = apkversion.VersionMode(branch.apk_version)
    broken: list[BrokenPackage] = []
    by_repo: dict[str, dict[str, ParsedFile]] = {}
    for parsed in files:
        name = parsed.path.rsplit("/", 1)[-1]
        if parsed.apkbuild is None:
            broken.append(BrokenPackage(parsed.path, name, parsed.error))
            continue
        if not apkversion.is_valid(parsed.apkbuild.version, mode):
            version = parsed.apkbuild.version
            reason = f"{parsed.path}/APKBUILD: pkgver: {version!r} is not a valid apk version"
            broken.append(BrokenPackage(parsed.path, name, reason))
            continue
        repo_files = by_repo.setdefault(parsed.splitrepo, {})
        if name in repo_files:
            other = repo_files[name].path
            broken.append(
                BrokenPackage(parsed.path, name, f"{parsed.path}: pkgname also in {other}")
            )
            continue
        repo_files[name] = parsed
    # A dependency on a package whose APKBUILD is broken must wait for it, not be
    # mistaken for an Alpine package: such names resolve to the broken package.
    broken_names = {b.pkgname: b for b in broken}
    repos: dict[RepoKey, dict[str, PkgSpec]] = {}
    native = branch.native_arch
    native_providers = _provider_map(by_repo.get("", {}), native, mode)
    for arch in branch.arches:
        providers = {sr: _provider_map(pfs, arch, mode) for sr, pfs in by_repo.items()}
        for b in broken_names.values():
            sr = b.path.split("/")[1] if b.path.startswith("extra-repos/") else ""
            providers.setdefault(sr, {}).setdefault(b.pkgname, (b.pkgname, ""))
        cross_tools = _cross_tools(by_repo.get("", {}), native, arch) if arch != native else ()
        for splitrepo, repo_files in sorted(by_repo.items()):
            key = RepoKey(branch.name, splitrepo, arch)
            specs: dict[str, PkgSpec] = {}
            for name, parsed in sorted(repo_files.items()):
                assert parsed.apkbuild is not None
                if not check_arch(parsed.apkbuild.arch, arch):
                    continue
                lookup = [(key, providers.get(splitrepo, {}))]
                if splitrepo:
                    lookup.append((RepoKey(branch.name, "", arch), providers.get("", {})))
                specs[name] = _spec(
                    key, parsed, lookup, native_providers if arch != native else None, cross_tools
                )
            repos[key] = specs
    return BranchDesired(branch.name, commit, repos, tuple(broken))


Providers = dict[str, tuple[str, str]]  # name -> (origin pkgname, version of the origin)


def _provider_map(
    files: dict[str, ParsedFile], arch: str, mode: apkversion.VersionMode
) -> Providers:
    """Names that resolve to a package of this tree for `arch`, by precedence:
    package names, then subpackage names, then versioned provides."""
    result: Providers = {}
    usable = [
        p.apkbuild for p in files.values() if p.apkbuild and check_arch(p.apkbuild.arch, arch)
    ]
    for a in usable:
        result[a.pkgname] = (a.pkgname, a.pkgver)
    for a in usable:
        for sub in a.subpackages:
            result.setdefault(sub.name, (a.pkgname, a.pkgver))
    for a in usable:
        for provide in a.provides:
            dep = _try_parse(provide)
            if dep is not None and dep.op == "=" and dep.version:
                result.setdefault(dep.name, (a.pkgname, dep.version))
    return result


def _cross_tools(files: dict[str, ParsedFile], native: str, arch: str) -> tuple[str, ...]:
    """Native packages a foreign arch needs published first: its cross/ toolchain
    and crossdirect."""
    names = [
        p.apkbuild.pkgname
        for p in files.values()
        if p.apkbuild
        and check_arch(p.apkbuild.arch, native)
        and (
            (p.path.startswith("cross/") and p.apkbuild.pkgname.endswith(f"-{arch}"))
            or p.apkbuild.pkgname == "crossdirect"
        )
    ]
    return tuple(sorted(names))


def _try_parse(token: str) -> Dependency | None:
    try:
        return parse_dependency(token)
    except ValueError:
        return None


def _resolve(
    tokens: tuple[str, ...], lookup: list[tuple[RepoKey, Providers]], own: set[str]
) -> list[DepRef]:
    refs: list[DepRef] = []
    for token in tokens:
        dep = _try_parse(token)
        if dep is None or dep.conflict or dep.name in own:
            continue
        for repo, providers in lookup:
            hit = providers.get(dep.name)
            if hit is None:
                continue
            origin, version = hit
            if dep.op and dep.version and dep.op not in ("><",):
                try:
                    if not apkversion.satisfies(version, dep.op, dep.version):
                        continue  # this tree's version does not fit: Alpine must provide it
                except apkversion.InvalidVersion:
                    continue
            ref = DepRef(repo, origin)
            if ref not in refs:
                refs.append(ref)
            break
    return refs


def _spec(
    key: RepoKey,
    parsed: ParsedFile,
    lookup: list[tuple[RepoKey, Providers]],
    native_providers: Providers | None,
    cross_tools: tuple[str, ...],
) -> PkgSpec:
    a = parsed.apkbuild
    assert a is not None
    own = {a.pkgname, *(s.name for s in a.subpackages)}
    pkgarch = package_arch(a.arch, key.arch)
    native_deps: list[str] = []
    if native_providers is None:
        build_tokens = a.build_depends()
    else:
        # Cross build: makedepends_build runs on the build machine (native arch).
        host = a.makedepends if a.makedepends else a.makedepends_host
        checks = () if "!check" in a.options else a.checkdepends
        build_tokens = (*a.depends, *host, *checks)
        native_lookup = [(RepoKey(key.branch, "", "native"), native_providers)]
        build_side = () if a.makedepends else a.makedepends_build
        native_deps = [*cross_tools]
        for ref in _resolve(build_side, native_lookup, own):
            if ref.pkgname not in native_deps:
                native_deps.append(ref.pkgname)
    subs = tuple(
        SubpackageSpec(
            name=s.name,
            arch=subpackage_arch(s, pkgarch, key.arch),
            description=s.pkgdesc,
            depends=s.depends,
            provides=s.provides,
        )
        for s in a.subpackages
    )
    return PkgSpec(
        repo=key,
        pkgname=a.pkgname,
        version=a.version,
        path=parsed.path,
        pkgarch=pkgarch,
        description=a.pkgdesc,
        url=a.url,
        license=a.license,
        maintainer=a.maintainer,
        depends=a.depends,
        provides=a.provides,
        subpackages=subs,
        options=a.options,
        build_deps=tuple(_resolve(build_tokens, lookup, own)),
        native_deps=tuple(d for d in native_deps if d != a.pkgname),
        apkbuild_mtime_ns=parsed.mtime_ns,
    )
