"""Small site snapshots for tests that render a real site: one published package,
with the daemon's last full pass where the test wants it."""

from __future__ import annotations

from reconciler.model.names import RepoKey
from reconciler.model.progress import PkgState, PkgStatus, RepoPhase, RepoStatus
from reconciler.plan.planner import Plan
from reconciler.site.model import BranchInfo, SiteInput


def one_package_site(last_pass_at: float, stale_after_seconds: float = 600.0) -> SiteInput:
    repo = RepoKey("main", "", "x86_64")
    return SiteInput(
        title="reconciler",
        url="https://build.example.org/",
        branches=(BranchInfo("main", ("x86_64",), False, ""),),
        plan=Plan(
            (),
            (PkgStatus(repo, "hello", "1-r0", PkgState.PUBLISHED),),
            (RepoStatus(repo, RepoPhase.PUBLISHED),),
        ),
        specs={},
        versions={},
        jobs=(),
        events=(),
        max_parallel=1,
        last_pass_at=last_pass_at,
        stale_after_seconds=stale_after_seconds,
    )
