"""The status site: incremental writes, escaping, badge and monitoring rules.

The daemon scenario runs on the fake clock with the in-memory job service.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.fs.atomicfile import TREE_PREFIX
from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.names import RepoKey
from reconciler.model.packages import DepRef, PkgSpec
from reconciler.model.progress import PkgState, PkgStatus, RepoPhase, RepoStatus
from reconciler.operator.intents import Hold, Pause
from reconciler.plan.planner import Plan
from reconciler.site.feeds import badge_state, monitoring_lines
from reconciler.site.model import STATES, BranchInfo, SiteInput, branch_summaries, iso
from reconciler.site.state import build_pages
from reconciler.site.writer import SiteWriter

from .conftest import ConfigFactory, DaemonFactory, set_field

WATCHED = (".html", ".atom", ".svg", ".json", ".txt")
DUMPS: dict[str, Any] = {"sort_keys": True, "separators": (",", ":")}
LAST_SEEN = {"index.html", "status.json", "status/main.json"}  # show the last full pass


def snapshot(out: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every page: an atomic rewrite always changes the inode."""
    return {
        str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in out.rglob("*")
        if p.is_file() and p.suffix in WATCHED
    }


def test_unchanged_pass_writes_nothing_and_a_change_rewrites_only_its_pages(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config()
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    out = config.paths.html_out
    before = snapshot(out)
    rendered = daemon.site.rendered
    daemon.run_pass()
    assert snapshot(out) == before, "a pass with nothing changed rewrites no page"
    assert daemon.site.rendered == rendered, "rendering is skipped when nothing changed"
    daemon.run_pass(full=True)  # a new "daemon last seen": the files that show it
    seen = snapshot(out)
    assert {p for p in seen if before.get(p) != seen[p]} == LAST_SEEN
    assert daemon.site.rendered == rendered + 1, "only index.html is rendered again"
    before = seen

    set_field(pmaports / "main/postmarketos-ui-demo/APKBUILD", "pkgrel", "1")
    assert daemon.converge(max_seconds=120).all_published
    after = snapshot(out)
    changed = {p for p in after if before.get(p) != after[p]}
    package_pages = {p for p in changed if p.startswith("package/")}
    assert package_pages == {"package/main/postmarketos-ui-demo.html"}
    assert {"branch/main.html", "index.html", "status.json", "status/main.json"} <= changed
    assert "failures.html" not in changed  # nothing failed
    assert changed <= {
        "package/main/postmarketos-ui-demo.html",
        "branch/main.html",
        "index.html",
        "queue.html",
        "feed.atom",
        "feeds/main.atom",
        "status.json",
        "status/main.json",
        "status/main/all.json",  # the branch's packages: the bump's version
        "badge.svg",  # building while the bump was built, up-to-date again now
    }


def site_input(packages: tuple[PkgStatus, ...], ignore_errors: bool = False) -> SiteInput:
    repos = tuple(RepoStatus(key, RepoPhase.BUILDING) for key in sorted({p.repo for p in packages}))
    return SiteInput(
        title="t",
        url="https://build.example.org",
        branches=(BranchInfo("main", ("x86_64",), ignore_errors, ""),),
        plan=Plan((), packages, repos),
        specs={},
        versions={},
        jobs=(),
        events=(),
        max_parallel=1,
        monitoring_max=2,
    )


X86 = RepoKey("main", "", "x86_64")


def failed(name: str, tries: int = 3) -> PkgStatus:
    return PkgStatus(X86, name, "1-r0", PkgState.FAILED, "exit code 1", tries, 3, f"job-{name}")


def test_monitoring_txt_is_bpo_format() -> None:
    ok = PkgStatus(X86, "ok", "1-r0", PkgState.PUBLISHED)
    assert monitoring_lines(site_input((ok,))) == ("OK",)
    assert monitoring_lines(site_input((failed("a"),))) == (
        "1 failure(s) at [t](https://build.example.org):",
        "* 📦 [main/x86_64/a](https://build.example.org/logs/job-a.log) (try 3/3)",
    )
    lines = monitoring_lines(site_input((failed("a"), failed("b", 1), failed("c"))))
    assert lines[0] == "3 failure(s) at [t](https://build.example.org):"
    assert lines[2] == "* 📦 [main/x86_64/b](https://build.example.org/logs/job-b.log) (try 1/3)"
    assert lines[-1] == "* ..."
    assert len(lines) == 4


def test_badge_ignores_failures_on_branches_being_brought_up() -> None:
    assert badge_state(site_input((failed("a"),))) == "failed"
    assert badge_state(site_input((failed("a"),), ignore_errors=True)) == "building"
    published = PkgStatus(X86, "ok", "1-r0", PkgState.PUBLISHED)
    assert badge_state(site_input((published,))) == "up-to-date"


def test_untrusted_text_is_escaped_everywhere(tmp_path: Path) -> None:
    evil = "<script>alert('x')</script>\" onmouseover=\"x"
    status = PkgStatus(X86, "pkg", "1-r0", PkgState.FAILED, evil, 3, 3, "job-pkg")
    writer = SiteWriter(tmp_path)
    writer.render(site_input((status,)), 0.0)
    for path in tmp_path.rglob("*"):
        if path.suffix in (".html", ".atom", ".svg"):
            text = path.read_text()
            assert "<script>alert" not in text, path
            assert 'onmouseover="x' not in text, path
    page = (tmp_path / "failures.html").read_text()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#34; onmouseover=&#34;x" in page


def test_status_json_is_the_plain_json_dump_of_its_document() -> None:
    """status documents are spliced from pre-encoded rows: byte-equal to json.dumps.
    status.json and status/<branch>.json list the packages not published; every
    package is in its branch's package documents."""
    other = RepoKey("v25.12", "systemd", "aarch64")
    hidden = RepoKey("gone", "", "x86_64")  # a branch no longer configured
    packages = (
        failed("a"),
        PkgStatus(X86, 'q"uo\\te', "1-r0", PkgState.RETRYING, "ünïcode\n<x>", 1, 3, "j", 1.5e9),
        PkgStatus(other, "b", "2-r1", PkgState.PUBLISHED),
        PkgStatus(X86, "w", "1-r0", PkgState.WAITING, "w", needs=("a (failed)", 'b "€" for x')),
        PkgStatus(hidden, "c", "3-r0", PkgState.QUEUED),
    )
    site = replace(
        site_input(packages),
        title='t "€"',
        branches=(
            BranchInfo("main", ("x86_64",), False, "abc"),
            BranchInfo("v25.12", ("aarch64",), True, ""),
        ),
        holds=(Hold("main", "", "a", 'w"ho', "why <x>", 1.7e9, 1.9e9),),
        pauses=(Pause("v25.12", "aarch64", "me", "ünï", 1.7e9),),
        last_pass_at=1_796_560_000.123,
        stale_after_seconds=600.0,
    )
    summaries = {s.name: s for s in branch_summaries(site)}
    names = [str(s) for s in STATES]

    def row(s: PkgStatus) -> dict[str, object]:
        return {
            "repo": str(s.repo),
            "branch": s.repo.branch,
            "splitrepo": s.repo.splitrepo,
            "arch": s.repo.arch,
            "pkgname": s.pkgname,
            "version": s.version,
            "state": str(s.state),
            "reason": s.reason,
            "tries": s.tries,
            "max_tries": s.max_tries,
            "needs": list(s.needs),
            "log": f"logs/{s.job_id}.log" if s.job_id else "",
            "next_try_at": iso(s.next_try_at),
        }

    def order(s: PkgStatus) -> tuple[str, str, str, str]:
        return (s.repo.branch, s.repo.splitrepo, s.repo.arch, s.pkgname)

    def expected(branches: list[BranchInfo]) -> bytes:
        rows = [
            row(s)
            for b in branches
            for s in sorted(packages, key=order)
            if s.repo.branch == b.name and s.state is not PkgState.PUBLISHED
        ]
        document = {
            "title": site.title,
            "badge": badge_state(site),
            "states": names,
            "branches": {
                b.name: {
                    "ignore_errors": b.ignore_errors,
                    "commit": b.commit,
                    "published_commit": summaries[b.name].published_commit,
                    "counts": dict(zip(names, summaries[b.name].counts, strict=True)),
                    "package_documents": [f"status/{b.name}/all.json"],
                    "repos": {
                        r.repo: {
                            "phase": r.phase,
                            "reason": r.reason,
                            "published_commit": r.published_commit,
                            "published_at": r.published_at,
                            "counts": dict(zip(names, r.counts, strict=True)),
                        }
                        for r in summaries[b.name].repos
                    },
                }
                for b in branches
            },
            "packages": rows,
            "holds": [
                {
                    "branch": h.branch,
                    "arch": h.arch,
                    "pkgname": h.pkgname,
                    "who": h.who,
                    "why": h.why,
                    "since": iso(h.since),
                    "expires": iso(h.expires),
                }
                for h in site.holds
                if h.branch in {b.name for b in branches}
            ],
            "pauses": [
                {
                    "branch": p.branch,
                    "arch": p.arch,
                    "who": p.who,
                    "why": p.why,
                    "since": iso(p.since),
                    "expires": iso(p.expires),
                }
                for p in site.pauses
                if p.branch in {b.name for b in branches}
            ],
            "images": [
                {
                    "branch": i.target.branch,
                    "device": i.target.device,
                    "ui": i.target.ui,
                    "kernel": i.target.kernel,
                    "arch": i.arch,
                    "slot": i.target.slot,
                    "state": i.state.value,
                    "reason": i.reason,
                    "tries": i.tries,
                    "max_tries": i.max_tries,
                    "log": f"logs/{i.job_id}.log" if i.job_id else "",
                    "date": i.date,
                }
                for i in site.plan.images
                if i.target.branch in {b.name for b in branches}
            ],
            "last_pass_at": iso(site.last_pass_at),
            "last_pass_at_unix": site.last_pass_at,
            "stale_after_seconds": site.stale_after_seconds,
        }
        return (json.dumps(document, **DUMPS) + "\n").encode()

    documents = build_pages(site).documents
    assert documents["status.json"] == expected(list(site.branches))
    for b in site.branches:
        assert documents[f"status/{b.name}.json"] == expected([b])
        everything = [row(s) for s in sorted(packages, key=order) if s.repo.branch == b.name]
        assert (
            documents[f"status/{b.name}/all.json"]
            == (json.dumps({"branch": b.name, "packages": everything}, **DUMPS) + "\n").encode()
        )


def random_site(rng: random.Random, names: list[str]) -> SiteInput:
    branches = (BranchInfo("main", ("x86_64", "armv7"), False, "c1"),)
    branches += (BranchInfo("v1", ("x86_64",), True, ""),)
    statuses, specs = [], {}
    for b in branches:
        for arch in b.arches:
            for i, name in enumerate(names):
                repo = RepoKey(b.name, "extra" if i % 7 == 3 else "", arch)
                state = rng.choice(list(PkgState))
                statuses.append(PkgStatus(repo, name, "1-r0", state, f"why {i}", 1, 3, f"j{i}"))
                needed = [d for d in range(len(names)) if d != i and (i + d) % 4 == 0]
                deps = tuple(DepRef(repo, names[d]) for d in needed)
                specs[(repo, name)] = PkgSpec(
                    repo, name, "1-r0", f"main/{name}", arch, "d", "", build_deps=deps
                )
    return replace(
        site_input(tuple(statuses)),
        branches=branches,
        specs=specs,
        versions={(s.repo, s.pkgname): ("1-r0", "") for s in statuses[::3]},
    )


def mutate(rng: random.Random, site: SiteInput) -> SiteInput:
    statuses = list(site.plan.packages)
    i = rng.randrange(len(statuses))
    s = statuses[i]
    if rng.random() < 0.3:  # the plan made again: new objects of equal values, as a planner makes
        statuses = [replace(x) for x in statuses]
        s = statuses[i]
    if rng.random() < 0.15:  # a push (a new commit), or a branch brought up or no longer
        b = rng.randrange(len(site.branches))
        branch = site.branches[b]
        branch = (
            replace(branch, commit=f"c{rng.randrange(99)}")
            if rng.random() < 0.5
            else replace(branch, ignore_errors=not branch.ignore_errors)
        )
        site = replace(site, branches=(*site.branches[:b], branch, *site.branches[b + 1 :]))
    match rng.randrange(8):
        case 0:
            statuses[i] = replace(s, state=rng.choice(list(PkgState)), reason="changed")
        case 1:
            statuses[i] = replace(s, job_id=None if s.job_id else "jx")
        case 2:
            del statuses[i if rng.random() < 0.7 else -1]
        case 3:
            statuses.insert(i, replace(s, pkgname=f"new{rng.randrange(1000)}"))
        case 4:
            versions = dict(site.versions)
            versions[(s.repo, s.pkgname)] = ("2-r0", rng.choice(("", "1-r0")))
            return replace(site, versions=versions)
        case 5:
            intent = JobIntent(JobKind.BUILD, s.repo, s.pkgname, s.version)
            job = JobObservation(JobKey(intent, rng.randrange(1, 4)), JobStatus.FAILED, 1e9)
            return replace(site, jobs=(*site.jobs, job))
        case 6:  # a hold on its package, or one less
            hold = Hold(s.repo.branch, rng.choice(("", s.repo.arch)), s.pkgname, "op", "w", 1e9)
            held = site.holds[1:] if site.holds and rng.random() < 0.4 else (*site.holds, hold)
            return replace(site, holds=held)
        case _:
            specs = dict(site.specs)  # a new table: new or changed APKBUILDs
            key = (s.repo, s.pkgname)
            spec = specs.get(key) or PkgSpec(s.repo, s.pkgname, s.version, "main/x", s.repo.arch)
            specs[key] = replace(spec, description=f"d{rng.randrange(9)}", build_deps=())
            return replace(site, specs=specs)
    return replace(site, plan=replace(site.plan, packages=tuple(statuses)))


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("grid_rows", [150, 6])
def test_incremental_renders_equal_full_renders(tmp_path: Path, grid_rows: int) -> None:
    """A writer that builds only the pages whose inputs changed since its last render
    writes exactly what a new writer writes for the same snapshot, its branches on
    one grid page or cut into pages (which packages appearing and going cut again)."""
    rng = random.Random(7)
    site = random_site(rng, [f"p{i}" for i in range(25)])
    writer = SiteWriter(tmp_path / "kept", grid_rows=grid_rows)
    writer.render(site, 0.0)
    pages = writer.rendered
    for step in range(60):
        site = mutate(rng, site)
        before = writer.rendered
        writer.render(site, 0.0)  # one pass time: every page's footer is the same
        assert writer.rendered - before < pages / 2, "only what changed is rendered"
        fresh = tmp_path / f"fresh-{step}"
        SiteWriter(fresh, grid_rows=grid_rows).render(site, 0.0)
        assert files(tmp_path / "kept") == files(fresh), f"step {step}"


def test_a_restarted_writer_keeps_unchanged_pages_and_their_times(tmp_path: Path) -> None:
    """After a restart a page is rewritten only when its content changed: the time
    in its footer stays that of the pass that last changed it."""
    site = random_site(random.Random(3), [f"p{i}" for i in range(12)])
    SiteWriter(tmp_path).render(site, 1e9)
    before = snapshot(tmp_path)
    restarted = SiteWriter(tmp_path)
    restarted.render(site, 2e9)
    after = snapshot(tmp_path)
    rewritten = {p for p in after if before.get(p) != after[p]}
    assert not {p for p in rewritten if p.startswith("package/") or not p.endswith(".html")}
    page = (tmp_path / "package/main/p1.html").read_text()
    assert iso(1e9) in page and iso(2e9) not in page

    s = next(s for s in site.plan.packages if s.pkgname == "p1")
    changed = [replace(s, reason="changed") if x is s else x for x in site.plan.packages]
    restarted.render(replace(site, plan=replace(site.plan, packages=tuple(changed))), 3e9)
    assert iso(3e9) in (tmp_path / "package/main/p1.html").read_text()
    assert iso(1e9) in (tmp_path / "package/main/p2.html").read_text()


def test_a_first_render_cut_short_by_a_crash_leaves_no_trace_after_restart(
    tmp_path: Path,
) -> None:
    """The first render builds its tree in a hidden directory: a crash leaves only
    that (never a half-written page), and the restarted writer throws it away."""
    site = random_site(random.Random(5), [f"p{i}" for i in range(8)])
    crashed = tmp_path / "crashed"
    torn = crashed / f"{TREE_PREFIX}1234" / "package" / "main" / "p1.html"
    torn.parent.mkdir(parents=True)
    torn.write_bytes(b"<!DOCTYPE ht")
    SiteWriter(crashed).render(site, 0.0)
    clean = tmp_path / "clean"
    SiteWriter(clean).render(site, 0.0)
    assert files(crashed) == files(clean)
    assert not [p for p in crashed.iterdir() if p.name.startswith(".new-tree")]


def test_copied_job_logs_are_pruned_but_those_of_listed_jobs_stay(tmp_path: Path) -> None:
    writer = SiteWriter(tmp_path / "html")
    now = 2_000_000_000.0
    jobs = []
    for n in range(3):
        source = tmp_path / f"job{n}.log"
        source.write_text("x" * 10 + "\n")
        key = JobKey(JobIntent(JobKind.BUILD, RepoKey("main", "", "x86_64"), f"p{n}", "1-r0"), 1)
        jobs.append(JobObservation(key, JobStatus.FAILED, 0, 1, "exit 1", str(source)))
    writer.copy_logs(jobs)
    logs = tmp_path / "html/logs"
    for job, age_days in zip(jobs, (40, 35, 1), strict=True):
        stamp = now - age_days * 86400
        os.utime(logs / f"{job.key.job_id}.log", (stamp, stamp))
    listed = {jobs[1].key.job_id}  # still listed by the job service: shown, kept
    writer.prune_logs(now, 30 * 86400, 10**9, listed)
    assert sorted(p.name for p in logs.iterdir()) == sorted(f"{j.key.job_id}.log" for j in jobs[1:])
    writer.prune_logs(now, 30 * 86400, 5, set())  # over the size: oldest first
    assert [p.name for p in logs.iterdir()] == []
    writer.copy_logs(jobs[:1])  # a pruned log is copied again while its job is listed
    assert (logs / f"{jobs[0].key.job_id}.log").exists()
