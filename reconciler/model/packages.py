"""Packages as pmaports asks for them and as apk files describe them.

`PkgSpec` is what one APKBUILD wants in one repository, `BranchDesired` all of a
branch's wants, `ApkInfo` what a built apk's .PKGINFO says (an index entry).
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.names import RepoKey


@dataclass(frozen=True, slots=True)
class ApkInfo:
    """What an apk's .PKGINFO and file say, as needed for an APKINDEX entry.

    Optional fields are None when the line was absent, so that an index can be
    written back byte for byte (apk 2.14 writes `c:` even for an empty commit).
    """

    pkgname: str
    version: str
    arch: str
    size: int  # size of the .apk file in bytes (S:)
    installed_size: int  # .PKGINFO size (I:)
    checksum: str  # "Q1" + base64(sha1(control member)) (C:)
    description: str = ""
    url: str = ""
    license: str = ""
    origin: str | None = None
    maintainer: str | None = None
    builddate: int = 0
    commit: str | None = None
    provider_priority: int = 0
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    install_if: tuple[str, ...] = ()
    datahash: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.pkgname}-{self.version}.apk"


@dataclass(frozen=True, slots=True)
class SubpackageSpec:
    """One subpackage a build produces beside its main package."""

    name: str
    arch: str  # .PKGINFO arch: "noarch", one the APKBUILD names, "" for the arch built for
    description: str
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PkgSpec:
    """A package that should exist at `version` in repository `repo`."""

    repo: RepoKey
    pkgname: str
    version: str  # full "pkgver-rpkgrel"
    path: str  # APKBUILD directory relative to the pmaports root, e.g. "main/foo"
    pkgarch: str  # "noarch" or repo.arch
    description: str = ""
    url: str = ""
    license: str = ""
    maintainer: str = ""
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    subpackages: tuple[SubpackageSpec, ...] = ()
    options: tuple[str, ...] = ()
    # Internal build dependencies, resolved to the origin pkgnames that must be in
    # WIP or final at their desired version before this package may start.
    build_deps: tuple[DepRef, ...] = ()
    # Foreign arches only: native packages (origins) that must be published in
    # the native final repository first (cross toolchain, crossdirect, ...).
    native_deps: tuple[str, ...] = ()

    def arch_of(self, sub: SubpackageSpec) -> str:
        """The .PKGINFO arch of one of its subpackages (shared by every arch's spec)."""
        return sub.arch or self.repo.arch


@dataclass(frozen=True, slots=True, order=True)
class DepRef:
    """An internal dependency: a package (origin) in a given repository."""

    repo: RepoKey
    pkgname: str


@dataclass(frozen=True, slots=True)
class BrokenPackage:
    """An APKBUILD that could not be turned into a PkgSpec, with the reason and
    what is known of it: its version when the parse got that far ("" else), the
    line of the APKBUILD the reason names (None when it names none)."""

    path: str
    pkgname: str
    reason: str
    version: str = ""  # full "pkgver-rpkgrel"
    line: int | None = None


@dataclass(frozen=True, slots=True)
class BranchDesired:
    """Everything wanted for one branch, derived from one pmaports tree state."""

    branch: str
    commit: str  # "" when the tree is a plain directory
    repos: dict[RepoKey, dict[str, PkgSpec]]
    broken: tuple[BrokenPackage, ...] = ()
