"""The plan of a pass in words a person reads on the queue page.

Pure: turns actions and repository phases into sentences such as "start build
foo 1.2-r0 for aarch64 (try 1)", "waiting: y needs z" or "publish
main/armv7 after 3 more builds".
"""

from __future__ import annotations

from collections import Counter

from reconciler.model.progress import PkgState, RepoPhase
from reconciler.plan.actions import (
    Action,
    CancelJob,
    CollectBuild,
    MirrorFinal,
    PruneFinal,
    PruneWip,
    PublishFinal,
    ReindexWip,
    RemoveBranch,
    SeedFromOrigin,
    SubmitBuild,
    SubmitSign,
    WriteSymlinkRepo,
)
from reconciler.plan.planner import Plan

# Not counted as builds still to come: done, or not built until a person acts.
NOT_BUILT_AGAIN = frozenset({PkgState.PUBLISHED, PkgState.BUILT, PkgState.HELD, PkgState.BROKEN})


def describe_action(action: Action) -> str:
    match action:
        case SubmitBuild(key=key, spec=spec):
            return f"start build {spec.pkgname} {spec.version} for {spec.repo} (try {key.attempt})"
        case CollectBuild(spec=spec):
            return f"collect the packages of {spec.pkgname} {spec.version} for {spec.repo}"
        case ReindexWip(repo=repo):
            return f"re-index the WIP repository {repo}"
        case PruneWip(repo=repo, filenames=names, why=why):
            return f"remove {len(names)} apk(s) from WIP {repo} ({why})"
        case WriteSymlinkRepo(repo=repo, from_wip=wip, from_final=final):
            return f"prepare the index of {repo}: {len(wip)} new and {len(final)} published apk(s)"
        case SubmitSign(key=key):
            return f"sign the index of {key.intent.repo} (try {key.attempt})"
        case PublishFinal(repo=repo):
            return f"publish {repo}"
        case CancelJob(key=key, why=why):
            return f"cancel {key.job_id} ({why})"
        case MirrorFinal(repo=repo):
            return f"copy {repo} to the mirror"
        case PruneFinal(repo=repo, filenames=names):
            return f"remove {len(names)} unlisted apk(s) from final {repo}"
        case SeedFromOrigin(repo=repo, origin=origin, filenames=names):
            return f"copy {len(names)} apk(s) published in {origin} into WIP {repo}"
        case RemoveBranch(branch=branch, why=why):
            return f"remove the repositories of {branch} ({why})"
    return type(action).__name__


def describe_actions(plan: Plan) -> tuple[str, ...]:
    """The actions of this pass, then what each unfinished repository waits for."""
    lines = [describe_action(a) for a in plan.actions]
    remaining: Counter[str] = Counter()
    waiting: list[str] = []
    for status in plan.packages:
        if status.state in NOT_BUILT_AGAIN:
            continue
        remaining[str(status.repo)] += 1
        if status.state is PkgState.WAITING:
            waiting.append(f"waiting: {status.pkgname} for {status.repo}: {status.reason}")
    for repo in plan.repos:
        left = remaining.get(str(repo.repo), 0)
        if repo.phase is RepoPhase.BUILDING:
            lines.append(f"publish {repo.repo} after {left} more build(s)")
        elif repo.phase is RepoPhase.BLOCKED and repo.reason.startswith("blocked:"):
            lines.append(f"publish {repo.repo}: {repo.reason}")  # "blocked: 1 broken package ..."
        elif repo.phase is RepoPhase.BLOCKED:
            lines.append(f"publish {repo.repo}: blocked ({repo.reason})")
    return tuple(lines + waiting)
