"""Small site snapshots for tests that render a real site: one published package,
with the daemon's last full pass where the test wants it; any package states on
one branch; and a page's text as a reader sees it."""

from __future__ import annotations

import re
from dataclasses import replace
from html import unescape

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


def site_of(
    packages: tuple[PkgStatus, ...],
    *,
    repos: tuple[RepoStatus, ...] | None = None,
    queue: tuple[PkgStatus, ...] = (),
    arches: tuple[str, ...] = ("x86_64", "aarch64", "armv7"),
    **fields: object,
) -> SiteInput:
    """A one-branch ("main") snapshot of these package states: every repository
    they name building unless `repos` says otherwise, `queue` as the plan's queue;
    `fields` replace any other field of the SiteInput (jobs, events, ...)."""
    if repos is None:
        keys = sorted({p.repo for p in packages}) or [RepoKey("main", "", arches[0])]
        repos = tuple(RepoStatus(key, RepoPhase.BUILDING) for key in keys)
    site = SiteInput(
        title="reconciler",
        url="https://build.example.org/",
        branches=(BranchInfo("main", arches, False, ""),),
        plan=Plan((), packages, repos, None, queue),
        specs={},
        versions={},
        jobs=(),
        events=(),
        max_parallel=2,
    )
    return replace(site, **fields)  # type: ignore[arg-type]


BLOCK_TAG = re.compile(
    r"</?(td|th|tr|li|p|h[1-6]|div|br|pre|section|article|ul|ol|table|thead|tbody|tfoot|"
    r"header|footer|main|nav|form|label)\b[^>]*>"
)


def page_text(html: str) -> str:
    """A page's text as a reader sees it: a block's tags between words, other tags
    dropped, entities read, spaces joined."""
    text = re.sub(r"<[^>]+>", "", BLOCK_TAG.sub(" ", html))
    return " ".join(unescape(text).split())


# -- a snapshot with every kind of trouble, for layout, contrast and screenshots --

RICH_ARCHES = ("x86_64", "aarch64", "armv7", "riscv64", "loongarch64")
LONG_NAME = "postmarketos-ui-plasma-mobile-extras-with-a-very-long-name"
EXCERPT = (
    "==> Building foo-utils 1.2.3-r4 for aarch64\n"
    "src/parse.c:412:17: error: 'struct config' has no member named 'timeout_ms'\n"
    "  412 |     cfg->timeout_ms = strtoul(value, NULL, 10); /* <script>alert(1)</script> */\n"
    "      |                 ^~\n"
    "make[2]: *** [Makefile:88: src/parse.o] Error 1\n"
    "ERROR: foo-utils: build failed"
)


def rich_site(now: float) -> SiteInput:
    """One branch ("main") of five arches, with a package in each of the nine
    states, a failed one with its log excerpt, packages blocked by it, a retrying
    one, a broken APKBUILD with a long reason, a held and a paused arch, the
    systemd split repository, a long package name, running local and remote jobs,
    the plan's queue, transitions over two days and operator actions."""
    from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
    from reconciler.model.packages import DepRef, PkgSpec
    from reconciler.model.progress import Event, OperationRecord
    from reconciler.operator.intents import Hold, Pause

    def repo(arch: str, split: str = "") -> RepoKey:
        return RepoKey("main", split, arch)

    def key(arch: str, name: str, version: str, attempt: int, split: str = "") -> JobKey:
        return JobKey(JobIntent(JobKind.BUILD, repo(arch, split), name, version), attempt)

    failed_job = key("aarch64", "foo-utils", "1.2.3-r4", 3)
    retry_job = key("armv7", "libfoo", "0.9-r1", 1)
    running_local = key("x86_64", "gcc-aarch64", "14.2.0-r0", 1)
    running_remote = key("riscv64", "linux-demo", "6.12.1-r0", 2)
    statuses: list[PkgStatus] = []
    queue: list[PkgStatus] = []
    for arch in RICH_ARCHES:
        for name, version in (("hello", "1.0-r0"), ("postmarketos-base", "35-r2")):
            statuses.append(PkgStatus(repo(arch), name, version, PkgState.PUBLISHED))
        foo = (
            PkgStatus(
                repo(arch),
                "foo-utils",
                "1.2.3-r4",
                PkgState.FAILED,
                "exit code 2 (try 3 of 3)",
                3,
                3,
                failed_job.job_id,
                excerpt=EXCERPT,
            )
            if arch == "aarch64"
            else PkgStatus(
                repo(arch),
                "foo-utils",
                "1.2.3-r4",
                PkgState.BUILT,
                "in WIP, waiting for the repository to publish",
            )
        )
        statuses.append(foo)
        statuses.append(
            PkgStatus(
                repo(arch),
                "foo-gui",
                "2.0.1-r0",
                PkgState.WAITING,
                "blocked by foo-utils (failed)" if arch == "aarch64" else "needs libfoo",
                needs=("foo-utils (failed)",) if arch == "aarch64" else ("libfoo",),
            )
        )
        statuses.append(
            PkgStatus(
                repo(arch),
                "libfoo",
                "0.9-r1",
                PkgState.RETRYING,
                "exit code 1 (try 1 of 3); next try at 14:20:00 UTC",
                1,
                3,
                retry_job.job_id,
                now + 900,
                excerpt="ld: cannot find -lbar",
            )
            if arch == "armv7"
            else PkgStatus(
                repo(arch),
                "libfoo",
                "0.9-r1",
                PkgState.QUEUED,
                "ready, waiting for a free job slot",
            )
        )
        if arch != "armv7":
            queue.append(statuses[-1])
        statuses.append(
            PkgStatus(
                repo(arch),
                "badver",
                "",
                PkgState.BROKEN,
                "main/badver/APKBUILD: line 3: pkgver: invalid characters in '1.0-beta'",
            )
        )
        statuses.append(
            PkgStatus(
                repo(arch),
                "device-demo-phone",
                "3-r0",
                PkgState.HELD,
                "held by ana since 2026-12-05 10:00 UTC: the panel driver regressed",
            )
        )
        statuses.append(
            PkgStatus(
                repo(arch),
                LONG_NAME,
                "0.1_git20261201-r0",
                PkgState.QUEUED,
                "ready; main/loongarch64 is paused: builder maintenance"
                if arch == "loongarch64"
                else "ready, waiting for a free job slot",
            )
        )
        if arch != "loongarch64":
            queue.append(statuses[-1])
        statuses.append(
            PkgStatus(
                repo(arch, "systemd"),
                "systemd",
                "257.1-r0",
                PkgState.PUBLISHED if arch != "riscv64" else PkgState.WAITING,
                "" if arch != "riscv64" else "needs gcc-riscv64 published for x86_64",
                needs=() if arch != "riscv64" else ("gcc-riscv64 published for x86_64",),
            )
        )
    statuses.append(
        PkgStatus(
            repo("x86_64"),
            "gcc-aarch64",
            "14.2.0-r0",
            PkgState.BUILDING,
            "building, try 1 of 3",
            0,
            3,
            running_local.job_id,
        )
    )
    statuses.append(
        PkgStatus(
            repo("riscv64"),
            "linux-demo",
            "6.12.1-r0",
            PkgState.BUILDING,
            "building, try 2 of 3",
            1,
            3,
            running_remote.job_id,
        )
    )
    repos = tuple(
        RepoStatus(
            repo(arch, split),
            phase,
            reason,
            "c0ffee" * 6 if phase is RepoPhase.PUBLISHED else "",
            "2026-12-05T08:00:00Z",
        )
        for arch, split, phase, reason in (
            ("x86_64", "", RepoPhase.BUILDING, ""),
            (
                "aarch64",
                "",
                RepoPhase.BLOCKED,
                "1 failed package (foo-utils), 1 package waiting for them",
            ),
            ("armv7", "", RepoPhase.BUILDING, ""),
            (
                "riscv64",
                "",
                RepoPhase.BUILDING,
                "waits for native packages in main/x86_64: gcc-riscv64",
            ),
            ("loongarch64", "", RepoPhase.BUILDING, ""),
            ("x86_64", "systemd", RepoPhase.PUBLISHED, ""),
            ("aarch64", "systemd", RepoPhase.PUBLISHED, ""),
            ("armv7", "systemd", RepoPhase.PUBLISHED, ""),
            ("riscv64", "systemd", RepoPhase.BUILDING, ""),
            ("loongarch64", "systemd", RepoPhase.PUBLISHED, ""),
        )
    )
    specs = {}
    for s in statuses:
        if s.version:
            deps = (
                (DepRef(s.repo, "foo-utils"), DepRef(s.repo, "libfoo"))
                if s.pkgname == "foo-gui"
                else ()
            )
            specs[(s.repo, s.pkgname)] = PkgSpec(
                s.repo,
                s.pkgname,
                s.version,
                f"main/{s.pkgname}",
                s.repo.arch,
                f"The {s.pkgname} package, described at some length so that it wraps on a phone",
                "https://example.org/" + s.pkgname,
                build_deps=deps,
            )
    jobs = (
        JobObservation(
            failed_job,
            JobStatus.FAILED,
            now - 4000,
            now - 3500,
            "exit code 2",
            "/x/log",
            excerpt=EXCERPT,
        ),
        JobObservation(retry_job, JobStatus.FAILED, now - 1000, now - 900, "exit code 1", "/x/log"),
        JobObservation(
            running_local, JobStatus.RUNNING, now - 300, None, "", "/data/jobs/live/x/log"
        ),
        JobObservation(
            running_remote,
            JobStatus.RUNNING,
            now - 200,
            None,
            "",
            None,
            "https://builds.example.org/~ci/job/4242",
        ),
    )
    day = 86_400.0
    events = (
        Event(
            now - 3500,
            "main/aarch64",
            "foo-utils",
            "1.2.3-r4",
            "failed",
            "exit code 2 (try 3 of 3)",
            failed_job.job_id,
        ),
        Event(now - 3600, "main/x86_64", "hello", "1.0-r0", "published", "published"),
        Event(
            now - day,
            "main/aarch64",
            "badver",
            "",
            "broken",
            "main/badver/APKBUILD: line 3: pkgver: invalid characters in '1.0-beta'",
        ),
        Event(
            now - day - 60,
            "main:systemd/x86_64",
            "systemd",
            "257.1-r0",
            "fixed",
            "built after 2 failed tries",
        ),
    )
    operations = (
        OperationRecord(
            now - 7200,
            "hold",
            "ana",
            "the panel driver regressed",
            "main device-demo-phone",
            "applied",
            "held on every arch",
        ),
        OperationRecord(
            now - 5000,
            "fail-job",
            "bob",
            "stuck for hours",
            failed_job.job_id,
            "applied",
            "declared dead: cancelled, counts as a failed try",
        ),
    )
    return replace(
        site_of(tuple(statuses), repos=repos, queue=tuple(queue), arches=RICH_ARCHES),
        title="build.example.org",
        specs=specs,
        versions={
            (s.repo, s.pkgname): (s.version, "") for s in statuses if s.state is PkgState.BUILT
        },
        jobs=jobs,
        events=events,
        operations=operations,
        holds=(
            Hold("main", "", "device-demo-phone", "ana", "the panel driver regressed", now - 7200),
        ),
        pauses=(Pause("main", "loongarch64", "eve", "builder maintenance", now - 600, now + 3600),),
        last_pass_at=now - 30,
        max_parallel=2,
    )
