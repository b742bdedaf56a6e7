"""The APKBUILD parse cache in the state directory: a restart parses only what
changed, and a cache of another parser or a damaged one is ignored."""

from __future__ import annotations

import marshal
import os
from pathlib import Path

import pytest

import reconciler.desired.parsecache
import reconciler.desired.reader
from reconciler.config.branches import BranchConfig
from reconciler.desired.parsecache import ParseCache
from reconciler.desired.reader import DesiredReader
from reconciler.model.packages import BranchDesired

from .conftest import set_field


def read(pmaports: Path, state: Path) -> BranchDesired:
    reader = DesiredReader(("systemd",), ParseCache(state))
    return reader.read_branch(BranchConfig("main", pmaports, ("x86_64", "armv7")))


def test_a_restart_parses_only_what_changed(
    pmaports: Path, tmp_path: Path, parse_calls: list[str]
) -> None:
    state = tmp_path / "state"
    cache = ParseCache(state).path_for(str(pmaports))
    first = read(pmaports, state)
    assert len(parse_calls) == 18 and cache.is_file()
    written = cache.stat().st_mtime_ns
    parse_calls.clear()
    again = read(pmaports, state)
    assert parse_calls == [] and again == first
    assert cache.stat().st_mtime_ns == written, "an unchanged cache is not written again"
    target = pmaports / "main/libfoo/APKBUILD"
    set_field(target, "pkgrel", "9")
    older = target.stat().st_mtime_ns - 5_000_000_000
    os.utime(target, ns=(older, older))
    changed = read(pmaports, state)
    assert parse_calls == ["main/libfoo/APKBUILD"]
    assert changed != first
    parse_calls.clear()
    assert read(pmaports, state) == changed and parse_calls == []


def test_a_damaged_cache_or_one_of_another_parser_is_ignored(
    pmaports: Path, tmp_path: Path, parse_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ParseCache(tmp_path).path_for(str(pmaports))
    first = read(pmaports, tmp_path)
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 2])
    parse_calls.clear()
    assert read(pmaports, tmp_path) == first and len(parse_calls) == 18
    monkeypatch.setattr(reconciler.desired.parsecache, "parser_digest", lambda: "another parser")
    parse_calls.clear()
    assert read(pmaports, tmp_path) == first and len(parse_calls) == 18


@pytest.mark.parametrize(
    "rows",
    [
        None,
        42,
        {"x": (1, 2)},
        {"x": ((1, 2, 3), "main/x", "", ("too", "few"), "", 0)},
        {"x": ((1, 2), "main/x", "", None, "", 0)},
        [("x", "y")],
    ],
)
def test_a_cache_of_the_right_parser_but_foreign_shape_is_ignored(rows: object) -> None:
    data = marshal.dumps((reconciler.desired.parsecache.parser_digest(), rows))
    assert reconciler.desired.parsecache.load(data) == {}
    assert reconciler.desired.parsecache.load(marshal.dumps(rows)) == {}


def test_a_restart_keeps_the_lines_broken_reasons_name(pmaports: Path, tmp_path: Path) -> None:
    """A broken package's reason (its line included) is the same after a restart,
    so a restart makes no state change of it."""
    directory = pmaports / "main/badarch"
    directory.mkdir()
    (directory / "APKBUILD").write_text(
        'pkgname=badarch\npkgver=1.0\npkgrel=0\n\narch="x86_65"\nlicense="MIT"\n'
    )
    state = tmp_path / "state"
    first = {b.pkgname: (b.reason, b.line) for b in read(pmaports, state).broken}
    assert "line 5: arch" in first["badarch"][0] and first["badarch"][1] == 5
    again = {b.pkgname: (b.reason, b.line) for b in read(pmaports, state).broken}
    assert again == first
