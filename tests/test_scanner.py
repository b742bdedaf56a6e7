"""The repository scanner: what it notices on a normal pass and on a full one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from reconciler.formats.apkwrite import build_apk
from reconciler.model.layout import RepoRoots
from reconciler.model.names import RepoKey
from reconciler.observed.scanner import RepoScanner

KEY = RepoKey("main", "", "x86_64")


def apk(name: str, serial: int) -> bytes:
    files = {f"usr/share/{name}": f"{serial}\n".encode()}
    return build_apk(pkgname=name, version="1-r0", arch="x86_64", origin=name, files=files)


def age(directory: Path, step: int) -> None:
    """Put the directory's mtime well in the past (a new one per step), so no
    listing counts as racy and each change is a change of the directory."""
    os.utime(directory, (1_000_000_000 + step, 1_000_000_000 + step))


def test_a_renamed_in_apk_is_read_at_once_and_an_in_place_edit_at_the_full_listing(
    tmp_path: Path,
) -> None:
    roots = RepoRoots(tmp_path / "wip", tmp_path / "final", tmp_path / "symlink")
    wip = roots.wip / KEY.relpath
    wip.mkdir(parents=True)
    for name in ("a", "b"):
        (wip / f"{name}-1-r0.apk").write_bytes(apk(name, 0))
    age(wip, 0)
    scanner = RepoScanner(roots)
    first = scanner.scan(KEY, full=True)
    assert set(first.wip) == {"a-1-r0.apk", "b-1-r0.apk"}
    assert scanner.scan(KEY) is first, "nothing changed: the same snapshot"

    # A writer renames a new file in: a new inode, seen on the next normal pass.
    tmp = wip / ".a.tmp"
    tmp.write_bytes(apk("a", 1))
    os.replace(tmp, wip / "a-1-r0.apk")
    age(wip, 1)
    renamed = scanner.scan(KEY)
    assert renamed.wip["a-1-r0.apk"].checksum != first.wip["a-1-r0.apk"].checksum
    assert renamed.wip["b-1-r0.apk"] is first.wip["b-1-r0.apk"], "b was not read again"

    # Someone rewrites b in place (same inode): the next full listing reads it.
    inode = (wip / "b-1-r0.apk").stat().st_ino
    with open(wip / "b-1-r0.apk", "r+b") as handle:
        handle.truncate(0)
        handle.write(apk("b", 2))
    assert (wip / "b-1-r0.apk").stat().st_ino == inode
    (wip / "c-1-r0.apk").write_bytes(apk("c", 0))  # the directory changes too
    age(wip, 2)
    normal = scanner.scan(KEY)
    assert normal.wip["b-1-r0.apk"] is first.wip["b-1-r0.apk"]
    full = scanner.scan(KEY, full=True)
    assert full.wip["b-1-r0.apk"].checksum != first.wip["b-1-r0.apk"].checksum
    assert set(full.wip) == {"a-1-r0.apk", "b-1-r0.apk", "c-1-r0.apk"}
    shutil.rmtree(wip)
    assert scanner.scan(KEY).wip == {}
