"""The branches section: which pmaports branches are built, from which tree, for
which arches, and what their staging branches build.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from reconciler.config.reader import NodeReader
from reconciler.model.names import LAYOUT_NAMES, STAGING_SEPARATOR, is_safe_arch, is_safe_branch

# Directory names in the repository layout that a configured branch may not take.
RESERVED_BRANCHES = tuple(sorted(LAYOUT_NAMES, reverse=True))


@dataclass(frozen=True, slots=True)
class BranchConfig:
    name: str
    pmaports: Path
    arches: tuple[str, ...]  # build order; the first is the native arch
    ignore_errors: bool = False
    apk_version: str = "3.0"
    # A git remote (URL or path) to follow: `pmaports` is then the daemon's own
    # checkout of this branch, fetched on push triggers and every resync.
    remote: str = ""
    # Arches that staging branches `<name>_staging_<x>` of this branch build
    # (staging needs `remote`: staging branches are discovered there).
    staging_arches: tuple[str, ...] = ()
    # Set on a discovered staging branch: the configured branch it stages for.
    origin: str = ""

    @property
    def native_arch(self) -> str:
        return self.arches[0]


def read_branches(r: NodeReader, node: yaml.Node | None) -> tuple[BranchConfig, ...]:
    items = r.sequence(node, "branches", required=True)
    if node is not None and isinstance(node, yaml.SequenceNode) and not items:
        r.error(node, "branches: expected at least one branch")
    branches: list[BranchConfig] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        branch = _read_branch(r, item, f"branches[{index}]", seen)
        if branch is not None:
            branches.append(branch)
    return tuple(branches)


def _read_branch(r: NodeReader, item: yaml.Node, where: str, seen: set[str]) -> BranchConfig | None:
    m = r.mapping(
        item,
        where,
        {
            "name",
            "pmaports",
            "arches",
            "ignore_errors",
            "apk_version",
            "remote",
            "staging_arches",
        },
    )
    name = r.string(m.get("name"), f"{where}.name", None)
    if name is not None and (name in RESERVED_BRANCHES or STAGING_SEPARATOR in name):
        r.error(
            m.get("name") or item,
            f"{where}.name: {name!r} is a directory of the repository layout"
            f" (a configured branch may not be {' or '.join(RESERVED_BRANCHES)}"
            f" nor contain {STAGING_SEPARATOR!r})",
        )
    elif name is not None and not is_safe_branch(name):
        r.error(m.get("name") or item, f"{where}.name: {name!r} is not a safe branch name")
    if name in seen:
        r.error(m.get("name") or item, f"{where}.name: branch {name!r} is listed twice")
    seen.add(name or "")
    pmaports = r.path(m.get("pmaports"), f"{where}.pmaports", None)
    arches = r.str_list(m.get("arches"), f"{where}.arches", None, check=is_safe_arch)
    if m.get("arches") is not None and not arches:
        r.error(m["arches"], f"{where}.arches: expected at least one arch")
    if len(set(arches)) != len(arches):
        r.error(m.get("arches") or item, f"{where}.arches: an arch is listed twice")
    apk_version = r.choice(m.get("apk_version"), f"{where}.apk_version", "3.0", ("3.0", "2.14"))
    ignore_errors = r.boolean(m.get("ignore_errors"), f"{where}.ignore_errors", False)
    remote = r.string(m.get("remote"), f"{where}.remote", "")
    if remote.startswith("-") or "\n" in remote:
        r.error(m.get("remote"), f"{where}.remote: expected a git URL or path")
        remote = ""
    staging_arches = r.str_list(
        m.get("staging_arches"), f"{where}.staging_arches", [], check=is_safe_arch
    )
    if m.get("staging_arches") is None:
        staging_arches = list(arches)
    elif not set(staging_arches) <= set(arches):
        r.error(m["staging_arches"], f"{where}.staging_arches: expected arches of the branch")
    if not (name and pmaports is not None and arches):
        return None
    return BranchConfig(
        name=name,
        pmaports=pmaports,
        arches=tuple(arches),
        ignore_errors=ignore_errors,
        apk_version=apk_version,
        remote=remote,
        staging_arches=tuple(a for a in arches if a in staging_arches),
    )
