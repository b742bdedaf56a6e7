"""What installing some package names pulls from an APKINDEX: apk's dependency
closure, as an image job resolves it.

Pure. Tokens are read with `formats.dependency` and versions matched with
`formats.apkversion`; the provider rules are apk's (apk-formats.md §2.2, §4.7):

* a name is satisfied by a package already chosen that has it as its name or
  provides it at a fitting version;
* otherwise a package of that very name wins (its highest fitting version);
* then a package that provides the name with a version (`p:so:libfoo.so.1=1`),
  the highest `k:` (provider_priority) first, then the shortest package name,
  then the name, then the highest version;
* an unversioned provide is virtual: chosen only when its package has a
  provider_priority, and only for a token without a version constraint;
* `><Q1…` pins a package by its checksum; `!name` is a conflict, checked once
  the set is complete;
* once every dependency is resolved, a package whose `install_if` tokens all
  hold for the chosen set joins it (with its dependencies), as apk does.

A name nothing in the index provides is either the index's to provide (listed
in `internal`, or one of the names asked for): the resolution fails naming it
and what needed it; or it belongs to the upstream distribution (Alpine), whose
index an image job does not read: it is listed in `InstallSet.external`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from reconciler.formats.apkversion import InvalidVersion, VersionMode, satisfies, sort_key
from reconciler.formats.dependency import Dependency, parse_dependency
from reconciler.model.errors import InputError
from reconciler.model.packages import ApkInfo

WANTED = "the image"  # what the names asked for are "needed by"


class InstallError(InputError):
    """The names cannot be installed from the index: the message says which and why."""


@dataclass(frozen=True, slots=True)
class InstallSet:
    """The chosen packages (sorted by name) and the names left to upstream (sorted)."""

    packages: tuple[ApkInfo, ...]
    external: tuple[str, ...]

    def lines(self) -> list[str]:
        """`name-version` of every chosen package, sorted."""
        return sorted(f"{p.pkgname}-{p.version}" for p in self.packages)


@dataclass(frozen=True, slots=True)
class _Candidate:
    entry: ApkInfo
    version: str | None  # the version it provides the name at; None: a virtual provide
    own: bool  # the name is the package's own


class _Resolver:
    def __init__(self, entries: Iterable[ApkInfo], mode: VersionMode) -> None:
        self.mode = mode
        self.by_name: dict[str, list[_Candidate]] = {}
        self.chosen: dict[str, ApkInfo] = {}  # pkgname -> entry
        self.provided: dict[str, list[_Candidate]] = {}  # what the chosen provide
        self.entries: list[ApkInfo] = []
        for entry in entries:
            self.entries.append(entry)
            for name, candidate in self._names_of(entry):
                self.by_name.setdefault(name, []).append(candidate)

    def _names_of(self, entry: ApkInfo) -> list[tuple[str, _Candidate]]:
        names = [(entry.pkgname, _Candidate(entry, entry.version, True))]
        for token in entry.provides:
            dep = self.parse(token, entry.pkgname, "provides")
            version = dep.version if dep.op == "=" else None
            names.append((dep.name, _Candidate(entry, version, False)))
        return names

    def parse(self, token: str, pkgname: str, what: str) -> Dependency:
        try:
            return parse_dependency(token, mode=self.mode)
        except ValueError as exc:
            raise InstallError(f"{pkgname}: {what}: {exc}") from exc

    def fits(self, candidate: _Candidate, dep: Dependency) -> bool:
        if dep.op is None or dep.version is None:
            return True
        if dep.op == "><":
            return candidate.own and candidate.entry.checksum == dep.version
        if candidate.version is None:
            return False
        try:
            return satisfies(candidate.version, dep.op, dep.version, self.mode)
        except InvalidVersion:
            return False

    def satisfied(self, dep: Dependency) -> bool:
        return any(self.fits(c, dep) for c in self.provided.get(dep.name, ()))

    def choose(self, dep: Dependency) -> ApkInfo | None:
        """The package apk would take for `dep`, None when the index has none."""
        fitting = [c for c in self.by_name.get(dep.name, ()) if self.fits(c, dep)]
        own = [c for c in fitting if c.own]
        if own:
            return self._best(own, by_priority=False)
        versioned = [c for c in fitting if not c.own and c.version is not None]
        if versioned:
            return self._best(versioned, by_priority=True)
        virtual = [
            c
            for c in fitting
            if c.version is None and c.entry.provider_priority > 0 and dep.op is None
        ]
        return self._best(virtual, by_priority=True) if virtual else None

    def _best(self, candidates: list[_Candidate], *, by_priority: bool) -> ApkInfo:
        key = sort_key(self.mode)
        ordered = sorted(candidates, key=lambda c: key(c.version or c.entry.version), reverse=True)
        if by_priority:
            ordered.sort(key=lambda c: (-c.entry.provider_priority, len(c.entry.pkgname)))
        return ordered[0].entry

    def take(self, entry: ApkInfo) -> None:
        self.chosen[entry.pkgname] = entry
        for name, candidate in self._names_of(entry):
            self.provided.setdefault(name, []).append(candidate)

    def why_not(self, dep: Dependency) -> str:
        """What the index has of a name that resolved to nothing."""
        found = self.by_name.get(dep.name, ())
        if not found:
            return ""
        has = ", ".join(sorted({f"{c.entry.pkgname} {c.entry.version}" for c in found}))
        if all(c.version is None for c in found):
            return f": only virtual providers without a provider_priority ({has})"
        return f": the index has {has}"


def resolve_install(
    entries: Iterable[ApkInfo],
    names: Sequence[str],
    internal: Collection[str] = (),
    mode: VersionMode = VersionMode.APK3,
) -> InstallSet:
    """The packages installing `names` pulls from the index `entries`.

    Raises InstallError "cannot resolve X (needed by Y)" when X, one of `names`
    or of `internal` (or a name the index knows but cannot satisfy), has no
    fitting provider; "X conflicts with Y" when a chosen package's `!Y` holds."""
    r = _Resolver(entries, mode)
    must = {*names, *internal}
    external: set[str] = set()
    queue: deque[tuple[str, str]] = deque((name, WANTED) for name in names)
    while True:
        _close(r, queue, must, external)
        joining = _install_if(r)
        if not joining:
            break
        for entry in joining:
            r.take(entry)
            queue.extend((token, entry.pkgname) for token in entry.depends)
    _check_conflicts(r)
    packages = tuple(sorted(r.chosen.values(), key=lambda e: e.pkgname))
    return InstallSet(packages, tuple(sorted(external)))


def _close(r: _Resolver, queue: deque[tuple[str, str]], must: set[str], external: set[str]) -> None:
    """Resolve the queued (token, needed by) pairs and everything they pull in."""
    while queue:
        token, needed_by = queue.popleft()
        dep = r.parse(token, needed_by, "depends")
        if dep.conflict or r.satisfied(dep):
            continue
        entry = r.choose(dep)
        if entry is None:
            if dep.name in must or dep.name in r.by_name:
                why = r.why_not(dep)
                raise InstallError(f"cannot resolve {token} (needed by {needed_by}){why}")
            external.add(dep.name)
            continue
        if entry.pkgname in r.chosen:
            # Another version of a chosen package: apk installs one version per name.
            raise InstallError(
                f"cannot resolve {token} (needed by {needed_by}): {entry.pkgname}"
                f" {r.chosen[entry.pkgname].version} is already chosen"
            )
        r.take(entry)
        queue.extend((dep_token, entry.pkgname) for dep_token in entry.depends)


def _install_if(r: _Resolver) -> list[ApkInfo]:
    """Packages not chosen whose install_if holds for the chosen set (the highest
    version of each name), by name."""
    best: dict[str, ApkInfo] = {}
    key = sort_key(r.mode)
    for entry in r.entries:
        if not entry.install_if or entry.pkgname in r.chosen:
            continue
        other = best.get(entry.pkgname)
        if other is None or key(entry.version) > key(other.version):
            best[entry.pkgname] = entry
    joining = []
    for name in sorted(best):
        entry = best[name]
        deps = [r.parse(token, name, "install_if") for token in entry.install_if]
        if all(r.satisfied(d) != d.conflict for d in deps):
            joining.append(entry)
    return joining


def _check_conflicts(r: _Resolver) -> None:
    for entry in r.chosen.values():
        for token in entry.depends:
            dep = r.parse(token, entry.pkgname, "depends")
            if not dep.conflict:
                continue
            hits = [
                c.entry.pkgname
                for c in r.provided.get(dep.name, ())
                if c.entry.pkgname != entry.pkgname and r.fits(c, dep)
            ]
            if hits:
                raise InstallError(f"{entry.pkgname} conflicts with {hits[0]} ({token})")
