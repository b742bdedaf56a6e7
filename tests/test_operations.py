"""Manual operations: hold, release, retry and requeue through the CLI and trigger files.

The daemons run on the fake clock with the in-memory job service; the command
line is the real one, run in this process.
"""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.config.settings import Config
from reconciler.loop import Daemon
from reconciler.memory.cache import CACHE_FILE, JOURNAL_FILE
from reconciler.model.progress import PkgState, RepoPhase

from .apkcheck import read_index
from .command_line import Ran, run_cli
from .conftest import ConfigFactory, DaemonFactory, set_field

FAIL_HELLO = 'duration_seconds: 0, fail: ["main/x86_64/hello-x86"]'


def cli(config: Config, *args: str) -> Ran:
    return run_cli(*args, "--config", config.source)


def states(daemon: Daemon) -> dict[tuple[str, str], tuple[PkgState, str]]:
    result = daemon.converge(max_seconds=120)
    return {(str(p.repo), p.pkgname): (p.state, p.reason) for p in result.plan.packages}


def final_entries(config: Config, repo: str) -> set[str]:
    index = read_index(config.paths.final_repo / repo / "APKINDEX.tar.gz")
    return {f"{e['P']}-{e['V']}" for e in index.entries}


def test_hold_lets_the_rest_publish_and_survives_a_lost_cache(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    assert fake_daemon(make_config()).converge(max_seconds=120).all_published
    set_field(pmaports / "main/hello-x86/APKBUILD", "pkgrel", "1")
    set_field(pmaports / "main/foo-gui/APKBUILD", "pkgrel", "1")
    config = make_config(builder=FAIL_HELLO)
    got = states(fake_daemon(config))
    assert got[("main/x86_64", "hello-x86")][0] is PkgState.FAILED
    assert "foo-gui-2.0.1-r1" not in final_entries(config, "main/x86_64")

    done = cli(
        config, "hold", "--branch", "main", "hello-x86", "--why", "upstream broke", "--who", "ana"
    )
    assert done.returncode == 0, done.stderr
    cache = [config.paths.state / name for name in (CACHE_FILE, JOURNAL_FILE)]
    assert any(path.exists() for path in cache)
    for path in cache:  # the cache may go; intents stay
        path.unlink(missing_ok=True)
    daemon = fake_daemon(config)
    result = daemon.converge(max_seconds=120)
    hello = {(str(p.repo), p.pkgname): p for p in result.plan.packages}[
        ("main/x86_64", "hello-x86")
    ]
    assert hello.state is PkgState.HELD
    assert hello.reason.startswith("held by ana since ") and hello.reason.endswith("upstream broke")
    x86 = final_entries(config, "main/x86_64")
    assert "foo-gui-2.0.1-r1" in x86, "the rest of the repository publishes"
    assert "hello-x86-1.0.0-r0" in x86, "the held package keeps its published apk"
    phases = {str(r.repo): r.phase for r in result.plan.repos}
    assert phases["main/x86_64"] is RepoPhase.PUBLISHED
    page = (config.paths.html_out / "package/main/hello-x86.html").read_text()
    assert "held by ana" in page and "upstream broke" in page
    index_page = (config.paths.html_out / "index.html").read_text()
    assert "held by ana: upstream broke" in index_page  # the operation is an event

    done = cli(config, "release", "--branch", "main", "hello-x86", "--why", "fixed", "--who", "ana")
    assert done.returncode == 0, done.stderr
    got = states(fake_daemon(config))
    assert got[("main/x86_64", "hello-x86")][0] is PkgState.FAILED  # still failing: tried again


def test_retry_and_requeue_give_fresh_tries(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config(builder=FAIL_HELLO)
    got = states(fake_daemon(config))
    assert got[("main/x86_64", "hello-x86")][1].endswith("(try 3 of 3)")
    fixed = make_config()  # the "fix": the builder no longer fails it
    daemon = fake_daemon(fixed)
    assert states(daemon)[("main/x86_64", "hello-x86")][0] is PkgState.FAILED, "no tries left"
    done = cli(
        fixed, "retry", "--branch", "main", "--arch", "x86_64", "hello-x86", "--why", "flaky"
    )
    assert done.returncode == 0, done.stderr
    result = daemon.converge(max_seconds=120)
    assert result.all_published
    assert "hello-x86-1.0.0-r0" in final_entries(fixed, "main/x86_64")
    jobs = sorted(
        key.attempt
        for key in daemon.jobs.list_jobs()
        if key.job_id.startswith("build@main@main@x86_64@hello-x86@")
    )
    assert jobs == [1, 2, 3, 4]

    # requeue: every failed package of the branch gets fresh tries.
    set_field(pmaports / "main/libfoo/APKBUILD", "pkgrel", "2")
    failing = make_config(builder='duration_seconds: 0, fail: ["libfoo"]')
    got = states(fake_daemon(failing))
    assert got[("main/x86_64", "libfoo")][0] is PkgState.FAILED
    done = cli(make_config(), "requeue", "--branch", "main", "--why", "mirror was down")
    assert done.returncode == 0, done.stderr
    assert fake_daemon(make_config()).converge(max_seconds=120).all_published


def test_bad_operations_are_refused(make_config: ConfigFactory, fake_daemon: DaemonFactory) -> None:
    config = make_config()
    done = cli(config, "hold", "--branch", "../etc", "x", "--why", "w")
    assert done.returncode == 2
    assert "field 'branch'" in done.stderr
    triggers = config.paths.triggers
    triggers.mkdir(parents=True, exist_ok=True)
    (triggers / "bad.json").write_text(json.dumps({"type": "hold", "branch": "main", "why": "w"}))
    fake_daemon(config).run_pass()
    reason = (triggers / "rejected" / "bad.json.reason").read_text()
    assert "bad.json" in reason and "field 'pkgname'" in reason
