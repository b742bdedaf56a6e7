"""Pushes to pmaports as the operators' side sees them: an event each, and fresh
tries for failing packages that a push touched, directly or through a package
they need (at any depth).

Pure: the loop hands in what the checkouts found changed and the pass's world.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from reconciler.model.packages import BranchDesired
from reconciler.model.progress import Event
from reconciler.operator.intents import Intents, RetryGrant
from reconciler.operator.operations import Applied
from reconciler.operator.world import World

# branch -> (commit before, commit after, package directories changed)
Pushes = Mapping[str, tuple[str, str, set[str]]]


def apply_pushes(intents: Intents, pushes: Pushes, world: World) -> Applied:
    """An event per push, and fresh tries for the failing packages it touched."""
    events = []
    for branch, (before, after, changed) in pushes.items():
        summary = f"pmaports {before[:12] or '(new)'} -> {after[:12]}: {len(changed)} changed"
        events.append(Event(world.now, branch, "", "", "push", summary))
        desired = world.desired.get(branch)
        if desired is None:
            continue
        mine = [(a, p) for b, a, p in world.failing if b == branch]
        intents, new = _fresh_tries(intents, desired, changed, mine, world, after)
        events += new
    return Applied(intents, tuple(events))


def _fresh_tries(
    intents: Intents,
    desired: BranchDesired,
    changed: set[str],
    failing: list[tuple[str, str]],
    world: World,
    commit: str,
) -> tuple[Intents, list[Event]]:
    """Retry grants for failing packages whose directory, or the directory of any
    package they need (directly or not), changed."""
    specs = {(k.arch, k.splitrepo, n): s for k, r in desired.repos.items() for n, s in r.items()}
    memo: dict[tuple[str, str, str], str | None] = {}

    def cause(key: tuple[str, str, str], path: tuple[tuple[str, str, str], ...]) -> str | None:
        if key in memo:
            return memo[key]
        spec = specs.get(key)
        found = None
        if spec is not None and key not in path:
            if spec.path in changed:
                found = spec.path
            else:
                for dep in spec.build_deps:
                    found = cause((dep.repo.arch, dep.repo.splitrepo, dep.pkgname), (*path, key))
                    if found:
                        break
        memo[key] = found
        return found

    grants = list(intents.retries)
    events = []
    branch = desired.branch
    for arch, pkgname in failing:
        reasons = [
            cause((arch, sr, pkgname), ()) for sr in ("", *{k.splitrepo for k in desired.repos})
        ]
        why = next((r for r in reasons if r), None)
        if why is None:
            continue
        highest = world.highest(branch, arch, pkgname)
        grants = [g for g in grants if (g.branch, g.arch, g.pkgname) != (branch, arch, pkgname)]
        message = f"{why} changed in {commit[:12]}: fresh tries"
        grants.append(RetryGrant(branch, arch, pkgname, highest, "push", message, world.now))
        events.append(Event(world.now, f"{branch}/{arch}", pkgname, "", "operator", message))
    return replace(intents, retries=tuple(grants)), events
