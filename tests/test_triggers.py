"""The trigger directory: the watchdog observer wakes the loop; drain() sorts what
arrived into handled, processed/ and rejected/ (with a reason); nothing crashes it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.operator.trigger_dir import TriggerDir
from reconciler.operator.triggers import MAX_TRIGGER_BYTES, Trigger, TriggerError, parse_trigger


@pytest.fixture
def triggers(tmp_path: Path) -> Iterator[TriggerDir]:
    trigger_dir = TriggerDir(tmp_path / "triggers")
    trigger_dir.start()
    try:
        yield trigger_dir
    finally:
        trigger_dir.stop()


def drop(directory: Path, name: str, data: bytes | str) -> Path:
    """Write a file aside and rename it in, as writers are told to."""
    raw = data.encode() if isinstance(data, str) else data
    aside = directory.parent / f"{name}.aside"
    aside.write_bytes(raw)
    target = directory / name
    os.rename(aside, target)
    return target


def names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


# --- the observer --------------------------------------------------------------------


def test_renamed_file_wakes_wait(triggers: TriggerDir) -> None:
    assert triggers.wait(0) is False  # nothing arrived yet
    drop(triggers.directory, "wake-1.json", '{"type": "wake"}')
    started = time.monotonic()
    assert triggers.wait(5) is True
    assert time.monotonic() - started < 2
    assert triggers.wait(0) is False  # wait() consumed the wake-up


def test_file_created_in_place_wakes_wait(triggers: TriggerDir) -> None:
    triggers.wait(0)
    (triggers.directory / "direct.json").write_text('{"type": "wake"}')
    started = time.monotonic()
    assert triggers.wait(5) is True
    assert time.monotonic() - started < 2


def test_nothing_arriving_times_out(triggers: TriggerDir) -> None:
    started = time.monotonic()
    assert triggers.wait(0.2) is False
    assert time.monotonic() - started >= 0.19


def test_drain_does_not_wake_the_loop_again(triggers: TriggerDir) -> None:
    drop(triggers.directory, "a-push.json", '{"type": "push", "branch": "main"}')
    drop(triggers.directory, "b-bad.json", "nope")
    drop(triggers.directory, "c-wake.json", '{"type": "wake"}')
    assert triggers.wait(5) is True
    # Let the observer deliver the events of all three files before draining.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and triggers.wait(0.1):
        pass
    assert [t.name for t in triggers.drain()] == ["a-push.json", "c-wake.json"]
    # Moving files out (to processed/, rejected/) and deleting them is not news.
    assert triggers.wait(0.3) is False


# --- drain -----------------------------------------------------------------------------


def test_drain_handles_wake_and_push(tmp_path: Path) -> None:
    trigger_dir = TriggerDir(tmp_path / "t")
    drop(trigger_dir.directory, "20-wake", '{"type": "wake", "job": "x"}')
    drop(trigger_dir.directory, "10-push.json", '{"type": "push", "branch": "v25.12"}')
    handled = trigger_dir.drain()
    assert handled == [
        Trigger("10-push.json", "push", {"type": "push", "branch": "v25.12"}),
        Trigger("20-wake", "wake", {"type": "wake", "job": "x"}),
    ]
    # Until what they ask for is recorded, they stay: a failed pass reads them again.
    assert names(trigger_dir.directory) == {"processed", "rejected", "10-push.json", "20-wake"}
    assert trigger_dir.drain() == handled
    trigger_dir.settle(handled)
    assert names(trigger_dir.directory) == {"processed", "rejected"}
    assert names(trigger_dir.processed) == {"10-push.json"}
    assert json.loads((trigger_dir.processed / "10-push.json").read_text())["branch"] == "v25.12"
    assert names(trigger_dir.rejected) == set()
    assert trigger_dir.drain() == []


MALFORMED = [
    ("not-json.json", b"{type: wake}", "not a JSON document"),
    ("not-utf8.json", b'{"type": "wake", "x": "\xff"}', "not a JSON document"),
    ("a-list.json", b'["type", "wake"]', "expected a JSON object"),
    ("a-string.json", b'"wake"', "expected a JSON object"),
    ("unknown-type.json", b'{"type": "reboot"}', "field 'type'"),
    ("no-type.json", b'{"branch": "main"}', "field 'type'"),
    ("bad-branch.json", b'{"type": "push", "branch": "../x"}', "field 'branch'"),
    ("no-branch.json", b'{"type": "push"}', "field 'branch'"),
    ("number-branch.json", b'{"type": "push", "branch": 7}', "field 'branch'"),
    ("huge.json", b'{"type": "wake", "pad": "' + b"x" * MAX_TRIGGER_BYTES + b'"}', "larger than"),
]


def test_drain_rejects_malformed_files_with_a_reason(tmp_path: Path) -> None:
    trigger_dir = TriggerDir(tmp_path / "t")
    for name, data, _ in MALFORMED:
        drop(trigger_dir.directory, name, data)
    drop(trigger_dir.directory, "ok.json", '{"type": "wake"}')
    handled = trigger_dir.drain()
    assert [t.name for t in handled] == ["ok.json"]
    trigger_dir.settle(handled)
    assert names(trigger_dir.directory) == {"processed", "rejected"}
    assert names(trigger_dir.processed) == set()
    expected = {name for name, _, _ in MALFORMED}
    assert names(trigger_dir.rejected) == expected | {f"{n}.reason" for n in expected}
    for name, data, why in MALFORMED:
        assert (trigger_dir.rejected / name).read_bytes() == data  # kept unchanged
        reason = (trigger_dir.rejected / f"{name}.reason").read_text(encoding="utf-8")
        assert reason.startswith(f"{name}: "), reason
        assert why in reason, (name, reason)
        assert reason.endswith("\n")


def test_size_limit_is_inclusive(tmp_path: Path) -> None:
    trigger_dir = TriggerDir(tmp_path / "t")
    head, tail = b'{"type": "wake", "pad": "', b'"}'
    exact = head + b"x" * (MAX_TRIGGER_BYTES - len(head) - len(tail)) + tail
    assert len(exact) == MAX_TRIGGER_BYTES
    drop(trigger_dir.directory, "exact.json", exact)
    drop(trigger_dir.directory, "over.json", exact[:-2] + b'x"}')
    assert [t.name for t in trigger_dir.drain()] == ["exact.json"]
    assert names(trigger_dir.rejected) == {"over.json", "over.json.reason"}


def test_drain_leaves_hidden_and_partial_files_alone(tmp_path: Path) -> None:
    trigger_dir = TriggerDir(tmp_path / "t")
    left = {".hidden.json", ".job-x.json.tmp", "incoming.tmp", "incoming.part"}
    for name in left:
        (trigger_dir.directory / name).write_text("not even json")
    assert trigger_dir.drain() == []
    assert names(trigger_dir.directory) == left | {"processed", "rejected"}
    assert names(trigger_dir.rejected) == set()
    assert names(trigger_dir.processed) == set()


def test_entries_that_are_not_regular_files_are_rejected_never_waited_on(
    tmp_path: Path,
) -> None:
    trigger_dir = TriggerDir(tmp_path / "t")
    directory = trigger_dir.directory
    (directory / "a-dir").mkdir()
    os.mkfifo(directory / "b-fifo")
    os.mkfifo(tmp_path / "elsewhere-fifo")
    (directory / "c-link-to-fifo").symlink_to(tmp_path / "elsewhere-fifo")
    (tmp_path / "outside.json").write_text('{"type": "wake"}')
    (directory / "d-link.json").symlink_to(tmp_path / "outside.json")
    (directory / "e-dangling").symlink_to(tmp_path / "nothing")
    drop(directory, "f-ok.json", '{"type": "wake"}')
    assert [t.name for t in trigger_dir.drain()] == ["f-ok.json"]  # would block on a FIFO
    expected = {
        "a-dir": "a directory",
        "b-fifo": "a FIFO",
        "c-link-to-fifo": "a symlink",
        "d-link.json": "a symlink",
        "e-dangling": "a symlink",
    }
    for name, kind in expected.items():
        reason = (trigger_dir.rejected / f"{name}.reason").read_text()
        assert reason == f"{name}: not a regular file ({kind})\n", reason
    assert names(directory) == {"processed", "rejected", "f-ok.json"}
    assert (tmp_path / "outside.json").read_text() == '{"type": "wake"}', "left alone"


def test_pruning_keeps_the_archives_within_their_age_and_count(tmp_path: Path) -> None:
    trigger_dir = TriggerDir(tmp_path / "t")
    now = 2_000_000_000.0
    for i in range(6):
        drop(trigger_dir.processed, f"p{i}.json", "{}")
        os.utime(trigger_dir.processed / f"p{i}.json", (now - i * 86400, now - i * 86400))
        drop(trigger_dir.rejected, f"r{i}.json", "x")
        drop(trigger_dir.rejected, f"r{i}.json.reason", "why")
        for name in (f"r{i}.json", f"r{i}.json.reason"):
            os.utime(trigger_dir.rejected / name, (now - i * 86400, now - i * 86400))
    (trigger_dir.rejected / "old-dir").mkdir()
    os.utime(trigger_dir.rejected / "old-dir", (now - 99 * 86400, now - 99 * 86400))
    removed = trigger_dir.prune(now, max_age_seconds=3.5 * 86400, max_files=3)
    assert names(trigger_dir.processed) == {"p0.json", "p1.json", "p2.json"}
    assert names(trigger_dir.rejected) == {
        "r0.json", "r0.json.reason", "r1.json", "r1.json.reason", "r2.json", "r2.json.reason"
    }  # fmt: skip
    assert removed == 3 + 4


def test_push_with_the_same_name_replaces_the_processed_one(tmp_path: Path) -> None:
    trigger_dir = TriggerDir(tmp_path / "t")
    drop(trigger_dir.directory, "push.json", '{"type": "push", "branch": "a"}')
    trigger_dir.settle(trigger_dir.drain())
    drop(trigger_dir.directory, "push.json", '{"type": "push", "branch": "b"}')
    handled = trigger_dir.drain()
    assert [t.data["branch"] for t in handled] == ["b"]
    trigger_dir.settle(handled)
    assert json.loads((trigger_dir.processed / "push.json").read_text())["branch"] == "b"


# --- parse_trigger on anything ------------------------------------------------------

file_names = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="/\x00"),
    min_size=1,
    max_size=40,
)


def check_parse(name: str, raw: bytes) -> None:
    try:
        trigger = parse_trigger(name, raw)
    except TriggerError as exc:
        assert str(exc).startswith(f"{name}: "), str(exc)
        return
    assert isinstance(trigger, Trigger)
    assert trigger.name == name
    assert trigger.type in ("wake", "push")
    assert trigger.data["type"] == trigger.type


@settings(max_examples=200, deadline=None)
@given(name=file_names, raw=st.binary(max_size=512))
def test_parse_trigger_on_random_bytes(name: str, raw: bytes) -> None:
    check_parse(name, raw)


# JSON holds finite numbers only (NaN and Infinity are refused on their own, below).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    name=file_names,
    kind=st.sampled_from(["wake", "push", "other", 3]) | json_values,
    branch=st.sampled_from(["main", "v25.12", "../x", "", ".x", "a/b", "a" * 101]) | json_values,
    extra=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    with_branch=st.booleans(),
)
def test_parse_trigger_on_random_json(
    name: str, kind: object, branch: object, extra: dict[str, object], with_branch: bool
) -> None:
    data = {**extra, "type": kind}
    if with_branch:
        data["branch"] = branch
    raw = json.dumps(data).encode()
    check_parse(name, raw)
    if kind in ("wake", "push") and not isinstance(kind, bool):
        good_branch = isinstance(branch, str) and branch in ("main", "v25.12")
        if kind == "wake" or (with_branch and good_branch):
            assert parse_trigger(name, raw).type == kind


# --- product bug ----------------------------------------------------------------------

DEEP = b"[" * 50_000  # under the size limit


def test_deeply_nested_json_is_a_trigger_error() -> None:
    with pytest.raises(TriggerError, match=r"^deep\.json: "):
        parse_trigger("deep.json", DEEP)


def test_drain_rejects_deeply_nested_json(tmp_path: Path) -> None:
    trigger_dir = TriggerDir(tmp_path / "t")
    drop(trigger_dir.directory, "deep.json", DEEP)
    drop(trigger_dir.directory, "later.json", '{"type": "wake"}')
    assert [t.name for t in trigger_dir.drain()] == ["later.json"]
    assert names(trigger_dir.rejected) == {"deep.json", "deep.json.reason"}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    fields = '"type": "hold", "branch": "main", "pkgname": "a", "who": "w", "why": "y"'
    raw = f'{{{fields}, "expires": {constant}}}'
    with pytest.raises(TriggerError, match=f"not a JSON document: {constant} is not a JSON value"):
        parse_trigger("t.json", raw.encode())
