"""What the daemon remembers: state transitions become events, the cache survives a
restart (and its loss costs nothing but repeated events), the event history is
appended to and read back newest first, past a line a crash tore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.loop import event_line
from reconciler.memory.cache import CACHE_FILE, JOURNAL_FILE, MIN_JOURNAL_BYTES, Memory
from reconciler.memory.history import EVENTS_FILE, EventLog
from reconciler.model.names import RepoKey
from reconciler.model.progress import Event, PkgState, PkgStatus, RepoPhase, RepoStatus

X86 = RepoKey("main", "", "x86_64")
NOW = 1_800_000_000.0


def status(state: PkgState, version: str = "1-r0", tries: int = 0) -> PkgStatus:
    return PkgStatus(X86, "a", version, state, f"reason {state}", tries, 3, "job-a")


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (None, PkgState.QUEUED, ""),
        (None, PkgState.PUBLISHED, ""),  # first sight of a published package: no news
        (PkgState.BUILDING, PkgState.FAILED, "failed"),
        (PkgState.BUILDING, PkgState.RETRYING, "retrying"),
        (PkgState.FAILED, PkgState.BUILT, "fixed"),
        (PkgState.RETRYING, PkgState.PUBLISHED, "fixed"),
        (PkgState.FAILED, PkgState.BUILDING, ""),  # tried again: not fixed yet
        (PkgState.QUEUED, PkgState.BROKEN, "broken"),
        (PkgState.BUILDING, PkgState.BUILT, "built"),
        (PkgState.BUILT, PkgState.PUBLISHED, "published"),
        (PkgState.WAITING, PkgState.HELD, ""),
    ],
)
def test_a_state_change_is_an_event_of_its_kind(
    tmp_path: Path, before: PkgState | None, after: PkgState, kind: str
) -> None:
    memory = Memory(tmp_path)
    if before is not None:
        memory.transitions([status(before)], [], NOW - 10)
    events = memory.transitions([status(after)], [], NOW)
    assert [e.kind for e in events] == ([kind] if kind else [])
    if kind:
        assert events[0].message == f"reason {after}" and events[0].job_id == "job-a"


def test_an_unchanged_state_is_no_event_and_nothing_to_save(tmp_path: Path) -> None:
    memory = Memory(tmp_path)
    memory.transitions([status(PkgState.FAILED, tries=3)], [], NOW)
    memory.save()
    saved = files(tmp_path)
    assert memory.transitions([status(PkgState.FAILED, tries=3)], [], NOW + 1) == []
    memory.save()
    assert files(tmp_path) == saved


def files(directory: Path) -> dict[str, tuple[int, int]]:
    """The cache's files: name -> (mtime_ns, size)."""
    return {
        p.name: (p.stat().st_mtime_ns, p.stat().st_size)
        for p in (directory / CACHE_FILE, directory / JOURNAL_FILE)
        if p.exists()
    }


def statuses(count: int, state: PkgState, tries: int = 0) -> list[PkgStatus]:
    return [PkgStatus(X86, f"p{i:05d}", "1-r0", state, "", tries, 3, "") for i in range(count)]


def test_one_change_appends_a_line_whatever_the_number_of_packages(tmp_path: Path) -> None:
    """The snapshot is written once for thousands of packages; a pass that changes
    one package appends a journal line about that package, not the snapshot again."""
    memory = Memory(tmp_path)
    memory.transitions(statuses(5000, PkgState.PUBLISHED), [], NOW)
    memory.save()
    assert (tmp_path / CACHE_FILE).stat().st_size > 100_000  # too big for the journal
    before = files(tmp_path)
    changed = statuses(5000, PkgState.PUBLISHED)
    changed[7] = PkgStatus(X86, "p00007", "1-r0", PkgState.FAILED, "", 3, 3, "")
    assert [e.kind for e in memory.transitions(changed, [], NOW + 1)] == ["failed"]
    memory.save()
    after = files(tmp_path)
    assert after[CACHE_FILE] == before[CACHE_FILE]
    appended = after[JOURNAL_FILE][1] - before.get(JOURNAL_FILE, (0, 0))[1]
    assert 0 < appended < 200
    again = Memory(tmp_path)
    assert again.last_states == memory.last_states
    assert again.transitions(changed, [], NOW + 2) == []


def test_the_journal_is_folded_into_the_snapshot_once_as_large(tmp_path: Path) -> None:
    memory = Memory(tmp_path)
    for run in range(MIN_JOURNAL_BYTES // 40):
        memory.reject(f"job-{run}", "results refused: lies")
        memory.save()
        assert (tmp_path / JOURNAL_FILE).stat().st_size <= MIN_JOURNAL_BYTES
    assert (tmp_path / CACHE_FILE).exists()  # folded at least once
    assert Memory(tmp_path).rejected == memory.rejected


def test_a_torn_journal_line_and_lines_of_an_older_snapshot_are_skipped(tmp_path: Path) -> None:
    memory = Memory(tmp_path)
    memory.transitions([status(PkgState.FAILED)], [], NOW)
    memory.save()
    journal = tmp_path / JOURNAL_FILE
    # A crash tore the next line; an older generation's line (a crash between the
    # new snapshot and the journal's reset) says something stale.
    stale = {"generation": -1, "changes": {"rejected": {"old": "stale"}}}
    journal.write_text(journal.read_text() + json.dumps(stale) + '\n{"generation": 0, "chan')
    again = Memory(tmp_path)
    assert again.rejected == {} and again.transitions([status(PkgState.FAILED)], [], NOW) == []
    again.reject("job-b", "refused")
    again.save()  # ends the torn line first: the new line stands on its own
    assert Memory(tmp_path).rejected == {"job-b": "refused"}


def test_a_package_that_leaves_and_a_repository_that_publishes_are_events(
    tmp_path: Path,
) -> None:
    memory = Memory(tmp_path)
    memory.transitions([status(PkgState.PUBLISHED)], [RepoStatus(X86, RepoPhase.BUILDING)], NOW)
    events = memory.transitions([], [RepoStatus(X86, RepoPhase.PUBLISHED)], NOW + 1)
    assert [(e.kind, e.pkgname, e.message) for e in events] == [
        ("removed", "a", "no longer in pmaports"),
        ("published", "", "repository published"),
    ]


def test_the_cache_comes_back_after_a_restart_and_its_loss_is_harmless(tmp_path: Path) -> None:
    memory = Memory(tmp_path)
    memory.transitions([status(PkgState.FAILED)], [], NOW)
    memory.reject("build@main@main@x86_64@a@1-r0@1", "results refused: lies")
    memory.mark_mirrored("main/x86_64", "s" * 64)
    memory.mark_mirror_failed("main/aarch64", NOW)
    memory.save()
    again = Memory(tmp_path)
    assert again.rejected == {"build@main@main@x86_64@a@1-r0@1": "results refused: lies"}
    assert again.mirrored == {"main/x86_64": "s" * 64}
    assert again.mirror_failures == {}, "a restart simply tries the mirror at once"
    assert again.transitions([status(PkgState.FAILED)], [], NOW + 1) == []
    (tmp_path / CACHE_FILE).write_text("{ torn")
    (tmp_path / JOURNAL_FILE).unlink(missing_ok=True)
    lost = Memory(tmp_path)
    assert lost.rejected == {}
    assert [e.kind for e in lost.transitions([status(PkgState.FAILED)], [], NOW + 2)] == ["failed"]


def test_a_cache_of_another_schema_is_ignored(tmp_path: Path) -> None:
    (tmp_path / CACHE_FILE).write_text(json.dumps({"schema_version": 99, "rejected": {"x": "y"}}))
    assert Memory(tmp_path).rejected == {}


def event(n: int) -> Event:
    return Event(NOW + n, "main/x86_64", f"p{n}", "1-r0", "built", f"event {n}")


def test_the_history_is_appended_and_read_back_newest_first_past_a_torn_line(
    tmp_path: Path,
) -> None:
    log = EventLog(tmp_path)
    log.append([event(1), event(2)])
    log.append([])
    with open(tmp_path / EVENTS_FILE, "a") as handle:
        handle.write('{"time": 1, "repo": "torn')  # a crash in the middle of a line
    restarted = EventLog(tmp_path)
    assert [e.pkgname for e in restarted.recent()] == ["p2", "p1"]
    restarted.append([event(3)])  # not glued to the torn line
    assert [e.pkgname for e in restarted.recent()] == ["p3", "p2", "p1"]
    assert [e.pkgname for e in EventLog(tmp_path).recent()] == ["p3", "p2", "p1"]


def test_the_history_keeps_the_newest_hundred_in_memory(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append([event(n) for n in range(150)])
    assert len(log.recent()) == 100 and log.recent()[0].pkgname == "p149"
    assert EventLog(tmp_path).recent()[-1].pkgname == "p50"


def test_the_history_is_pruned_by_age_then_by_size_keeping_the_newest(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    now = 2_000_000_000.0
    day = 86400.0
    log.append(
        [Event(now - (30 - i) * day, "main/x86_64", f"p{i}", "1", "built", "m") for i in range(30)]
    )
    size = log.events_path.stat().st_size
    assert log.prune(now, 100 * day, size) == 0, "within both limits: not rewritten"
    assert log.prune(now, 20.5 * day, size) == 10  # the ten older than 20.5 days
    lines = log.events_path.read_text().splitlines()
    assert [json.loads(line)["pkgname"] for line in lines] == [f"p{i}" for i in range(10, 30)]
    line_size = len(lines[-1]) + 1
    assert log.prune(now, 100 * day, 5 * line_size) == 16  # down to 90 % of the size
    kept = [json.loads(line)["pkgname"] for line in log.events_path.read_text().splitlines()]
    assert kept == ["p26", "p27", "p28", "p29"]
    log.append([Event(now, "main/x86_64", "new", "1", "built", "m")])
    assert EventLog(tmp_path).recent()[0].pkgname == "new"


def test_pruning_a_history_with_a_torn_line_keeps_it_readable(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    now = 2_000_000_000.0
    log.append([Event(now - 10 * 86400, "r", "old", "1", "built", "m")])
    with open(log.events_path, "a", encoding="utf-8") as handle:
        handle.write('{"time": 1, "re')  # a crash tore the last line
    assert log.prune(now, 86400, 10**6) == 1
    assert EventLog(tmp_path).recent() == ()
    assert log.events_path.read_text().endswith("\n")


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (
            Event(NOW, "main/x86_64", "a", "1-r0", "published", "published"),
            "main/x86_64 a published",
        ),
        (
            Event(NOW, "main/x86_64", "", "", "published", "repository published"),
            "main/x86_64 published",
        ),
        (
            Event(NOW, "main/x86_64", "a", "1-r0", "failed", "exit code 1 (try 3 of 3)"),
            "main/x86_64 a failed: exit code 1 (try 3 of 3)",
        ),
        (
            Event(NOW, "main/aarch64", "", "20261204", "published", "image main:phone:console"),
            "main/aarch64 published: image main:phone:console",
        ),
    ],
)
def test_the_log_says_an_event_once_without_empty_fields(event: Event, line: str) -> None:
    assert event_line(event) == line
