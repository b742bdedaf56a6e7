"""Manual operations that replace or remove things: rebuild at the same version,
declaring a job dead, removing a deleted branch's data.

The daemons run on the fake clock with the in-memory job service; the command
line is the real one, run in this process.
"""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.config.settings import Config
from reconciler.jobs.service import JobService
from reconciler.model.progress import PkgState

from .apkcheck import apk_checksum, read_index, verifies
from .command_line import Ran, run_cli
from .conftest import ConfigFactory, DaemonFactory


def cli(config: Config, *args: str) -> Ran:
    return run_cli(*args, "--config", config.source)


def attempts(jobs: JobService, prefix: str) -> list[int]:
    return sorted(key.attempt for key in jobs.list_jobs() if key.job_id.startswith(prefix))


def one_branch(pmaports: Path, name: str = "main") -> str:
    return f"branches:\n  - name: {name}\n    pmaports: {pmaports}\n    arches: [x86_64]\n"


def test_rebuild_replaces_the_published_apk_through_a_normal_publish(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config(branches=one_branch(pmaports))
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    final = config.paths.final_repo / "main/x86_64"
    apk = final / "hello-x86-1.0.0-r0.apk"
    before, other = apk.read_bytes(), (final / "libfoo-1.2.3-r1.apk").read_bytes()

    done = cli(config, "rebuild", "--branch", "main", "hello-x86", "--why", "toolchain fix")
    assert done.returncode == 0, done.stderr
    result = daemon.converge(max_seconds=120)
    assert result.all_published
    assert apk.read_bytes() != before, "the rebuild took the old apk's place"
    assert (final / "libfoo-1.2.3-r1.apk").read_bytes() == other, "nothing else was rebuilt"
    index = read_index(final / "APKINDEX.tar.gz")
    assert verifies(index, config.keys.final_public.read_bytes())
    entries = {e["P"]: e for e in index.entries}
    for entry in index.entries:  # the index describes exactly the files beside it
        path = final / f"{entry['P']}-{entry['V']}.apk"
        assert entry["C"] == apk_checksum(path) and int(entry["S"]) == path.stat().st_size
    assert len(index.entries) == len(list(final.glob("*.apk")))
    assert entries["hello-x86"]["V"] == "1.0.0-r0"
    hello = "build@main@main@x86_64@hello-x86@"
    assert attempts(daemon.jobs, hello) == [1, 2]
    intents = json.loads((config.paths.durable / "intents.json").read_text())
    assert intents["rebuilds"] == [], "a finished rebuild leaves the intents"
    assert "rebuild of 1.0.0-r0 asked by" in (config.paths.html_out / "index.html").read_text()
    # Nothing more happens afterwards: the request does not repeat.
    daemon.converge(max_seconds=120)
    assert attempts(daemon.jobs, hello) == [1, 2]


def test_a_job_declared_dead_is_cancelled_and_counts_as_a_failed_try(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config(branches=one_branch(pmaports), builder="duration_seconds: 60")
    daemon = fake_daemon(config)
    result = daemon.run_pass(full=True)
    building = [p for p in result.plan.packages if p.state is PkgState.BUILDING]
    assert building
    job_id = f"build@main@main@x86_64@{building[0].pkgname}@{building[0].version}@1"
    done = cli(config, "fail-job", job_id, "--why", "runner lost", "--who", "ops")
    assert done.returncode == 0, done.stderr
    result = daemon.run_pass()
    states = {p.pkgname: p for p in result.plan.packages}
    package = states[building[0].pkgname]
    assert package.tries == 1, package
    assert "declared dead by ops: runner lost" in package.reason
    cancels = [o for o in result.outcomes if type(o.action).__name__ == "CancelJob"]
    assert [o.action.key.job_id for o in cancels] == [job_id]  # type: ignore[union-attr]
    bad = cli(config, "fail-job", "../../etc", "--why", "x")
    assert bad.returncode == 2 and "field 'job'" in bad.stderr


def test_a_removed_branch_keeps_its_data_until_an_operator_removes_it(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    both = one_branch(pmaports) + one_branch(pmaports, "old").removeprefix("branches:\n")
    config = make_config(branches=both)
    assert fake_daemon(config).converge(max_seconds=120).all_published
    old = config.paths.final_repo / "old"
    assert (old / "x86_64/APKINDEX.tar.gz").is_file()

    config = make_config(branches=one_branch(pmaports))
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    assert (old / "x86_64/APKINDEX.tar.gz").is_file(), "kept until an operator removes it"
    assert cli(config, "remove-branch", "--branch", "main", "--why", "oops").returncode == 0
    assert cli(config, "remove-branch", "--branch", "old", "--why", "EOL").returncode == 0
    daemon.converge(max_seconds=120)
    assert not old.exists() and not (config.paths.wip_repo / "old").exists()
    assert (config.paths.final_repo / "main/x86_64/APKINDEX.tar.gz").is_file()
    events = (config.paths.state / "events.jsonl").read_text()
    assert "removal asked by" in events and "main is still built" in events
    assert "data of old removed by" in events


def test_remove_branch_refuses_layout_names_forged_names_and_branches_without_data(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config(branches=one_branch(pmaports))  # splitrepos: [systemd] by default
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    final = config.paths.final_repo
    split = sorted(final.glob("extra-repos/systemd/main/x86_64/*.apk"))
    assert split, "the sample tree publishes into the systemd split repository"
    for name in ("extra-repos", "staging", "main\n", "main\nforged: line"):
        bad = cli(config, "remove-branch", "--branch", name, "--why", "oops")
        assert bad.returncode == 2 and "field 'branch'" in bad.stderr, name
    # A trigger written by hand is read the same way and rejected with its reason.
    forged = {"type": "remove-branch", "who": "x", "why": "y", "branch": "extra-repos"}
    (config.paths.triggers / "forged.json").write_text(json.dumps(forged))
    assert cli(config, "remove-branch", "--branch", "gone", "--why", "typo").returncode == 0
    daemon.converge(max_seconds=120)
    assert sorted(final.glob("extra-repos/systemd/main/x86_64/*.apk")) == split
    reason = (config.paths.triggers / "rejected/forged.json.reason").read_text()
    assert "field 'branch': expected a branch name" in reason
    events = (config.paths.state / "events.jsonl").read_text()
    assert "refused: gone has no repositories" in events
