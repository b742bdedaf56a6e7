"""The operator registry, pushes, the pass's world and the durable store, table by table.

Each operation's `apply` on hand-made intents and worlds; `World.settle` for the
requests that are done; the intents file written and read back, refused when
unreadable.
"""

from __future__ import annotations

import json
import stat
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from reconciler.model.jobs import JobIntent, JobKey, JobKind, JobObservation, JobStatus
from reconciler.model.names import RepoKey
from reconciler.model.observations import ObservedState, RepoObserved
from reconciler.model.packages import BranchDesired, DepRef, PkgSpec
from reconciler.operator.intents import DeadJob, Hold, Intents, Pause, RebuildRequest, RetryGrant
from reconciler.operator.operations import (
    OPERATIONS,
    FailJob,
    HoldPackage,
    OperationError,
    RebuildPackage,
    ReleasePackage,
    RemoveBranch,
    RequeueFailed,
    RetryPackage,
)
from reconciler.operator.pushes import apply_pushes
from reconciler.operator.store import IntentError, load_intents, save_intents
from reconciler.operator.trigger_dir import trigger_handler
from reconciler.operator.world import World

from .plan_values import apk, index

NOW = 1_800_000_000.0
X86 = RepoKey("main", "", "x86_64")
ARM = RepoKey("main", "", "aarch64")
WHO = {"who": "ana", "why": "because"}


def build(name: str, status: JobStatus, attempt: int, repo: RepoKey = X86) -> JobObservation:
    key = JobKey(JobIntent(JobKind.BUILD, repo, name, "1-r0"), attempt)
    return JobObservation(key, status, NOW - 100, NOW - 50, "exit code 1")


def world(
    *jobs: JobObservation, repos: dict[RepoKey, RepoObserved] | None = None, error: str = ""
) -> World:
    specs = {k: {"a": PkgSpec(k, "a", "1-r0", "main/a", k.arch)} for k in (X86, ARM)}
    desired = {"main": BranchDesired("main", "c0ffee", specs)}
    observed = ObservedState(repos or {}, {j.key: j for j in jobs}, {}, job_service_error=error)
    return World.of(observed, desired, NOW)


@pytest.mark.parametrize(
    ("name", "fields", "field"),
    [
        ("hold", {"branch": "../x", "pkgname": "a"}, "branch"),
        ("hold", {"branch": "main", "arch": "X 86", "pkgname": "a"}, "arch"),
        ("hold", {"branch": "main", "pkgname": "a b"}, "pkgname"),
        ("hold", {"branch": "main", "pkgname": "a", "expires": "soon"}, "expires"),
        ("retry", {"branch": "main", "pkgname": "a", "why": ""}, "why"),
        ("retry", {"branch": "main", "pkgname": "a", "who": "x" * 101}, "who"),
        ("requeue", {"branch": "main", "why": "a\x00b"}, "why"),
        ("fail-job", {"job": "build@main"}, "job"),
        ("remove-branch", {"branch": 7}, "branch"),
    ],
)
def test_a_bad_field_is_refused_naming_the_file_and_the_field(
    name: str, fields: dict[str, object], field: str
) -> None:
    data = {"type": name, **WHO, **fields}
    with pytest.raises(OperationError, match=rf"^t\.json: field '{field}'"):
        OPERATIONS[name].from_trigger("t.json", data)


def test_an_operation_goes_through_its_trigger_unchanged() -> None:
    for name, operation in OPERATIONS.items():
        fields = {
            "branch": "main",
            "arch": "",
            "pkgname": "a",
            "job": "build@main@main@x86_64@a@1-r0@1",
            "device": "demo-phone",
            "ui": "demo",
            "release": "edge",
        }
        data = {"type": name, **WHO, "requested_at": NOW, **fields}
        parsed = operation.from_trigger("t.json", data)
        assert operation.from_trigger("again.json", parsed.trigger()) == parsed, name
        assert parsed.trigger()["type"] == name


def test_hold_replaces_an_earlier_hold_of_the_same_package_and_release_ends_it() -> None:
    earlier = Hold("main", "", "a", "bob", "old", NOW - 1000)
    other = Hold("main", "", "b", "bob", "other", NOW - 1000)
    applied = HoldPackage(who="ana", why="broken", branch="main", arch="", pkgname="a").apply(
        Intents(holds=(earlier, other)), world()
    )
    assert applied.intents.holds == (other, Hold("main", "", "a", "ana", "broken", NOW))
    assert [e.message for e in applied.events] == ["held by ana: broken"]
    released = ReleasePackage(who="ana", why="fixed", branch="main", arch="", pkgname="a")
    assert released.apply(applied.intents, world()).intents.holds == (other,)


def test_release_without_an_arch_ends_the_holds_of_every_arch() -> None:
    holds = (
        Hold("main", "x86_64", "a", "b", "w", NOW),
        Hold("main", "aarch64", "a", "b", "w", NOW),
    )
    released = ReleasePackage(who="ana", why="w", branch="main", arch="", pkgname="a")
    assert released.apply(Intents(holds=holds), world()).intents.holds == ()
    only_arm = ReleasePackage(who="ana", why="w", branch="main", arch="aarch64", pkgname="a")
    assert only_arm.apply(Intents(holds=holds), world()).intents.holds == (holds[0],)


def test_retry_forgives_the_attempts_so_far_and_requeue_does_so_for_every_failure() -> None:
    jobs = (
        build("a", JobStatus.FAILED, 1),
        build("a", JobStatus.FAILED, 2),
        build("b", JobStatus.FAILED, 1),
        build("c", JobStatus.SUCCESS, 1),
        build("a", JobStatus.FAILED, 1, ARM),
    )
    retry = RetryPackage(who="ana", why="flaky", branch="main", arch="x86_64", pkgname="a")
    (grant,) = retry.apply(Intents(), world(*jobs)).intents.retries
    assert grant == RetryGrant("main", "x86_64", "a", 2, "ana", "flaky", NOW)
    requeue = RequeueFailed(who="ana", why="mirror down", branch="main", arch="x86_64")
    applied = requeue.apply(Intents(), world(*jobs))
    assert {(g.pkgname, g.after_attempt) for g in applied.intents.retries} == {("a", 2), ("b", 1)}
    everywhere = RequeueFailed(who="ana", why="w", branch="main", arch="")
    arches = {g.arch for g in everywhere.apply(Intents(), world(*jobs)).intents.retries}
    assert arches == {"x86_64", "aarch64"}


def test_rebuild_asks_where_final_publishes_the_wanted_version_else_it_is_refused() -> None:
    a = apk("a")
    published = {X86: RepoObserved(final={a.filename: a}, final_index=index(a))}
    rebuild = RebuildPackage(who="ana", why="toolchain", branch="main", arch="", pkgname="a")
    applied = rebuild.apply(Intents(), world(build("a", JobStatus.SUCCESS, 1), repos=published))
    (request,) = applied.intents.rebuilds
    assert request == RebuildRequest(
        "main", "x86_64", "a", "1-r0", a.checksum, 1, "ana", "toolchain", NOW
    )
    refused = rebuild.apply(Intents(), world())
    assert refused.intents.rebuilds == ()
    assert "refused: nothing of it is published" in refused.events[0].message


def test_fail_job_declares_the_job_dead() -> None:
    job_id = "build@main@main@x86_64@a@1-r0@2"
    applied = FailJob(who="ops", why="hung", job=job_id).apply(Intents(), world())
    assert applied.intents.dead_jobs == (DeadJob(job_id, "ops", "hung", NOW),)
    assert applied.events[0].job_id == job_id


def test_remove_branch_removes_only_an_unconfigured_branch_that_has_data() -> None:
    stored = replace(world(), stored=frozenset({"main", "old"}))
    built = RemoveBranch(who="ops", why="oops", branch="main", arch="").apply(Intents(), stored)
    assert built.removals == () and "refused: main is still built" in built.events[0].message
    gone = RemoveBranch(who="ops", why="EOL", branch="old", arch="").apply(Intents(), stored)
    assert [r.branch for r in gone.removals] == ["old"]
    assert gone.events[0].kind == "removed"
    typo = RemoveBranch(who="ops", why="EOL", branch="olde", arch="").apply(Intents(), stored)
    assert typo.removals == () and "refused: olde has no repositories" in typo.events[0].message


@pytest.mark.parametrize(
    "branch",
    ["extra-repos", "staging", "main\n", "main\r", "old/../main", "", "a" * 101, "-x", "m\u00e4in"],
)
@pytest.mark.parametrize("name", ["remove-branch", "hold", "pause", "requeue"])
def test_a_branch_field_is_full_matched_and_never_a_layout_directory(
    name: str, branch: str
) -> None:
    data = {"type": name, **WHO, "branch": branch, "pkgname": "a"}
    with pytest.raises(OperationError, match=r"field 'branch': expected a branch name"):
        OPERATIONS[name].from_trigger("t.json", data)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pkgname", "a\n"),
        ("arch", "x86_64\n"),
        ("job", "build@main@main@x86_64@a@1-r0@1\n"),
        ("job", "build@main@main@x86_64@a@1-r0@\u0661"),
        ("expires", float("inf")),
        ("expires", float("nan")),
        ("expires", -1.0),
        ("expires", 1e300),
        ("expires", True),
    ],
)
def test_names_are_full_matched_and_numbers_finite_and_in_range(field: str, value: object) -> None:
    name = "fail-job" if field == "job" else "hold"
    data = {"type": name, **WHO, "branch": "main", "pkgname": "a", field: value}
    with pytest.raises(OperationError, match=rf"field '{field}'"):
        OPERATIONS[name].from_trigger("t.json", data)


def test_a_non_finite_requested_time_is_taken_as_unknown() -> None:
    data = {"type": "hold", **WHO, "branch": "main", "pkgname": "a", "requested_at": float("nan")}
    assert OPERATIONS["hold"].from_trigger("t.json", data).requested_at == 0.0


# --- what is done -------------------------------------------------------------------


def test_settle_drops_a_rebuild_once_final_holds_other_bytes() -> None:
    old, new = apk("a"), apk("a", checksum="Q1new")
    request = RebuildRequest("main", "x86_64", "a", "1-r0", old.checksum, 1, "ana", "w", NOW)
    pending = {X86: RepoObserved(final={old.filename: old}, final_index=index(old))}
    assert world(repos=pending).settle(Intents(rebuilds=(request,))).rebuilds == (request,)
    done = {X86: RepoObserved(final={new.filename: new}, final_index=index(new))}
    assert world(repos=done).settle(Intents(rebuilds=(request,))).rebuilds == ()


def test_settle_drops_a_rebuild_that_made_the_published_bytes_again() -> None:
    """A reproducible build: the rebuild succeeded and WIP holds final's very bytes."""
    a = apk("a")
    request = RebuildRequest("main", "x86_64", "a", "1-r0", a.checksum, 1, "ana", "w", NOW)
    repos = {X86: RepoObserved(wip={a.filename: a}, final={a.filename: a}, final_index=index(a))}
    rebuilt = build("a", JobStatus.SUCCESS, 2)
    assert world(rebuilt, repos=repos).settle(Intents(rebuilds=(request,))).rebuilds == ()
    # Before the rebuild's job succeeded, a copy of the same bytes in WIP settles nothing.
    first = build("a", JobStatus.SUCCESS, 1)
    assert world(first, repos=repos).settle(Intents(rebuilds=(request,))).rebuilds == (request,)


def test_settle_forgets_dead_jobs_the_service_forgot_unless_it_cannot_be_asked() -> None:
    dead = DeadJob("build@main@main@x86_64@a@1-r0@1", "ops", "hung", NOW)
    known = build("a", JobStatus.CANCELLED, 1)
    assert world(known).settle(Intents(dead_jobs=(dead,))).dead_jobs == (dead,)
    assert world().settle(Intents(dead_jobs=(dead,))).dead_jobs == ()
    assert world(error="down").settle(Intents(dead_jobs=(dead,))).dead_jobs == (dead,)


# --- the intents file ---------------------------------------------------------------


def test_the_intents_file_round_trips_every_kind_and_is_private(tmp_path: Path) -> None:
    intents = Intents(
        holds=(Hold("main", "", "a", "ana", "w", NOW, NOW + 60),),
        retries=(RetryGrant("main", "x86_64", "b", 3, "ana", "w", NOW),),
        rebuilds=(RebuildRequest("main", "x86_64", "c", "1-r0", "Q1x", 1, "ana", "w", NOW),),
        dead_jobs=(DeadJob("build@main@main@x86_64@d@1-r0@1", "ops", "w", NOW),),
        pauses=(Pause("main", "aarch64", "ana", "w", NOW),),
    )
    path = tmp_path / "intents.json"
    save_intents(path, intents)
    assert load_intents(path) == intents
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["schema_version"] == 1
    assert set(document) == {
        "schema_version",
        "holds",
        "retries",
        "rebuilds",
        "dead_jobs",
        "pauses",
        "image_holds",
        "image_retries",
        "image_requests",
        "image_removals",
    }


def test_a_missing_file_is_no_intents_and_a_file_of_an_earlier_version_loads(
    tmp_path: Path,
) -> None:
    path = tmp_path / "intents.json"
    assert load_intents(path) == Intents()
    path.write_text(json.dumps({"schema_version": 1, "holds": [], "retries": []}))
    assert load_intents(path) == Intents()


@pytest.mark.parametrize(
    "content",
    ["not json", '{"holds": [{"branch": "main"}]}', '{"holds": [{"unknown": 1}]}', "[1, 2]"],
)
def test_an_unreadable_intents_file_is_an_error_never_no_intents(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "intents.json"
    path.write_text(content)
    with pytest.raises(IntentError, match=r"intents\.json"):
        load_intents(path)


# --- pushes ---------------------------------------------------------------------------


def test_a_push_gives_fresh_tries_to_failing_packages_it_touched_directly_or_not() -> None:
    lib = PkgSpec(X86, "lib", "1-r0", "main/lib", "x86_64")
    app = PkgSpec(X86, "app", "1-r0", "main/app", "x86_64", build_deps=(DepRef(X86, "lib"),))
    other = PkgSpec(X86, "other", "1-r0", "main/other", "x86_64")
    desired = {
        "main": BranchDesired("main", "c0ffee", {X86: {"lib": lib, "app": app, "other": other}})
    }
    jobs = (
        build("app", JobStatus.FAILED, 3),
        build("other", JobStatus.FAILED, 2),
        build("lib", JobStatus.SUCCESS, 1),
    )
    observed = ObservedState({}, {j.key: j for j in jobs}, {})
    pushed = World.of(observed, desired, NOW)
    changes = {"main": ("a" * 40, "b" * 40, {"main/lib"})}
    applied = apply_pushes(Intents(), changes, pushed)
    assert [(g.pkgname, g.after_attempt, g.who) for g in applied.intents.retries] == [
        ("app", 3, "push")
    ], "app needs lib, which changed; other did not change"
    messages = [e.message for e in applied.events]
    assert messages[0] == f"pmaports {'a' * 12} -> {'b' * 12}: 1 changed"
    assert messages[1] == f"main/lib changed in {'b' * 12}: fresh tries"


def test_a_push_to_a_branch_that_is_not_built_is_only_an_event() -> None:
    applied = apply_pushes(Intents(), {"old": ("", "c" * 40, set())}, world())
    assert applied.intents == Intents()
    assert [e.message for e in applied.events] == [f"pmaports (new) -> {'c' * 12}: 0 changed"]


@pytest.mark.parametrize(
    ("event", "wakes"),
    [
        (FileCreatedEvent("/t/push-main-1.json"), True),
        (FileCreatedEvent("/t/.push-main-1.json.k2f9.tmp"), False),  # a writer's aside file
        (FileCreatedEvent("/t/upload.part"), False),
        (FileMovedEvent("/t/.push-main-1.json.k2f9.tmp", "/t/push-main-1.json"), True),
        (FileMovedEvent("/t/push-main-1.json", "/t/processed/push-main-1.json"), False),
        (FileMovedEvent("/t/push-main-1.json", "/t/rejected/push-main-1.json"), False),
        (DirCreatedEvent("/t/more"), False),
    ],
)
def test_the_trigger_directory_wakes_the_loop_once_per_trigger(
    event: FileSystemEvent, wakes: bool
) -> None:
    """A writer makes an aside file and renames it in: only the rename wakes the
    loop (the aside file's creation made a second, spurious pass); moving a read
    trigger to processed/ or rejected/ wakes nothing."""
    wake = threading.Event()
    handler = trigger_handler(wake, Path("/t"))
    handler.dispatch(event)
    assert wake.is_set() is wakes
