"""Atomic writes and safe joins: what readers of pages, indexes and state rely on."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.fs.atomicfile import (
    TREE_PREFIX,
    UnsafePathError,
    discard_unfinished_trees,
    safe_join,
    sync_filesystem,
    write_batch,
    write_bytes,
    write_fresh,
    write_new_tree,
)


@pytest.fixture
def strict_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp"))


def test_write_batch_creates_and_replaces_files_readable_by_nginx(
    tmp_path: Path, strict_umask: None
) -> None:
    old = tmp_path / "index.html"
    old.write_bytes(b"old")
    items = [
        (old, b"new front page"),
        (tmp_path / "packages" / "edge" / "hello.html", b"<p>hello</p>"),
        (tmp_path / "packages" / "edge" / "empty.html", b""),
    ]
    write_batch(items)
    for path, data in items:
        assert path.read_bytes() == data
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    for directory in (tmp_path / "packages", tmp_path / "packages" / "edge"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    assert _leftovers(tmp_path) == []


def test_write_batch_of_nothing_writes_nothing(tmp_path: Path) -> None:
    write_batch([])
    assert list(tmp_path.iterdir()) == []


def test_write_batch_steps_around_a_leftover_of_a_crashed_writer(tmp_path: Path) -> None:
    target = tmp_path / "feed.atom"
    leftover = tmp_path / f".feed.atom.{os.getpid()}.0.tmp"
    leftover.write_bytes(b"torn")
    write_batch([(target, b"<feed/>")])
    assert target.read_bytes() == b"<feed/>"
    assert leftover.read_bytes() == b"torn"  # not ours to judge; the crashed writer's


def test_failed_batch_leaves_every_old_file_and_no_temporary(tmp_path: Path) -> None:
    first = tmp_path / "a.html"
    first.write_bytes(b"old a")
    blocker = tmp_path / "b.html"
    blocker.mkdir()  # a directory where a file should go: the rename fails
    (blocker / "keep").write_bytes(b"")
    with pytest.raises(OSError):
        write_batch([(first, b"new a"), (blocker, b"new b")])
    # renames happen only after every file is staged, in order: the first may have
    # landed whole, but never torn, and nothing half-written is left behind
    assert first.read_bytes() in (b"old a", b"new a")
    assert blocker.is_dir()
    assert _leftovers(tmp_path) == []


def test_failed_staging_renames_nothing(tmp_path: Path) -> None:
    first = tmp_path / "a.html"
    first.write_bytes(b"old a")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OSError):
        # the second target's parent is a file: staging fails before any rename
        write_batch([(first, b"new a"), (tmp_path / "file" / "b.html", b"b")])
    assert first.read_bytes() == b"old a"
    assert _leftovers(tmp_path) == []


def test_write_bytes_sets_mode_and_mtime(tmp_path: Path, strict_umask: None) -> None:
    target = tmp_path / "deep" / "state.json"
    write_bytes(target, b"{}", mtime=1_000_000.0)
    assert target.read_bytes() == b"{}"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.stat().st_mtime == 1_000_000.0
    assert _leftovers(tmp_path) == []


def test_sync_filesystem_names_the_path_it_could_not_open(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(FileNotFoundError) as caught:
        sync_filesystem(str(missing))
    assert caught.value.filename == str(missing)
    sync_filesystem(str(tmp_path))  # an existing path syncs without error


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("edge", "hello.html"), "edge/hello.html"),
        (("edge/x86_64", "a-1.0-r0.apk"), "edge/x86_64/a-1.0-r0.apk"),
        (("..hidden",), "..hidden"),
    ],
)
def test_safe_join_accepts_plain_names(
    tmp_path: Path, parts: tuple[str, ...], expected: str
) -> None:
    assert safe_join(tmp_path, *parts) == tmp_path / expected


@pytest.mark.parametrize(
    "part",
    ["", ".", "..", "../etc", "a/../b", "/etc/passwd", "a//b", "a/", "nul\x00", "line\nbreak"],
)
def test_safe_join_refuses_names_that_leave_their_root(tmp_path: Path, part: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, "edge", part)


def test_write_new_tree_moves_whole_entries_in_and_merges_existing_ones(
    tmp_path: Path, strict_umask: None
) -> None:
    root = tmp_path / "site"
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "1.log").write_bytes(b"kept")
    items = [
        ("index.html", b"front"),
        ("package/edge/hello.html", b"hello"),
        ("package/v25.12/hello.html", b"hello too"),
        ("logs/2.log", b"new log"),
    ]
    write_new_tree(str(root), items)
    for relpath, data in items:
        assert (root / relpath).read_bytes() == data
        assert stat.S_IMODE((root / relpath).stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "package").stat().st_mode) == 0o755
    assert (root / "logs" / "1.log").read_bytes() == b"kept"
    assert sorted(p.name for p in root.iterdir()) == ["index.html", "logs", "package"]


def test_write_new_tree_cut_short_shows_nothing_half_built(tmp_path: Path) -> None:
    root = tmp_path / "site"
    with pytest.raises(UnsafePathError):
        write_new_tree(str(root), [("index.html", b"front"), ("../escape.html", b"x")])
    assert list(root.iterdir()) == []  # neither the staged file nor the staging dir
    assert not (tmp_path / "escape.html").exists()


def test_leftover_of_a_crashed_tree_is_discarded(tmp_path: Path) -> None:
    leftover = tmp_path / f"{TREE_PREFIX}crashed"
    (leftover / "package").mkdir(parents=True)
    (leftover / "package" / "torn.html").write_bytes(b"<ht")
    discard_unfinished_trees(str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_fresh_write_replaces_the_file_whole_for_a_reader_that_has_it_open(
    tmp_path: Path,
) -> None:
    """The heartbeat's write: a reader sees the old bytes or the new ones, never a
    mix, and nothing is left aside."""
    path = tmp_path / "metrics.prom"
    write_fresh(path, b"old\n")
    with path.open("rb") as reader:
        write_fresh(path, b"new\n" * 1000)
        assert reader.read() == b"old\n"
    assert path.read_bytes() == b"new\n" * 1000
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.prom"]
