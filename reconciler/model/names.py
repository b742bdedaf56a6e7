"""Names that reach paths, command lines and pages, and the repositories they make.

Every package, arch, branch and split repo name is checked here before any path is
built from it; `RepoKey` is one published repository and knows its path below a
repository root, staging branches included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Names that end up in paths, command lines and pages. apk allows these
# characters in package names (apk-formats.md §2.2); we refuse everything else
# before any path is built.
PKGNAME_RE = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]*")
ARCH_RE = re.compile(r"[a-z0-9_]+")
BRANCH_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A version as it may appear in a file name: the grammar itself is checked by
# apkversion; this only keeps path-hostile characters out.
VERSION_CHARS_RE = re.compile(r"[A-Za-z0-9._~+-]+")
# Directory names of the repository layout (RepoKey.relpath): a branch of this
# name would be a path prefix of other branches' repositories.
LAYOUT_NAMES = frozenset({"staging", "extra-repos"})


def is_safe_name(name: str) -> bool:
    """A package, subpackage or splitrepo name that is safe to use in a path."""
    return bool(PKGNAME_RE.fullmatch(name)) and name not in {".", ".."} and len(name) <= 128


def is_safe_version(version: str) -> bool:
    return bool(VERSION_CHARS_RE.fullmatch(version)) and ".." not in version and len(version) <= 128


def is_safe_arch(arch: str) -> bool:
    return bool(ARCH_RE.fullmatch(arch)) and len(arch) <= 32


def is_safe_branch(branch: str) -> bool:
    """A branch name that is safe in a path and is not a directory of the layout."""
    return (
        bool(BRANCH_RE.fullmatch(branch))
        and ".." not in branch
        and len(branch) <= 100
        and branch not in LAYOUT_NAMES
    )


# A staging branch is `<origin>_staging_<name>`: a pmaports branch that tries a
# change against a configured branch and publishes under staging/<name>/<origin>.
STAGING_SEPARATOR = "_staging_"


def split_staging(branch: str) -> tuple[str, str] | None:
    """(origin, name) of a staging branch, None for any other branch."""
    origin, sep, name = branch.partition(STAGING_SEPARATOR)
    return (origin, name) if sep and origin and name else None


@dataclass(frozen=True, slots=True, order=True)
class RepoKey:
    """One published repository: a branch, a split repo ("" for the main one), an arch."""

    branch: str
    splitrepo: str
    arch: str

    def __str__(self) -> str:
        if self.splitrepo:
            return f"{self.branch}:{self.splitrepo}/{self.arch}"
        return f"{self.branch}/{self.arch}"

    @property
    def relpath(self) -> str:
        """Path below a repository root, in pmbootstrap's mirror layout."""
        prefix = f"extra-repos/{self.splitrepo}/" if self.splitrepo else ""
        staging = split_staging(self.branch)
        branch = f"staging/{staging[1]}/{staging[0]}" if staging else self.branch
        return f"{prefix}{branch}/{self.arch}"
