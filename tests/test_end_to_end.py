"""The whole loop, end to end, on the sample tree with the local job service.

What was published is checked with this file's own readers (tests/apkcheck.py):
gzip split by zlib, tar read by tarfile, signatures checked with cryptography.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from reconciler.loop import Daemon

from .apkcheck import read_index, verifies
from .conftest import ConfigFactory, set_field
from .sample_tree import check_final, expected_files


def test_sample_tree_publishes_then_exactly_the_next_change(
    make_config: ConfigFactory, pmaports: Path
) -> None:
    config = make_config()
    daemon = Daemon(config)
    result = daemon.converge(max_seconds=120)
    assert result.all_published, result.plan.repos

    final_pub = config.keys.final_public.read_bytes()
    wip_pub = config.keys.wip_public.read_bytes()
    assert final_pub != wip_pub
    for arch in ("x86_64", "aarch64", "armv7"):
        for splitrepo, prefix in (("", ""), ("systemd", "extra-repos/systemd/")):
            final_dir = config.paths.final_repo / f"{prefix}main/{arch}"
            check_final(final_dir, expected_files(pmaports, arch, splitrepo), final_pub, wip_pub)
            wip_index = config.paths.wip_repo / f"{prefix}main/{arch}" / "APKINDEX.tar.gz"
            assert verifies(read_index(wip_index), wip_pub), "WIP index verifies with the WIP key"
    assert (config.paths.html_out / "index.html").is_file()

    # A pkgrel bump, a deleted package and a dropped trigger file.
    before = {p: p.stat().st_mtime_ns for p in config.paths.final_repo.rglob("*.apk")}
    set_field(pmaports / "main/foo-gui/APKBUILD", "pkgrel", "1")
    shutil.rmtree(pmaports / "main/hello-x86")
    trigger = config.paths.triggers / ".push.json.tmp"
    trigger.write_text('{"type": "push", "branch": "main"}')
    trigger.rename(config.paths.triggers / "push.json")
    result = daemon.converge(max_seconds=120)
    assert result.all_published, result.plan.repos
    for arch in ("x86_64", "aarch64", "armv7"):
        for splitrepo, prefix in (("", ""), ("systemd", "extra-repos/systemd/")):
            final_dir = config.paths.final_repo / f"{prefix}main/{arch}"
            check_final(final_dir, expected_files(pmaports, arch, splitrepo), final_pub, wip_pub)
    after = {p: p.stat().st_mtime_ns for p in config.paths.final_repo.rglob("*.apk")}
    changed = {p.name for p in after if before.get(p) != after[p]}
    removed = {p.name for p in before if p not in after}
    assert changed == {"foo-gui-2.0.1-r1.apk"}, "only the bumped package is new"
    assert removed == {"foo-gui-2.0.1-r0.apk", "hello-x86-1.0.0-r0.apk"}
    assert (config.paths.triggers / "processed" / "push.json").is_file()
