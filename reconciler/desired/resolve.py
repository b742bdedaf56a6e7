"""Parsed APKBUILDs of one branch -> per-repository package specs with resolved deps.

Resolution follows pmbootstrap (apk-formats.md §4.7): a dependency names a package
of the tree through its package name, then its subpackage names, then its
versioned provides; names nothing in the tree provides are external (Alpine) and
dropped. A foreign arch builds cross: `makedepends_build` resolves against the
native arch, and the cross toolchain and crossdirect must be published natively
first. An APKBUILD that did not parse, has a version apk rejects, names an arch
apk does not know (and the branch is not configured with) or a name another
file of its repository has is a `BrokenPackage`, with what is known of it and a
reason naming its file and line. Pure; the work shared by every arch (parsing
dependency tokens, arch checks, version comparisons, the arch-independent
fields of a spec) is done once per branch, and each token is looked up once per
repository, not once per package.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.config.branches import BranchConfig
from reconciler.formats import apkversion
from reconciler.formats.apkbuild import (
    ALPINE_ARCHES,
    Apkbuild,
    Subpackage,
    check_arch,
    error_line,
    error_text,
    subpackage_arch,
    unknown_arch,
)
from reconciler.formats.dependency import Dependency, is_plain_version, parse_dependency
from reconciler.model.names import RepoKey
from reconciler.model.packages import BranchDesired, BrokenPackage, DepRef, PkgSpec, SubpackageSpec


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """One APKBUILD as found in the tree: parsed, or the reason it is not."""

    path: str  # directory relative to the tree root, e.g. "main/foo"
    splitrepo: str
    apkbuild: Apkbuild | None
    error: str = ""
    mtime_ns: int = 0


Hit = tuple[str, str]  # (origin pkgname, version of the origin)
Providers = dict[str, Hit]
# Where names are looked up, in order: (repository, its providers, its DepRefs by origin)
Lookup = tuple[tuple[RepoKey, Providers, dict[str, DepRef]], ...]
# token -> what it resolves to in one Lookup (None: nothing of this tree)
Resolved = dict[str, DepRef | None]
# Markers for "not in the memo yet" (memos also hold None).
_UNSEEN = Dependency("", None, None, False, None)
_UNRESOLVED = DepRef(RepoKey("", "", ""), "")


@dataclass(frozen=True, slots=True)
class _File:
    """What every arch needs of one usable APKBUILD, computed once per branch."""

    parsed: ParsedFile
    name: str  # its directory's name
    a: Apkbuild
    arches: frozenset[str]
    version: str
    noarch: bool
    # Provider entries, each list with its first entry for a name last: its
    # subpackage names and its versioned provides.
    sub_names: tuple[tuple[str, Hit], ...]
    provided: tuple[tuple[str, Hit], ...]
    # Dependency tokens that may name a package of this tree, in first-seen order,
    # without conflicts and the package's own names: a native build (pmbootstrap's
    # build_depends()), a cross build's target side and its build machine side.
    build: tuple[str, ...]
    cross_host: tuple[str, ...]
    cross_build: tuple[str, ...]
    # Per subpackage: its SubpackageSpec, the same for every arch (arch "" for the
    # arch built for), so that every arch's spec shares them.
    subs: tuple[SubpackageSpec, ...]


class _Resolver:
    """Memos for one resolve_branch call: each token parsed, each version
    constraint checked and each DepRef made once."""

    def __init__(self, mode: apkversion.VersionMode, configured: tuple[str, ...] = ()) -> None:
        self._mode = mode
        self._configured = frozenset(configured)  # arches known beside apk's
        self._unknown: dict[tuple[str, ...], str | None] = {}
        # Every name a provider map of the branch can hold; a token naming
        # anything else resolves to nothing in every repository.
        self.names: set[str] = set()
        self._deps: dict[str, Dependency | None] = {}
        self._internal: dict[str, str | None] = {}  # token -> its name, if one of `names`
        self._fits: dict[tuple[str, str, str], bool] = {}
        self._refs: dict[RepoKey, dict[str, DepRef]] = {}  # repository -> origin -> ref
        self._valid: dict[str, bool] = {}
        self._arches: dict[tuple[str, ...], frozenset[str]] = {}

    def parse(self, token: str) -> Dependency | None:
        dep = self._deps.get(token, _UNSEEN)
        if dep is _UNSEEN:
            try:
                dep = parse_dependency(token)
            except ValueError:
                dep = None
            self._deps[token] = dep
        return dep

    def _name(self, token: str) -> str | None:
        dep = self.parse(token)
        name = None if dep is None or dep.conflict or dep.name not in self.names else dep.name
        self._internal[token] = name
        return name

    def tokens(self, own: set[str], lists: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
        """Tokens in first-seen order, once each, without conflicts, own names,
        tokens that do not parse and names of nothing in this tree."""
        internal = self._internal
        found: dict[str, None] = {}
        for tokens in lists:
            for token in tokens:
                name = internal.get(token, False)
                if name is False:
                    name = self._name(token)
                if name is not None and name not in own:
                    found[token] = None
        return tuple(found)

    def provided(self, a: Apkbuild) -> tuple[tuple[str, Hit], ...]:
        """The versioned provides of `a`, as provider entries in file order."""
        if not a.provides:
            return ()
        found = []
        for provide in a.provides:
            dep = self.parse(provide)
            if dep is not None and dep.op == "=" and dep.version:
                found.append((dep.name, (a.pkgname, dep.version)))
        return tuple(found)

    def file(self, parsed: ParsedFile, a: Apkbuild, every_arch: tuple[str, ...]) -> _File:
        own = {a.pkgname, *(s.name for s in a.subpackages)}
        checks = () if "!check" in a.options else a.checkdepends
        if a.makedepends:
            # pmbootstrap's build_depends(): makedepends, checkdepends, depends
            build = self.tokens(own, (a.makedepends, checks, a.depends))
            cross_host = self.tokens(own, (a.depends, a.makedepends, checks))
            cross_build: tuple[str, ...] = ()
        else:
            build = self.tokens(own, (a.makedepends_build, a.makedepends_host, checks, a.depends))
            cross_host = self.tokens(own, (a.depends, a.makedepends_host, checks))
            cross_build = self.tokens(own, (a.makedepends_build,))
        noarch = "noarch" in a.arch
        pkgarch = "noarch" if noarch else ""
        subs = tuple(_sub_spec(s, subpackage_arch(s, pkgarch, "")) for s in a.subpackages)
        hit = (a.pkgname, a.pkgver)
        return _File(
            parsed,
            parsed.path.rsplit("/", 1)[-1],
            a,
            self.arches(a.arch, every_arch),
            a.version,
            noarch,
            tuple((s.name, hit) for s in reversed(a.subpackages)),
            self.provided(a)[::-1],
            build,
            cross_host,
            cross_build,
            subs,
        )

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

    def find(self, token: str, lookup: Lookup) -> DepRef | None:
        """The package of this tree `token` names in `lookup`, if any."""
        dep = self._deps[token]
        assert dep is not None
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
            return ref
        return None

    def resolve(
        self, tokens: tuple[str, ...], lookup: Lookup, memo: Resolved
    ) -> tuple[DepRef, ...]:
        if not tokens:
            return ()
        refs: dict[int, DepRef] = {}  # DepRefs are made once each: identity is enough
        for token in tokens:
            ref = memo.get(token, _UNRESOLVED)
            if ref is _UNRESOLVED:
                ref = memo[token] = self.find(token, lookup)
            if ref is not None:
                refs[id(ref)] = ref
        return tuple(refs.values())

    def lookup_entry(
        self, repo: RepoKey, providers: Providers
    ) -> tuple[RepoKey, Providers, dict[str, DepRef]]:
        return repo, providers, self._refs.setdefault(repo, {})

    def valid(self, version: str) -> bool:
        valid = self._valid.get(version)
        if valid is None:
            valid = is_plain_version(version) or apkversion.is_valid(version, self._mode)
            self._valid[version] = valid
        return valid

    def unknown_arch(self, a: Apkbuild) -> str | None:
        """The reason `a`'s arch names an arch nobody knows, if it does."""
        name = self._unknown.get(a.arch, "")
        if name == "":
            name = self._unknown[a.arch] = unknown_arch(a.arch, self._configured)
        if name is None:
            return None
        listed = ", ".join(sorted({*ALPINE_ARCHES, *self._configured}))
        return f"{name!r} is not an arch apk knows ({listed})"

    def arches(self, arch: tuple[str, ...], every_arch: tuple[str, ...]) -> frozenset[str]:
        """The arches of `every_arch` a package with this `arch` list builds for."""
        found = self._arches.get(arch)
        if found is None:
            found = frozenset(x for x in every_arch if check_arch(arch, x))
            self._arches[arch] = found
        return found


def resolve_branch(branch: BranchConfig, files: list[ParsedFile], commit: str) -> BranchDesired:
    """Pure: parsed files -> per-repository package specs with resolved dependencies.
    Long because it is one pass per arch over every split repository, sharing the
    memos of all of them; the work per file is in `_Resolver`."""
    resolver = _Resolver(apkversion.VersionMode(branch.apk_version), branch.arches)
    by_repo, broken = _usable_files(files, resolver)
    native = branch.native_arch
    every_arch = (*branch.arches, native)
    # Per split repo, in file order: each usable file with what every arch needs of it.
    plans = {
        sr: [resolver.file(p, p.apkbuild, every_arch) for p in pfs.values() if p.apkbuild]
        for sr, pfs in by_repo.items()
    }
    # Per split repo, by directory name: the order of the specs.
    by_name = {
        sr: [f for _, f in sorted(zip(by_repo[sr], fs, strict=True))] for sr, fs in plans.items()
    }

    # A dependency on a package whose APKBUILD is broken must wait for it, not be
    # mistaken for an Alpine package: such names resolve to the broken package.
    broken_names = {b.pkgname: b for b in broken}
    repos: dict[RepoKey, dict[str, PkgSpec]] = {}
    native_main = [f for f in plans.get("", ()) if native in f.arches]
    native_lookup: Lookup = (
        resolver.lookup_entry(RepoKey(branch.name, "", "native"), _provider_map(native_main)),
    )
    native_memo: Resolved = {}
    native_refs: dict[int, tuple[DepRef, ...]] = {}  # id(file) -> its cross_build resolved
    for arch in branch.arches:
        providers = {
            sr: _provider_map([f for f in fs if arch in f.arches]) for sr, fs in plans.items()
        }
        for b in broken_names.values():
            sr = b.path.split("/")[1] if b.path.startswith("extra-repos/") else ""
            providers.setdefault(sr, {}).setdefault(b.pkgname, (b.pkgname, ""))
        cross_tools = _cross_tools(native_main, arch) if arch != native else ()
        tools_only = _native_deps(cross_tools, ())
        main_lookup = resolver.lookup_entry(RepoKey(branch.name, "", arch), providers.get("", {}))
        for splitrepo in sorted(by_name):
            key = RepoKey(branch.name, splitrepo, arch)
            lookup: Lookup = (resolver.lookup_entry(key, providers.get(splitrepo, {})),)
            if splitrepo:
                lookup = (*lookup, main_lookup)
            memo: Resolved = {}
            specs: dict[str, PkgSpec] = {}
            for f in by_name[splitrepo]:
                if arch not in f.arches:
                    continue
                native_deps: tuple[str, ...]
                if arch == native:
                    build_deps, native_deps = resolver.resolve(f.build, lookup, memo), ()
                else:
                    build_deps = resolver.resolve(f.cross_host, lookup, memo)
                    if f.cross_build:
                        refs = native_refs.get(id(f))
                        if refs is None:
                            refs = resolver.resolve(f.cross_build, native_lookup, native_memo)
                            native_refs[id(f)] = refs
                        native_deps = _native_deps(cross_tools, refs)
                    else:
                        native_deps = tools_only
                specs[f.name] = _spec(key, f, build_deps, native_deps)
            repos[key] = specs
    return BranchDesired(branch.name, commit, repos, tuple(broken))


def _usable_files(
    files: list[ParsedFile], resolver: _Resolver
) -> tuple[dict[str, dict[str, ParsedFile]], list[BrokenPackage]]:
    """The usable files per split repo and directory name, and the broken ones (no
    parse, an invalid version, an unknown arch, a name twice: with the version
    when it was read and the line the reason names); every name a provider map
    can hold goes into the resolver."""
    broken: list[BrokenPackage] = []
    by_repo: dict[str, dict[str, ParsedFile]] = {}
    for parsed in files:
        name = parsed.path.rsplit("/", 1)[-1]
        a = parsed.apkbuild
        where = f"{parsed.path}/APKBUILD"
        if a is None:
            line = error_line(parsed.error, where)
            broken.append(BrokenPackage(parsed.path, name, parsed.error, line=line))
            continue
        if not resolver.valid(a.version):
            line = a.line("pkgver")
            why = f"{a.pkgver!r} is not a valid apk version"
            reason = error_text(where, line, "pkgver", why)
            broken.append(BrokenPackage(parsed.path, name, reason, a.version, line))
            continue
        why_arch = resolver.unknown_arch(a)
        if why_arch is not None:
            line = a.line("arch")
            reason = error_text(where, line, "arch", why_arch)
            broken.append(BrokenPackage(parsed.path, name, reason, a.version, line))
            continue
        repo_files = by_repo.setdefault(parsed.splitrepo, {})
        if name in repo_files:
            other = repo_files[name].path
            reason = f"{parsed.path}: pkgname also in {other}"
            broken.append(BrokenPackage(parsed.path, name, reason, a.version))
            continue
        repo_files[name] = parsed
    for pfs in by_repo.values():
        for p in pfs.values():
            a = p.apkbuild
            assert a is not None
            resolver.names.add(a.pkgname)
            resolver.names.update(s.name for s in a.subpackages)
            resolver.names.update(name for name, _ in resolver.provided(a))
    resolver.names.update(b.pkgname for b in broken)
    return by_repo, broken


def _provider_map(usable: list[_File]) -> Providers:
    """Names that resolve to a package of this tree for one arch, by precedence:
    package names, then subpackage names, then versioned provides (the first
    file, and the first entry of a file, wins among equals)."""
    subs: Providers = {}
    provided: Providers = {}
    for f in reversed(usable):
        if f.sub_names:
            subs.update(f.sub_names)
        if f.provided:
            provided.update(f.provided)
    names = {f.a.pkgname: (f.a.pkgname, f.a.pkgver) for f in usable}
    return {**provided, **subs, **names}


def _cross_tools(native_files: list[_File], arch: str) -> tuple[str, ...]:
    """Native packages a foreign arch needs published first: its cross/ toolchain
    and crossdirect."""
    names = [
        f.a.pkgname
        for f in native_files
        if (f.parsed.path.startswith("cross/") and f.a.pkgname.endswith(f"-{arch}"))
        or f.a.pkgname == "crossdirect"
    ]
    return tuple(sorted(names))


def _native_deps(cross_tools: tuple[str, ...], refs: tuple[DepRef, ...]) -> tuple[str, ...]:
    names = dict.fromkeys(cross_tools)
    for ref in refs:
        names.setdefault(ref.pkgname)
    return tuple(names)


def _sub_spec(sub: Subpackage, arch: str) -> SubpackageSpec:
    return SubpackageSpec(sub.name, arch, sub.pkgdesc, sub.depends, sub.provides)


def _spec(
    key: RepoKey,
    f: _File,
    build_deps: tuple[DepRef, ...],
    native_deps: tuple[str, ...],
) -> PkgSpec:
    a = f.a
    arch = key.arch
    if native_deps and a.pkgname in native_deps:
        native_deps = tuple(d for d in native_deps if d != a.pkgname)
    return PkgSpec(
        key,
        a.pkgname,
        f.version,
        f.parsed.path,
        "noarch" if f.noarch else arch,
        a.pkgdesc,
        a.url,
        a.license,
        a.maintainer,
        a.depends,
        a.provides,
        f.subs,
        a.options,
        build_deps,
        native_deps,
    )
