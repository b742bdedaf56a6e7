"""Hand-made values for plan() tests: specs, apks, indexes, repositories, jobs,
and a Case that plans them; shared by the plan and plan-memo tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.names import RepoKey
from reconciler.model.observations import IndexView, ObservedState, RepoObserved
from reconciler.model.packages import ApkInfo, BranchDesired, BrokenPackage, DepRef, PkgSpec
from reconciler.model.progress import PkgState
from reconciler.operator.intents import Intents
from reconciler.plan.actions import SubmitBuild
from reconciler.plan.inputs import BranchOrder, PlanSettings
from reconciler.plan.planner import Plan, plan

X86 = RepoKey("main", "", "x86_64")
ARM = RepoKey("main", "", "armv7")
NOW = 1_000_000.0


def spec(
    name: str,
    version: str = "1-r0",
    repo: RepoKey = X86,
    deps: tuple[str, ...] = (),
    native: tuple[str, ...] = (),
) -> PkgSpec:
    return PkgSpec(
        repo=repo,
        pkgname=name,
        version=version,
        path=f"main/{name}",
        pkgarch=repo.arch,
        build_deps=tuple(DepRef(repo, d) for d in deps),
        native_deps=native,
    )


def apk(name: str, version: str = "1-r0", origin: str | None = None, checksum: str = "") -> ApkInfo:
    return ApkInfo(
        name, version, "x86_64", 100, 10, checksum or f"Q1{name}{version}", origin=origin or name
    )


def index(*infos: ApkInfo, sha: str = "s" * 64) -> IndexView:
    return IndexView({i.filename: i.checksum for i in infos}, sha)


def repo(
    wip: tuple[ApkInfo, ...] = (),
    final: tuple[ApkInfo, ...] = (),
    symlink: IndexView | None = None,
    final_listed: bool = True,
) -> RepoObserved:
    return RepoObserved(
        wip={i.filename: i for i in wip},
        final={i.filename: i for i in final},
        wip_index=index(*wip),
        final_index=index(*final) if final and final_listed else None,
        symlink_index=symlink,
    )


def job(
    name: str,
    status: JobStatus,
    attempt: int = 1,
    version: str = "1-r0",
    repo_key: RepoKey = X86,
    ended: float | None = None,
    kind: JobKind = JobKind.BUILD,
) -> JobObservation:
    key = JobKey(JobIntent(kind, repo_key, name, version), attempt)
    return JobObservation(
        key,
        status,
        NOW - 100,
        ended if ended is not None else NOW - 50,
        "exit code 1" if status.is_failure else "",
        artifacts_dir="/a",
    )


@dataclass
class Case:
    specs: list[PkgSpec]
    repos: dict[RepoKey, RepoObserved] = field(default_factory=dict)
    jobs: list[JobObservation] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    max_parallel: int = 4
    arches: tuple[str, ...] = ("x86_64",)
    broken: tuple[BrokenPackage, ...] = ()
    intents: Intents = field(default_factory=Intents)

    def run(self) -> Plan:
        repos: dict[RepoKey, dict[str, PkgSpec]] = {}
        for s in self.specs:
            repos.setdefault(s.repo, {})[s.pkgname] = s
        desired = {"main": BranchDesired("main", "c0ffee", repos, self.broken)}
        observed = ObservedState(self.repos, {j.key: j for j in self.jobs}, self.rejected)
        settings = PlanSettings(
            (BranchOrder("main", self.arches),), (), self.max_parallel, 3, 60, 600, self.intents
        )
        return plan(desired, observed, settings, NOW)


def states(result: Plan) -> dict[str, tuple[PkgState, str]]:
    return {f"{p.repo.arch}/{p.pkgname}": (p.state, p.reason) for p in result.packages}


def submitted(result: Plan) -> list[str]:
    return [a.key.job_id for a in result.actions if isinstance(a, SubmitBuild)]
