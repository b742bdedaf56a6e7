"""pmaports followed from a real git remote (a bare repository on disk)."""

from __future__ import annotations

import shutil
from pathlib import Path

from reconciler.config.settings import Config
from reconciler.model.progress import PkgState

from .apkcheck import read_index
from .conftest import ConfigFactory, DaemonFactory, git, set_field


def push(work: Path, message: str) -> str:
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    git(work, "push", "-q", "origin", "main")
    return git(work, "rev-parse", "HEAD")


def drop_push_trigger(config: Config, after: str) -> None:
    tmp = config.paths.triggers / ".push.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(f'{{"type": "push", "branch": "main", "after": "{after}"}}')
    tmp.rename(config.paths.triggers / f"push-{after[:12]}.json")


def published(config: Config) -> dict[str, str]:
    index = read_index(config.paths.final_repo / "main/x86_64/APKINDEX.tar.gz")
    return {e["P"]: e["V"] for e in index.entries}


def setup_remote(tmp_path: Path, pmaports: Path) -> tuple[Path, Path]:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    work = tmp_path / "work"
    shutil.copytree(pmaports, work)
    git(work, "init", "-q", "-b", "main")
    git(work, "remote", "add", "origin", str(remote))
    push(work, "initial")
    return remote, work


def branch_yaml(checkout: Path, remote: Path) -> str:
    return (
        "branches:\n  - name: main\n"
        f"    pmaports: {checkout}\n    remote: {remote}\n    arches: [x86_64]\n"
    )


def test_follows_pushes_bumps_new_and_deleted_packages(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path, tmp_path: Path
) -> None:
    remote, work = setup_remote(tmp_path, pmaports)
    config = make_config(branches=branch_yaml(tmp_path / "checkout", remote))
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    head = git(work, "rev-parse", "HEAD")
    assert daemon.read_desired()["main"].commit == head
    description = read_index(config.paths.final_repo / "main/x86_64/APKINDEX.tar.gz").description
    assert description is not None and f"commit={head}" in description

    set_field(work / "main/foo-gui/APKBUILD", "pkgrel", "1")
    shutil.copytree(work / "main/crossdirect", work / "main/newpkg")
    text = (work / "main/newpkg/APKBUILD").read_text().replace("crossdirect", "newpkg")
    (work / "main/newpkg/APKBUILD").write_text(text)
    shutil.rmtree(work / "main/hello-x86")
    after = push(work, "bump, add, delete")
    drop_push_trigger(config, after)
    assert daemon.converge(max_seconds=120).all_published
    now = published(config)
    assert now["foo-gui"] == "2.0.1-r1"
    assert "newpkg" in now
    assert "hello-x86" not in now
    assert daemon.read_desired()["main"].commit == after


def test_a_push_touching_a_dependency_gives_a_failed_package_fresh_tries(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path, tmp_path: Path
) -> None:
    remote, work = setup_remote(tmp_path, pmaports)
    config = make_config(
        branches=branch_yaml(tmp_path / "checkout", remote),
        builder='duration_seconds: 0, fail: ["foo-gui"]',
    )
    daemon = fake_daemon(config)
    result = daemon.converge(max_seconds=120)
    states = {(str(p.repo), p.pkgname): p for p in result.plan.packages}
    assert states[("main/x86_64", "foo-gui")].state is PkgState.FAILED

    def attempts() -> list[str]:
        prefix = "build@main@main@x86_64@foo-gui@"
        return sorted(
            k.job_id.rsplit("@", 1)[1]
            for k in daemon.jobs.list_jobs()
            if k.job_id.startswith(prefix)
        )

    assert attempts() == ["1", "2", "3"]
    # A change to a file of libfoo (a dependency), without a version change.
    (work / "main/libfoo/fix.patch").write_text("--- a\n+++ b\n")
    after = push(work, "libfoo: add a patch")
    drop_push_trigger(config, after)
    result = daemon.converge(max_seconds=120)
    assert attempts() == ["1", "2", "3", "4", "5", "6"], "three fresh tries after the push"
    events = (config.paths.state / "events.jsonl").read_text()
    assert f"main/libfoo changed in {after[:12]}" in events
    # An unrelated change gives no fresh tries.
    (work / "main/crossdirect/other.patch").write_text("x\n")
    drop_push_trigger(config, push(work, "crossdirect: unrelated"))
    daemon.converge(max_seconds=120)
    assert len(attempts()) == 6


def test_a_staging_branch_builds_only_its_differences_and_goes_when_deleted(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path, tmp_path: Path
) -> None:
    remote, work = setup_remote(tmp_path, pmaports)
    config = make_config(branches=branch_yaml(tmp_path / "checkout", remote))
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    main_final = config.paths.final_repo / "main/x86_64"
    staged_final = config.paths.final_repo / "staging/try/main/x86_64"

    git(work, "checkout", "-q", "-b", "main_staging_try")
    set_field(work / "main/foo-gui/APKBUILD", "pkgrel", "7")
    git(work, "commit", "-q", "-am", "foo-gui: try a change")
    git(work, "push", "-q", "origin", "main_staging_try")
    tmp = config.paths.triggers / ".staging.tmp"
    tmp.write_text('{"type": "push", "branch": "main_staging_try"}')
    tmp.rename(config.paths.triggers / "push-staging.json")
    result = daemon.converge(max_seconds=120)
    assert result.all_published, [str(p) for p in result.plan.packages if p.state != "published"]

    staged = {e["P"]: e["V"] for e in read_index(staged_final / "APKINDEX.tar.gz").entries}
    main = published(config)
    assert staged["foo-gui"] == "2.0.1-r7" and main["foo-gui"] == "2.0.1-r0"
    assert {p: v for p, v in staged.items() if p != "foo-gui"} == {
        p: v for p, v in main.items() if p != "foo-gui"
    }, "everything else is the origin's published packages"
    builds = sorted(
        k.job_id for k in daemon.jobs.list_jobs() if k.job_id.startswith("build@main_staging_try@")
    )
    assert [b.split("@")[4] for b in builds] == ["foo-gui"], "only the difference was built"
    same = "crossdirect-" + main["crossdirect"] + ".apk"
    assert (staged_final / same).read_bytes() == (main_final / same).read_bytes()
    assert "main_staging_try" in (config.paths.html_out / "index.html").read_text()

    git(work, "push", "-q", "origin", "--delete", "main_staging_try")
    tmp.write_text('{"type": "push", "branch": "main_staging_try"}')
    tmp.rename(config.paths.triggers / "push-staging-deleted.json")
    daemon.converge(max_seconds=120)
    assert not (config.paths.final_repo / "staging").exists() or not any(
        (config.paths.final_repo / "staging").iterdir()
    )
    assert not (config.paths.wip_repo / "staging/try").exists()
    assert "main_staging_try" not in {b.name for b in daemon.branches()}
    assert (main_final / "APKINDEX.tar.gz").is_file(), "the origin is untouched"
