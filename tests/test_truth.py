"""What the site and the terminal say, with the real loop and the real files:
a broken APKBUILD beside a version bump, a bump of one foreign arch only,
retrying against exhausted failures, a hold, and operations that changed
nothing. The daemons run on the fake clock with the in-memory job service
unless a test runs the command line's own daemon."""

from __future__ import annotations

import html
import json
from pathlib import Path

from reconciler.config.settings import Config
from reconciler.loop import Daemon
from reconciler.model.progress import PkgState

from .apkcheck import read_index
from .command_line import Ran, run_cli
from .conftest import ConfigFactory, DaemonFactory, git, set_field

BADVER = 'pkgname=badver\npkgver=1.0-beta\npkgrel=0\narch="all"\nlicense="MIT"\n'


def cli(config: Config, *args: str) -> Ran:
    return run_cli(*args, "--config", config.source)


def one_arch(pmaports: Path) -> str:
    return f"branches:\n  - {{name: main, pmaports: {pmaports}, arches: [x86_64]}}\n"


def final_versions(config: Config, repo: str) -> dict[str, str]:
    index = read_index(config.paths.final_repo / repo / "APKINDEX.tar.gz")
    return {e["P"]: e["V"] for e in index.entries}


def page(config: Config, name: str) -> str:
    """A page's text, entities decoded: what a reader sees."""
    return html.unescape((config.paths.html_out / name).read_text(encoding="utf-8"))


def states(daemon: Daemon) -> dict[str, PkgState]:
    result = daemon.converge(max_seconds=600)
    return {p.pkgname: p.state for p in result.plan.packages if p.repo.arch == "x86_64"}


def test_a_broken_apkbuild_is_shown_everywhere_and_the_bump_beside_it_publishes(
    make_config: ConfigFactory, pmaports: Path
) -> None:
    config = make_config(branches=one_arch(pmaports))
    assert cli(config, "run", "--once").returncode == 0
    set_field(pmaports / "main/foo-gui/APKBUILD", "pkgrel", "1")
    (pmaports / "main/badver").mkdir()
    (pmaports / "main/badver/APKBUILD").write_text(BADVER)

    ran = cli(config, "run", "--once")  # the real daemon, local jobs
    assert ran.returncode == 1, ran.stdout
    reason = "main/badver/APKBUILD: line 2: pkgver: invalid characters in '1.0-beta'"
    assert f"main/x86_64 badver : broken: {reason}" in ran.stdout.replace("  ", " ")
    assert final_versions(config, "main/x86_64")["foo-gui"] == "2.0.1-r1", "the bump published"

    status = json.loads(page(config, "status.json"))
    (row,) = [p for p in status["packages"] if p["pkgname"] == "badver"]
    assert (row["state"], row["reason"]) == ("broken", reason)
    counts = status["branches"]["main"]["counts"]
    # status.json lists the packages not published; the package documents every one
    assert counts["broken"] == 1 and sum(counts.values()) - counts["published"] == 1
    (document,) = status["branches"]["main"]["package_documents"]
    every = json.loads(page(config, document))["packages"]
    assert len(every) == sum(counts.values()) and row in every
    repo = status["branches"]["main"]["repos"]["main/x86_64"]
    assert (repo["phase"], repo["reason"]) == ("blocked", "1 broken package (badver)")
    assert reason in page(config, "failures.html")
    assert reason in page(config, "package/main/badver.html")
    feed = page(config, "feed.atom")
    assert "badver" in feed and "broken" in feed
    assert "no longer in pmaports" not in (config.paths.state / "events.jsonl").read_text()
    monitoring = page(config, "monitoring.txt")
    assert "[main/x86_64/badver](" in monitoring and "(APKBUILD broken)" in monitoring

    shown = cli(config, "status")
    assert shown.returncode == 1
    assert f"main/x86_64 badver ?: broken: {reason}" in shown.stdout


def test_a_bump_of_one_foreign_arch_leaves_the_published_line_right(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    git(pmaports, "init", "-q", "-b", "main")
    git(pmaports, "add", "-A")
    git(pmaports, "commit", "-q", "-m", "first")
    first = git(pmaports, "rev-parse", "HEAD").strip()
    branches = f"branches:\n  - {{name: main, pmaports: {pmaports}, arches: [x86_64, aarch64]}}\n"
    config = make_config(branches=branches)
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=600).all_published
    set_field(pmaports / "device/main/device-demo-phone/APKBUILD", "pkgrel", "1")  # aarch64 only
    git(pmaports, "commit", "-q", "-am", "bump the phone")
    second = git(pmaports, "rev-parse", "HEAD").strip()
    assert daemon.converge(max_seconds=600).all_published

    status = json.loads(page(config, "status.json"))
    repos = status["branches"]["main"]["repos"]
    assert repos["main/aarch64"]["published_commit"] == second
    assert repos["main/x86_64"]["published_commit"] == first  # nothing changed there
    index = page(config, "index.html")
    assert "not yet published" not in index
    assert first[:7] in index and second[:7] in index, "both commits are named"


def test_a_retrying_package_raises_no_alarm_an_exhausted_one_does(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config(
        branches=one_arch(pmaports),
        builder='duration_seconds: 0, fail: ["hello-x86"]',
        retries="max_tries: 2, backoff_seconds: 3600, backoff_max_seconds: 3600",
    )
    daemon = fake_daemon(config)
    result = daemon.run_pass(full=True)
    for _ in range(20):  # until the first try failed; the next is in an hour
        hello = next(p for p in result.plan.packages if p.pkgname == "hello-x86")
        if hello.state is PkgState.RETRYING:
            break
        result = daemon.run_pass()
    assert hello.state is PkgState.RETRYING and hello.next_try_at is not None
    assert page(config, "monitoring.txt") == "OK\n"
    assert ">failed<" not in page(config, "badge.svg")
    assert "next try" in page(config, "package/main/hello-x86.html")

    result = daemon.converge(max_seconds=7200)  # the hour passes: try 2/2 fails
    hello = next(p for p in result.plan.packages if p.pkgname == "hello-x86")
    assert hello.state is PkgState.FAILED
    monitoring = page(config, "monitoring.txt").splitlines()
    assert monitoring[0] == "1 failure(s) at [reconciler](http://localhost:8080/):"
    assert monitoring[1].startswith("* 📦 [main/x86_64/hello-x86](")
    assert monitoring[1].endswith(") (try 2/2)")
    assert ">failed<" in page(config, "badge.svg")


def test_a_hold_is_its_own_state_in_the_grid_the_counts_and_the_page(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config(branches=one_arch(pmaports))
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    ran = cli(config, "hold", "--branch", "main", "hello-x86", "--why", "bad upstream")
    assert ran.returncode == 0
    assert states(daemon)["hello-x86"] is PkgState.HELD  # although its version is published
    status = json.loads(page(config, "status.json"))
    assert status["branches"]["main"]["counts"]["held"] == 1
    assert [h["pkgname"] for h in status["holds"]] == ["hello-x86"]
    assert "bad upstream" in page(config, "package/main/hello-x86.html")
    assert "bad upstream" in page(config, "index.html"), "holds in force are on the front page"
    grid = page(config, "branch/main.html")
    assert '<td class="cell s-held" title="' in grid, "a held cell in the grid"


def test_refused_and_no_op_operations_are_on_the_operations_page(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config(branches=one_arch(pmaports))
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    assert cli(config, "requeue", "--branch", "main", "--why", "just in case").returncode == 0
    assert cli(config, "remove-branch", "--branch", "main", "--why", "oops").returncode == 0
    daemon.converge(max_seconds=120)
    operations = page(config, "operations.html")
    assert "requeue" in operations and "no-op" in operations and "nothing was failing" in operations
    assert "remove-branch" in operations and "refused" in operations
    assert "main is still built" in operations and "just in case" in operations
    records = (config.paths.durable / "operations.jsonl").read_text().splitlines()
    outcomes = {json.loads(r)["operation"]: json.loads(r)["outcome"] for r in records}
    assert outcomes == {"requeue": "no-op", "remove-branch": "refused"}
    assert "requeue" in page(config, "feed.atom")
