"""Parsed APKBUILDs of one branch -> per-repository package specs with resolved deps.

Resolution follows pmbootstrap (apk-formats.md §4.7): a dependency names a package
of the tree through its package name, then its subpackage names, then its
versioned provides; names nothing in the tree provides are external (Alpine) and
dropped. A foreign arch builds cross: `makedepends_build` resolves against the
native arch, and the cross toolchain and crossdirect must be published natively
first. Pure; the work shared by every arch (parsing dependency tokens, arch
checks, version comparisons) is done once per branch, not once per arch.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import apkversion
from .apkbuild import Apkbuild, check_arch, package_arch, subpackage_arch
from .config import BranchConfig
from .dependency import Dependency, parse_dependency
from .model import BranchDesired, BrokenPackage, DepRef, PkgSpec, RepoKey, SubpackageSpec


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """One APKBUILD as found in the tree: parsed, or the reason it is not."""

    path: str  # directory relative to the tree root, e.g. "main/foo"
    splitrepo: str
    apkbuild: Apkbuild | None
    error: str = ""
    mtime_ns: int = 0


Providers = dict[str, tuple[str, str]]  # name -> (origin pkgname, version of the origin)
# Where names are looked up, in order: (repository, its providers, its DepRefs by origin)
Lookup = tuple[tuple[RepoKey, Providers, dict[str, DepRef]], ...]


@dataclass(frozen=True, slots=True)
class _Wants:
    """One APKBUILD's dependencies, parsed once for all arches (conflicts and the
    package's own names already dropped, file order kept)."""

    build: tuple[Dependency, ...]  # a native build: pmbootstrap's build_depends()
    cross_host: tuple[Dependency, ...]  # a cross build, target side
    cross_build: tuple[Dependency, ...]  # a cross build, build machine side


class _Resolver:
    """Memos for one resolve_branch call: each token parsed, each version
    constraint checked and each DepRef made once."""

    def __init__(self) -> None:
        self._deps: dict[str, Dependency | None] = {}
        self._fits: dict[tuple[str, str, str], bool] = {}
        self._refs: dict[RepoKey, dict[str, DepRef]] = {}  # repository -> origin -> ref
        self._valid: dict[str, bool] = {}
        self._arches: dict[tuple[str, ...], frozenset[str]] = {}
        self._subs: dict[tuple[int, str], SubpackageSpec] = {}

    def parse(self, token: str) -> Dependency | None:
        if token not in self._deps:
            try:
                self._deps[token] = parse_dependency(token)
            except ValueError:
                self._deps[token] = None
        return self._deps[token]

    def wants(self, a: Apkbuild) -> _Wants:
        own = {a.pkgname, *(s.name for s in a.subpackages)}

        def parsed(*lists: tuple[str, ...]) -> tuple[Dependency, ...]:
            """Tokens in first-seen order, once each, without conflicts, own names
            and tokens that do not parse."""
            found: dict[str, Dependency] = {}
            for tokens in lists:
                for token in tokens:
                    dep = self.parse(token)
                    if dep is not None and not dep.conflict and dep.name not in own:
                        found.setdefault(token, dep)
            return tuple(found.values())

        checks = () if "!check" in a.options else a.checkdepends
        if a.makedepends:
            # pmbootstrap's build_depends(): makedepends, checkdepends, depends
            build = parsed(a.makedepends, checks, a.depends)
            return _Wants(build, parsed(a.depends, a.makedepends, checks), ())
        build = parsed(a.makedepends_build, a.makedepends_host, checks, a.depends)
        cross_host = parsed(a.depends, a.makedepends_host, checks)
        return _Wants(build, cross_host, parsed(a.makedepends_build))

    def _fits_version(self, version: str, op: str, wanted: str) -> bool:
        key = (version, op, wanted)
        fits = self._fits.get(key)
        if fits is None:
            try:
                fits = apkversion.satisfies(version, op, wanted)
            except apkversion.InvalidVersion:
                fits = False
            self._fits[key] = fits
        return fits

    def resolve(self, deps: tuple[Dependency, ...], lookup: Lookup) -> tuple[DepRef, ...]:
        refs: dict[int, DepRef] = {}  # DepRefs are made once each: identity is enough
        for dep in deps:
            for repo, providers, made in lookup:
                hit = providers.get(dep.name)
                if hit is None:
                    continue
                origin, version = hit
                if (
                    dep.op
                    and dep.version
                    and dep.op != "><"
                    and not self._fits_version(version, dep.op, dep.version)
                ):
                    continue  # this tree's version does not fit: Alpine must provide it
                ref = made.get(origin)
                if ref is None:
                    ref = made[origin] = DepRef(repo, origin)
                refs.setdefault(id(ref), ref)
                break
        return tuple(refs.values())

    def lookup_entry(
        self, repo: RepoKey, providers: Providers
    ) -> tuple[RepoKey, Providers, dict[str, DepRef]]:
        return repo, providers, self._refs.setdefault(repo, {})

    def valid(self, version: str, mode: apkversion.VersionMode) -> bool:
        valid = self._valid.get(version)
        if valid is None:
            valid = self._valid[version] = apkversion.is_valid(version, mode)
        return valid

    def arches(self, arch: tuple[str, ...], every_arch: tuple[str, ...]) -> frozenset[str]:
        """The arches of `every_arch` a package with this `arch` list builds for."""
        found = self._arches.get(arch)
        if found is None:
            found = frozenset(x for x in every_arch if check_arch(arch, x))
            self._arches[arch] = found
        return found

    def subpackages(self, a: Apkbuild, pkgarch: str, carch: str) -> tuple[SubpackageSpec, ...]:
        """The subpackage specs of `a` built for `carch`; one object per distinct
        subpackage and .PKGINFO arch, shared by the arches where they agree."""
        specs: list[SubpackageSpec] = []
        for sub in a.subpackages:
            arch = subpackage_arch(sub, pkgarch, carch)
            found = self._subs.get((id(sub), arch))
            if found is None:
                found = SubpackageSpec(sub.name, arch, sub.pkgdesc, sub.depends, sub.provides)
                self._subs[(id(sub), arch)] = found
            specs.append(found)
        return tuple(specs)


def resolve_branch(branch: BranchConfig, files: list[ParsedFile], commit: str) -> BranchDesired:
    """Pure: parsed files -> per-repository package specs with resolved dependencies."""
    mode = apkversion.VersionMode(branch.apk_version)
    resolver = _Resolver()
    broken: list[BrokenPackage] = []
    by_repo: dict[str, dict[str, ParsedFile]] = {}
    for parsed in files:
        name = parsed.path.rsplit("/", 1)[-1]
        if parsed.apkbuild is None:
            broken.append(BrokenPackage(parsed.path, name, parsed.error))
            continue
        if not resolver.valid(parsed.apkbuild.version, mode):
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
    native = branch.native_arch
    every_arch = (*branch.arches, native)
    # Per file: the arches it builds for, and its dependencies parsed once.
    arches: dict[int, frozenset[str]] = {}
    wants: dict[int, _Wants] = {}
    for repo_files in by_repo.values():
        for parsed in repo_files.values():
            assert parsed.apkbuild is not None
            a = parsed.apkbuild
            arches[id(parsed)] = resolver.arches(a.arch, every_arch)
            wants[id(parsed)] = resolver.wants(a)

    by_name = [(sr, sorted(pfs.items())) for sr, pfs in sorted(by_repo.items())]

    def usable(pfs: dict[str, ParsedFile], arch: str) -> list[ParsedFile]:
        return [p for p in pfs.values() if arch in arches[id(p)]]

    # A dependency on a package whose APKBUILD is broken must wait for it, not be
    # mistaken for an Alpine package: such names resolve to the broken package.
    broken_names = {b.pkgname: b for b in broken}
    repos: dict[RepoKey, dict[str, PkgSpec]] = {}
    native_providers = _provider_map(usable(by_repo.get("", {}), native), resolver)
    native_lookup: Lookup = (
        resolver.lookup_entry(RepoKey(branch.name, "", "native"), native_providers),
    )
    for arch in branch.arches:
        providers = {sr: _provider_map(usable(pfs, arch), resolver) for sr, pfs in by_repo.items()}
        for b in broken_names.values():
            sr = b.path.split("/")[1] if b.path.startswith("extra-repos/") else ""
            providers.setdefault(sr, {}).setdefault(b.pkgname, (b.pkgname, ""))
        cross_tools = (
            _cross_tools(usable(by_repo.get("", {}), native), arch) if arch != native else ()
        )
        main_lookup = resolver.lookup_entry(RepoKey(branch.name, "", arch), providers.get("", {}))
        for splitrepo, ordered in by_name:
            key = RepoKey(branch.name, splitrepo, arch)
            lookup: Lookup = (resolver.lookup_entry(key, providers.get(splitrepo, {})),)
            if splitrepo:
                lookup = (*lookup, main_lookup)
            specs: dict[str, PkgSpec] = {}
            for name, parsed in ordered:
                if arch not in arches[id(parsed)]:
                    continue
                want = wants[id(parsed)]
                native_deps: tuple[str, ...]
                if arch == native:
                    build_deps, native_deps = resolver.resolve(want.build, lookup), ()
                else:
                    build_deps = resolver.resolve(want.cross_host, lookup)
                    native_deps = _native_deps(
                        cross_tools, resolver.resolve(want.cross_build, native_lookup)
                    )
                specs[name] = _spec(key, parsed, build_deps, native_deps, resolver)
            repos[key] = specs
    return BranchDesired(branch.name, commit, repos, tuple(broken))


def _provider_map(usable: list[ParsedFile], resolver: _Resolver) -> Providers:
    """Names that resolve to a package of this tree for one arch, by precedence:
    package names, then subpackage names, then versioned provides."""
    result: Providers = {}
    builds = [p.apkbuild for p in usable if p.apkbuild is not None]
    for a in builds:
        result[a.pkgname] = (a.pkgname, a.pkgver)
    for a in builds:
        for sub in a.subpackages:
            result.setdefault(sub.name, (a.pkgname, a.pkgver))
    for a in builds:
        for provide in a.provides:
            dep = resolver.parse(provide)
            if dep is not None and dep.op == "=" and dep.version:
                result.setdefault(dep.name, (a.pkgname, dep.version))
    return result


def _cross_tools(native_files: list[ParsedFile], arch: str) -> tuple[str, ...]:
    """Native packages a foreign arch needs published first: its cross/ toolchain
    and crossdirect."""
    names = [
        p.apkbuild.pkgname
        for p in native_files
        if p.apkbuild
        and (
            (p.path.startswith("cross/") and p.apkbuild.pkgname.endswith(f"-{arch}"))
            or p.apkbuild.pkgname == "crossdirect"
        )
    ]
    return tuple(sorted(names))


def _native_deps(cross_tools: tuple[str, ...], refs: tuple[DepRef, ...]) -> tuple[str, ...]:
    names = dict.fromkeys(cross_tools)
    for ref in refs:
        names.setdefault(ref.pkgname)
    return tuple(names)


def _spec(
    key: RepoKey,
    parsed: ParsedFile,
    build_deps: tuple[DepRef, ...],
    native_deps: tuple[str, ...],
    resolver: _Resolver,
) -> PkgSpec:
    a = parsed.apkbuild
    assert a is not None
    pkgarch = package_arch(a.arch, key.arch)
    subs = resolver.subpackages(a, pkgarch, key.arch) if a.subpackages else ()
    if a.pkgname in native_deps:
        native_deps = tuple(d for d in native_deps if d != a.pkgname)
    return PkgSpec(
        key,
        a.pkgname,
        a.version,
        parsed.path,
        pkgarch,
        a.pkgdesc,
        a.url,
        a.license,
        a.maintainer,
        a.depends,
        a.provides,
        subs,
        a.options,
        build_deps,
        native_deps,
        parsed.mtime_ns,
    )
