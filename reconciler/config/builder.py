"""The builder section of the configuration: which builder runs inside build jobs.

`synthetic` writes apks without compiling (development, tests); `pmbootstrap`
runs `pmbootstrap build` (see jobs/pmbootstrap.py). Read with every problem
reported by line, like the rest of the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import yaml

from reconciler.config.reader import NodeReader
from reconciler.model.names import is_safe_branch

PMBOOTSTRAP_GIT = "https://gitlab.postmarketos.org/postmarketOS/pmbootstrap.git"


@dataclass(frozen=True, slots=True)
class BuilderConfig:
    kind: str = "synthetic"
    duration_seconds: float = 0.2  # synthetic: how long each build takes
    fail: tuple[str, ...] = ()  # synthetic: "pkgname" or "branch/arch/pkgname" globs
    pmbootstrap: str = "pmbootstrap"
    strict_exclude: tuple[str, ...] = ("gcc*-*",)
    silence_timeout_seconds: float = 900.0  # pmbootstrap: stop a build silent this long
    # builds.sr.ht: pmbootstrap is cloned from this git URL, at the branch given per
    # pmaports branch (others: master; a staging branch: its origin's); pmaports
    # from pmaports_git or the branch's remote.
    pmbootstrap_git: str = PMBOOTSTRAP_GIT
    pmbootstrap_branches: tuple[tuple[str, str], ...] = ()
    pmaports_git: str = ""


def read_builder(r: NodeReader, node: yaml.Node | None, branches: set[str]) -> BuilderConfig:
    """The builder section; `branches` are the names of the configured branches."""
    w = "builder."
    b = r.mapping(node, "builder", {f.name for f in fields(BuilderConfig)})
    names = branches
    pmb_branches: list[tuple[str, str]] = []
    for name, value in r.mapping(
        b.get("pmbootstrap_branches"), w + "pmbootstrap_branches", names
    ).items():
        git_branch = r.string(value, f"{w}pmbootstrap_branches.{name}", "master")
        if not is_safe_branch(git_branch):
            r.error(value, f"{w}pmbootstrap_branches.{name}: {git_branch!r} is not a branch name")
        pmb_branches.append((name, git_branch))
    urls: dict[str, str] = {}
    for name, default in (("pmbootstrap_git", PMBOOTSTRAP_GIT), ("pmaports_git", "")):
        urls[name] = r.string(b.get(name), w + name, default)
        if urls[name] and not urls[name].startswith(("http://", "https://")):
            r.error(b.get(name), f"{w}{name}: expected an http:// or https:// git URL")
    return BuilderConfig(
        kind=r.choice(b.get("kind"), w + "kind", "synthetic", ("synthetic", "pmbootstrap")),
        duration_seconds=r.number(b.get("duration_seconds"), w + "duration_seconds", 0.2),
        fail=tuple(r.str_list(b.get("fail"), w + "fail", [])),
        pmbootstrap=r.string(b.get("pmbootstrap"), w + "pmbootstrap", "pmbootstrap"),
        strict_exclude=tuple(r.str_list(b.get("strict_exclude"), w + "strict_exclude", ["gcc*-*"])),
        silence_timeout_seconds=r.number(
            b.get("silence_timeout_seconds"), w + "silence_timeout_seconds", 900.0
        ),
        pmbootstrap_branches=tuple(pmb_branches),
        pmbootstrap_git=urls["pmbootstrap_git"],
        pmaports_git=urls["pmaports_git"],
    )
