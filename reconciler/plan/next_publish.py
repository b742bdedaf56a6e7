"""What a repository publishes next: the set of apks its next index lists.

Pure. For each desired package at its desired version the apks come from final
when they are there already, else from WIP; held and broken packages keep what
final has of them. A file name in WIP whose bytes differ from final's is a
conflict ("rebuilt at the same version"), never a silent replacement, unless an
operator asked for that package's rebuild: then WIP's build replaces final's.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.model.names import RepoKey
from reconciler.model.observations import RepoObserved
from reconciler.model.packages import ApkInfo, BranchDesired, PkgSpec
from reconciler.operator.intents import Intents

SAME_VERSION = "rebuilt at the same version: bump pkgrel"


def has_origin(info: ApkInfo | None, pkgname: str) -> bool:
    return info is not None and (info.origin or info.pkgname) == pkgname


def published_from(index: object, commit: str) -> tuple[str, str]:
    """(commit, time) recorded in the live index's DESCRIPTION."""
    description = getattr(index, "description", "") or ""
    fields = dict(part.split("=", 1) for part in description.split() if "=" in part)
    commit = fields.get("commit", "")
    return ("" if commit == "-" else commit), fields.get("published", "")


def publish_target(
    desired: BranchDesired,
    key: RepoKey,
    specs: Mapping[str, PkgSpec],
    obs: RepoObserved,
    held: set[str],
    rebuilt: frozenset[str] | set[str] = frozenset(),
) -> tuple[dict[str, str], list[str], list[str], list[str]]:
    """What the repository should publish: file name -> checksum, and where each comes from."""
    target: dict[str, str] = {}
    from_wip: list[str] = []
    from_final: list[str] = []
    conflicts: list[str] = []
    wanted = {name: spec.version for name, spec in specs.items() if name not in held}
    for name, info in sorted(obs.final.items()):
        # A held package keeps exactly what final has of it, whatever the version.
        if (
            (info.origin or info.pkgname) in held
            and obs.final_index
            and name in obs.final_index.files
        ):
            target[name] = info.checksum
            from_final.append(name)
    for broken in desired.broken:
        # Keep what is published of a package whose APKBUILD is unusable: never lose data.
        if (broken.path.startswith("extra-repos/") and key.splitrepo) or not key.splitrepo:
            for name, info in obs.final.items():
                if (info.origin or info.pkgname) == broken.pkgname and broken.pkgname not in wanted:
                    target[name] = info.checksum
                    from_final.append(name)
    final_has = {
        (info.origin or info.pkgname)
        for info in obs.final.values()
        if wanted.get(info.origin or info.pkgname) == info.version
        and (info.origin or info.pkgname) not in rebuilt
    }
    for name, info in sorted(obs.final.items()):
        origin = info.origin or info.pkgname
        if origin in final_has and wanted.get(origin) == info.version:
            target[name] = info.checksum
            from_final.append(name)
    for name, info in sorted(obs.wip.items()):
        origin = info.origin or info.pkgname
        if wanted.get(origin) != info.version or origin in final_has:
            continue
        in_final = obs.final.get(name)
        if in_final is not None and in_final.checksum != info.checksum and origin not in rebuilt:
            conflicts.append(f"{name} exists in final with other bytes ({SAME_VERSION})")
            continue
        target[name] = info.checksum
        from_wip.append(name)
    return target, from_wip, from_final, conflicts


def rebuild_pending(intents: Intents, spec: PkgSpec, listed: str | None) -> str | None:
    """The checksum an operator's rebuild replaces, while final still lists it."""
    request = intents.rebuild_for(spec.repo, spec.pkgname, spec.version)
    return request.replaced if request is not None and listed == request.replaced else None


def rebuilt_packages(
    intents: Intents, key: RepoKey, specs: Mapping[str, PkgSpec], obs: RepoObserved
) -> set[str]:
    """Packages of this repository whose asked-for rebuild waits in WIP to replace
    final's apk (looked up from the requests: usually there are none)."""
    rebuilt = set()
    listed = obs.final_index.files if obs.final_index is not None else {}
    for request in intents.rebuilds:
        spec = specs.get(request.pkgname)
        if spec is None or not request.applies(key, spec.pkgname, spec.version):
            continue
        name = f"{spec.pkgname}-{spec.version}.apk"
        in_wip = obs.wip.get(name)
        replaced = rebuild_pending(intents, spec, listed.get(name))
        if in_wip is not None and replaced not in (None, in_wip.checksum):
            rebuilt.add(spec.pkgname)
    return rebuilt
