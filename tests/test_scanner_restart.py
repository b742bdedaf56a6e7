"""The scanner's cache in the state directory: a restart opens only the apks and
indexes whose identity changed since they were read, a damaged or foreign cache
file costs reads (and one log line), never wrong package information; and a full
listing (start, resync) of an unchanged directory stats every apk but keeps what
it knew."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

import reconciler.observed.scancache
from reconciler.formats.apkindex import build_index_archive, format_index
from reconciler.formats.apkwrite import build_apk
from reconciler.fs.apkfiles import read_apk
from reconciler.model.layout import RepoRoots
from reconciler.model.names import RepoKey
from reconciler.model.packages import ApkInfo
from reconciler.observed.scancache import (
    SCAN_CACHE_DIR,
    CacheFileError,
    FileEntry,
    ScanCache,
    SharedInfos,
    dump_listing,
    load_listing,
)
from reconciler.observed.scanner import RepoScanner

from .conftest import ConfigFactory, DaemonFactory, fill

KEY = RepoKey("main", "", "x86_64")
NAMES = ("a", "b", "c")


def apk(name: str, serial: int) -> bytes:
    files = {f"usr/share/{name}": f"{serial}\n".encode()}
    return build_apk(
        pkgname=name,
        version="1-r0",
        arch="x86_64",
        origin=name,
        description=f"the {name} package ✓",
        depends=("so:libc.musl-x86_64.so.1", "other>=2"),
        files=files,
    )


def age(path: Path, step: int = 0) -> None:
    """An mtime well in the past (a new one per step): no listing counts as racy."""
    os.utime(path, (1_000_000_000 + step, 1_000_000_000 + step))


def rewrite_in_place(path: Path, data: bytes) -> None:
    inode = path.stat().st_ino
    with open(path, "r+b") as handle:
        handle.truncate(0)
        handle.write(data)
    assert path.stat().st_ino == inode


@pytest.fixture
def roots(tmp_path: Path) -> RepoRoots:
    """A final repository of three apks with its index, and a WIP one of one apk."""
    roots = RepoRoots(tmp_path / "wip", tmp_path / "final", tmp_path / "symlink")
    final = roots.final / KEY.relpath
    final.mkdir(parents=True)
    for name in NAMES:
        (final / f"{name}-1-r0.apk").write_bytes(apk(name, 0))
    infos = [read_apk(final / f"{name}-1-r0.apk") for name in NAMES]
    text = format_index(infos, rewrite_arch="x86_64")
    index = build_index_archive(text, description="final", mtime=1_000_000_000)
    (final / "APKINDEX.tar.gz").write_bytes(index)
    wip = roots.wip / KEY.relpath
    wip.mkdir(parents=True)
    (wip / "d-1-r0.apk").write_bytes(apk("d", 0))
    for directory in (final, wip):
        age(directory)
    return roots


def scanner(roots: RepoRoots, state: Path) -> RepoScanner:
    return RepoScanner(roots, ScanCache(state / SCAN_CACHE_DIR))


def files_in(state: Path) -> dict[str, tuple[int, int]]:
    """Each cache file's (inode, mtime_ns): what tells a write."""
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (state / SCAN_CACHE_DIR).iterdir()
    }


def test_a_restart_opens_no_apk_and_parses_no_index_it_already_knew(
    roots: RepoRoots, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = scanner(roots, state)
    before = first.scan(KEY, full=True)
    assert (first.apks_opened, first.indexes_read) == (4, 1)
    assert first.persist() == ""
    written = files_in(state)
    assert len(written) == 3, "the final and WIP listings and the final index"

    again = scanner(roots, state)
    after = again.scan(KEY, full=True)
    assert (again.apks_opened, again.indexes_read) == (0, 0)
    assert after == before
    assert again.scan(KEY, full=True) is after, "a resync keeps the same snapshot"
    assert again.persist() == ""
    assert files_in(state) == written, "what was read from the cache is not written back"


def test_an_apk_replaced_in_place_added_or_removed_between_two_daemons_is_seen(
    roots: RepoRoots, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = scanner(roots, state)
    before = first.scan(KEY, full=True)
    first.persist()
    final = roots.final / KEY.relpath
    rewrite_in_place(final / "b-1-r0.apk", apk("b", 1))  # other bytes, same name and inode
    (final / "c-1-r0.apk").unlink()
    (final / "e-1-r0.apk").write_bytes(apk("e", 0))
    age(final, 1)

    again = scanner(roots, state)
    after = again.scan(KEY, full=True)
    assert again.apks_opened == 2, "b (changed) and e (new), nothing else"
    assert set(after.final) == {"a-1-r0.apk", "b-1-r0.apk", "e-1-r0.apk"}
    assert after.final["b-1-r0.apk"] == read_apk(final / "b-1-r0.apk")
    assert after.final["b-1-r0.apk"].checksum != before.final["b-1-r0.apk"].checksum
    assert after.final["a-1-r0.apk"] == before.final["a-1-r0.apk"]
    assert again.persist() == ""
    third = scanner(roots, state)
    assert third.scan(KEY, full=True) == after and third.apks_opened == 0


def test_an_index_replaced_between_two_daemons_is_parsed_again(
    roots: RepoRoots, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = scanner(roots, state)
    before = first.scan(KEY, full=True)
    first.persist()
    index = roots.final / KEY.relpath / "APKINDEX.tar.gz"
    info = read_apk(roots.final / KEY.relpath / "a-1-r0.apk")
    index.write_bytes(build_index_archive(format_index([info]), description="x", mtime=1))

    again = scanner(roots, state)
    after = again.scan(KEY, full=True)
    assert again.indexes_read == 1
    assert after.final_index is not None and before.final_index is not None
    assert set(after.final_index.files) == {"a-1-r0.apk"}
    assert after.final_index.sha256 != before.final_index.sha256


def damage_truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])


def damage_flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x20
    path.write_bytes(bytes(data))


def damage_empty(path: Path) -> None:
    path.write_bytes(b"")


def damage_garbage(path: Path) -> None:
    path.write_bytes(os.urandom(5000))


def damage_other_path(path: Path) -> None:
    """The cache file of another directory, under this one's name."""
    other = next(p for p in path.parent.iterdir() if p.suffix == ".apks" and p != path)
    path.write_bytes(other.read_bytes())


def damage_forged_rows(path: Path) -> None:
    """A well-formed header (right sha256) over a payload of another shape."""
    magic, header, payload = path.read_bytes().split(b"\n", 2)
    fields = json.loads(header)
    fields["rows"] = 10**9
    path.write_bytes(b"\n".join((magic, json.dumps(fields).encode(), payload)))


def damage_nested_header(path: Path) -> None:
    path.write_bytes(reconciler.observed.scancache.MAGIC + b"[" * 100_000 + b"\n")


def damage_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize(
    "damage",
    [
        damage_truncate,
        damage_flip_a_byte,
        damage_empty,
        damage_garbage,
        damage_other_path,
        damage_forged_rows,
        damage_nested_header,
        damage_directory,
    ],
)
def test_a_damaged_cache_file_is_ignored_with_one_log_line_and_the_apks_are_read(
    roots: RepoRoots, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: object
) -> None:
    state = tmp_path / "state"
    first = scanner(roots, state)
    truth = first.scan(KEY, full=True)
    first.persist()
    cache = ScanCache(state / SCAN_CACHE_DIR)
    target = state / SCAN_CACHE_DIR / cache.file_name("apks", str(roots.final / KEY.relpath))
    assert callable(damage)
    damage(target)

    caplog.set_level(logging.DEBUG, logger="reconciler.observed")
    again = scanner(roots, state)
    assert again.scan(KEY, full=True) == truth
    assert again.apks_opened == 3, "the final directory's apks are read again"
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and str(target) in lines[0], lines
    if target.is_dir():
        target.rmdir()
    assert again.persist() == ""
    third = scanner(roots, state)
    assert third.scan(KEY, full=True) == truth and third.apks_opened == 0, "written anew"


@pytest.mark.parametrize(
    "header",
    [{"mtime": 1e999}, {"mtime": "yesterday"}, {"ident": [1, 2]}, {"signer": None}, {"rows": -1}],
)
def test_a_damaged_index_cache_file_is_ignored_and_the_index_parsed(
    roots: RepoRoots, tmp_path: Path, caplog: pytest.LogCaptureFixture, header: dict[str, object]
) -> None:
    state = tmp_path / "state"
    first = scanner(roots, state)
    truth = first.scan(KEY, full=True)
    first.persist()
    index = str(roots.final / KEY.relpath / "APKINDEX.tar.gz")
    target = state / SCAN_CACHE_DIR / ScanCache(state).file_name("index", index)
    magic, line, payload = target.read_bytes().split(b"\n", 2)
    target.write_bytes(
        b"\n".join((magic, json.dumps({**json.loads(line), **header}).encode(), payload))
    )
    again = scanner(roots, state)
    assert again.scan(KEY, full=True) == truth
    assert (again.apks_opened, again.indexes_read) == (0, 1)
    assert [str(target) in r.getMessage() for r in caplog.records] == [True]


def test_a_cache_written_by_other_code_is_ignored(
    roots: RepoRoots,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = tmp_path / "state"
    first = scanner(roots, state)
    truth = first.scan(KEY, full=True)
    first.persist()
    monkeypatch.setattr(reconciler.observed.scancache, "code_digest", lambda: "a newer reader")
    again = scanner(roots, state)
    assert again.scan(KEY, full=True) == truth
    assert (again.apks_opened, again.indexes_read) == (4, 1)
    assert all("another version" in r.getMessage() for r in caplog.records)
    assert len(caplog.records) == 3  # one line for each file


def test_a_full_listing_of_an_unchanged_directory_stats_every_apk(
    roots: RepoRoots, tmp_path: Path
) -> None:
    """A resync keeps every object while nothing changed, and sees what changed
    behind the daemon's back even when the directory's mtime says nothing did."""
    state = tmp_path / "state"
    scan = scanner(roots, state)
    final = roots.final / KEY.relpath
    first = scan.scan(KEY, full=True)
    assert scan.scan(KEY, full=True) is first and scan.apks_opened == 4

    def hidden(change: str) -> None:
        """A change, with the directory's mtime put back as it was."""
        if change == "in place":
            rewrite_in_place(final / "a-1-r0.apk", apk("a", 1))
        elif change == "added":
            (final / "f-1-r0.apk").write_bytes(apk("f", 0))
        else:
            (final / "f-1-r0.apk").unlink()
        age(final)

    hidden("in place")
    assert scan.scan(KEY) is first, "a normal pass trusts the directory's mtime"
    changed = scan.scan(KEY, full=True)
    rewritten = changed.final["a-1-r0.apk"]
    assert rewritten == read_apk(final / "a-1-r0.apk") != first.final["a-1-r0.apk"]
    assert changed.final["b-1-r0.apk"] is first.final["b-1-r0.apk"] and scan.apks_opened == 5
    hidden("added")
    added = scan.scan(KEY, full=True)
    assert "f-1-r0.apk" in added.final and scan.apks_opened == 6
    hidden("removed")
    removed = scan.scan(KEY, full=True)
    assert "f-1-r0.apk" not in removed.final and scan.apks_opened == 6
    assert scan.scan(KEY, full=True) is removed


def test_an_unreadable_apk_is_reported_after_a_restart_too(
    roots: RepoRoots, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    final = roots.final / KEY.relpath
    (final / "broken-1-r0.apk").write_bytes(b"not an apk")
    (final / "liar-1-r0.apk").write_bytes(apk("a", 0))  # a .PKGINFO naming another file
    age(final)
    first = scanner(roots, state)
    before = first.scan(KEY, full=True)
    assert set(before.bad_final) == {"broken-1-r0.apk", "liar-1-r0.apk"}
    assert first.scan(KEY, full=True).bad_final == before.bad_final
    first.persist()
    again = scanner(roots, state)
    after = again.scan(KEY, full=True)
    assert after.bad_final == before.bad_final and after.final == before.final
    assert again.apks_opened == 1, "only the unreadable file is tried again"


def info(**changes: object) -> ApkInfo:
    values: dict[str, object] = {
        "pkgname": "foo",
        "version": "1.0-r0",
        "arch": "noarch",
        "size": 1234,
        "installed_size": 4096,
        "checksum": "Q1abc=",
    }
    values.update(changes)
    return ApkInfo(**values)  # type: ignore[arg-type]


def test_every_field_survives_the_round_trip_or_the_row_is_left_out() -> None:
    kept: dict[str, FileEntry] = {
        "foo-1.0-r0.apk": ((7, 1234, -5), info()),
        "bar-2-r1.apk": (
            (2**64 - 1, 9, 2**62),
            info(
                pkgname="bar",
                version="2-r1",
                description="ünïcode\tand tabs",
                url="https://example.org",
                license="MIT AND (GPL-2.0-or-later)",
                origin="",
                maintainer="Kim <kim@example.org>",
                builddate=-3,
                commit="",
                provider_priority=100,
                depends=("a", "so:b.so.1", "!c"),
                provides=("cmd:bar=2-r1",),
                install_if=("bar=2-r1", "x"),
                datahash="ab" * 32,
            ),
        ),
    }
    kept["huge-1-r0.apk"] = ((1, 1, 1), info(builddate=2**70, provider_priority=-1))
    left_out: dict[str, FileEntry] = {
        "newline-1-r0.apk": ((1, 1, 1), info(description="two\nlines")),
        "space-1-r0.apk": ((1, 1, 1), info(depends=("a b",))),
        "empty-1-r0.apk": ((1, 1, 1), info(provides=("",))),
        "\udcff-1-r0.apk": ((1, 1, 1), info()),  # a file name that is not UTF-8
        "nul-1-r0.apk": ((1, 1, 1), info(url="a\0b")),
    }
    data = dump_listing("/some/dir", {**kept, **left_out}, "code")
    files, apks, bad = load_listing(data, "/some/dir", "code")
    assert files == kept
    assert set(apks) == {"foo-1.0-r0.apk", "bar-2-r1.apk"}
    assert bad == {"huge-1-r0.apk": "huge-1-r0.apk: .PKGINFO says foo-1.0-r0.apk"}
    assert load_listing(dump_listing("/some/dir", {}, "code"), "/some/dir", "code") == ({}, {}, {})
    for path, code in (("/other/dir", "code"), ("/some/dir", "other code")):
        with pytest.raises(CacheFileError):
            load_listing(data, path, code)


def test_the_same_package_in_two_directories_is_one_value_after_a_restart() -> None:
    shared = SharedInfos()
    entry = ((1, 1234, 5), info())
    first = load_listing(dump_listing("/a", {"foo-1.0-r0.apk": entry}, "c"), "/a", "c", shared)
    other = ((2, 1234, 6), info())  # equal, not the same object
    second = load_listing(dump_listing("/b", {"foo-1.0-r0.apk": other}, "c"), "/b", "c", shared)
    assert first[1]["foo-1.0-r0.apk"] is second[1]["foo-1.0-r0.apk"] == info()
    assert second[0]["foo-1.0-r0.apk"][0] == (2, 1234, 6)


def test_a_restarted_converged_daemon_opens_no_apk(
    make_config: ConfigFactory, fake_daemon: DaemonFactory
) -> None:
    config = make_config()
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    daemon.run_pass()  # let directory listings age past the racy window
    assert daemon.scanner.apks_opened > 0
    final = config.paths.final_repo / "main/x86_64"
    changed = sorted(final.glob("*.apk"))[0]
    data = changed.read_bytes()

    restarted = fake_daemon(config)
    result = restarted.run_pass(full=True)
    assert restarted.scanner.apks_opened == 0 and restarted.scanner.indexes_read == 0
    assert result.all_published

    # The same apk with other bytes (a flipped byte of its gzip trailer: not an apk
    # any more), written in place: the next daemon reads it and reports it.
    rewrite_in_place(changed, data[:-1] + bytes([data[-1] ^ 1]))
    third = fake_daemon(config)
    observed = third.observe(full=True).repos[RepoKey("main", "", "x86_64")]
    assert third.scanner.apks_opened == 1
    assert changed.name in observed.bad_final and changed.name not in observed.final


def test_a_full_disk_or_an_unwritable_cache_costs_the_cache_only(
    roots: RepoRoots, tiny_mount: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tiny_mount / "state" / SCAN_CACHE_DIR
    scan = RepoScanner(roots, ScanCache(cache))
    truth = scan.scan(KEY, full=True)
    filler = fill(tiny_mount)
    assert "No space left on device" in scan.persist(), "reported as the pass's full disk"
    filler.unlink()
    assert scan.persist() == "" and len(list(cache.iterdir())) == 3, "written once there is space"
    again = RepoScanner(roots, ScanCache(cache))
    assert again.scan(KEY, full=True) == truth and again.apks_opened == 0

    blocked = tiny_mount / "blocked"
    blocked.write_text("a file where the cache directory should be")
    other = RepoScanner(roots, ScanCache(blocked / SCAN_CACHE_DIR))
    assert other.scan(KEY, full=True) == truth
    assert other.persist() == ""
    assert any(str(blocked) in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
