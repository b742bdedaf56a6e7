"""A full disk under the final repository or the site: the published state stays
intact, the error shows, and everything recovers once there is space again.

The tests run as root, which ignores file modes, so the errors are made real
with tiny tmpfs mounts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .apkcheck import apk_checksum, read_index, verifies
from .command_line import run_cli
from .conftest import ConfigFactory, DaemonFactory, fill, set_field


def check_final(final: Path, public_key: bytes) -> dict[str, str]:
    index = read_index(final / "APKINDEX.tar.gz")
    assert verifies(index, public_key)
    for entry in index.entries:
        path = final / f"{entry['P']}-{entry['V']}.apk"
        assert int(entry["S"]) == path.stat().st_size
        assert entry["C"] == apk_checksum(path)
    return {e["P"]: e["V"] for e in index.entries}


def test_full_final_disk_keeps_the_published_repository(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path, tiny_mount: Path
) -> None:
    base = tiny_mount.parent
    config = make_config(
        paths=f"data: {base}/data, html_out: {base}/html, final_repo: {tiny_mount}/final"
    )
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    key = config.keys.final_public.read_bytes()
    final = config.paths.final_repo / "main/x86_64"
    before = check_final(final, key)

    set_field(pmaports / "main/foo-gui/APKBUILD", "pkgrel", "1")
    filler = fill(tiny_mount)
    result = daemon.converge(max_seconds=60)
    assert not result.all_published
    assert check_final(final, key) == before, "the live repository is untouched"
    page = (config.paths.html_out / "index.html").read_text()
    assert "Problems in the last pass" in page
    assert "No space left on device" in page

    filler.unlink()
    assert daemon.converge(max_seconds=120).all_published
    assert check_final(final, key)["foo-gui"] == "2.0.1-r1"


def test_full_site_disk_keeps_the_old_pages_and_reports_it(
    make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path, tiny_mount: Path
) -> None:
    config = make_config(paths=f"data: {tiny_mount.parent}/data, html_out: {tiny_mount}/html")
    daemon = fake_daemon(config)
    assert daemon.converge(max_seconds=120).all_published
    index_page = config.paths.html_out / "index.html"
    old = index_page.read_bytes()

    set_field(pmaports / "main/foo-gui/APKBUILD", "pkgrel", "1")
    filler = fill(tiny_mount)
    result = daemon.converge(max_seconds=120)
    assert result.all_published, "the repositories publish although the site cannot be written"
    assert index_page.read_bytes() == old, "a visitor still sees the last good page"
    assert not list(config.paths.html_out.rglob("*.tmp")), "no half-written page is left"

    filler.unlink()
    daemon.run_pass()
    page = index_page.read_text()
    assert "the site could not be written at" in page  # said on the next good render
    daemon.run_pass()
    assert "the site could not be written at" not in index_page.read_text()


def test_a_full_data_disk_consumes_no_tries_and_run_once_exits_non_zero(
    make_config: ConfigFactory,
    pmaports: Path,
    tiny_mount: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The whole data directory (state, jobs, WIP, final, triggers) on a full file
    system, with the real command line and the real local job service."""
    config = make_config(
        branches=f"branches:\n  - {{name: main, pmaports: {pmaports}, arches: [x86_64]}}\n",
        paths=f"data: {tiny_mount}/data, html_out: {tiny_mount.parent}/html",
    )
    assert run_cli("run", "--once", "--config", config.source).returncode == 0
    final = config.paths.final_repo / "main/x86_64"
    before = check_final(final, config.keys.final_public.read_bytes())
    set_field(pmaports / "main/foo-gui/APKBUILD", "pkgrel", "1")
    filler = fill(tiny_mount)
    caplog.clear()

    ran = run_cli("run", "--once", "--config", config.source)
    assert ran.returncode == 1, ran.stdout
    assert "cannot write, a file system is full" in ran.stdout
    assert "No space left on device" in ran.stdout
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a full disk"
    full_lines = [r for r in caplog.records if "a file system is full" in r.getMessage()]
    passes = sum("cannot write" in r.getMessage() for r in full_lines)
    assert 1 <= passes <= 3, "said once per pass, not once per action"
    assert check_final(final, config.keys.final_public.read_bytes()) == before
    foo_jobs = [
        p.name for p in config.paths.jobs.rglob("build@main@main@x86_64@foo-gui@2.0.1-r1@*")
    ]
    assert foo_jobs == [], "no job was made, so no try was spent"

    filler.unlink()
    ran = run_cli("run", "--once", "--config", config.source)
    assert ran.returncode == 0, ran.stdout
    assert check_final(final, config.keys.final_public.read_bytes())["foo-gui"] == "2.0.1-r1"
    jobs = sorted(p.name for p in config.paths.jobs.glob("*/build@*@foo-gui@2.0.1-r1@*[0-9]"))
    assert jobs == ["build@main@main@x86_64@foo-gui@2.0.1-r1@1"], "the first try succeeded"
