"""SIGKILL at every step boundary of a publish; every restart converges safely.

The daemon runs as a real process with RECONCILER_CRASH_AT naming a boundary,
so it dies there with no cleanup. The live final index must never list an apk
that is missing or different; after a restart the run converges to the same
repository as an uninterrupted one, and no version goes backwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.config.settings import Config
from reconciler.fs.crashpoint import BOUNDARIES, ENV
from reconciler.loop import Daemon

from .apkcheck import apk_checksum, read_index, verifies
from .conftest import ROOT, ConfigFactory, DaemonFactory, set_field

X86_ONLY = """\
branches:
  - name: main
    pmaports: {tree}
    arches: [x86_64]
"""


def check_live_index(config: Config, relpath: str, *, exact: bool) -> dict[str, str]:
    """Every apk the live index lists exists with its size and checksum; with
    `exact`, nothing else is there either. Returns name -> version."""
    final = config.paths.final_repo / relpath
    index = read_index(final / "APKINDEX.tar.gz")
    assert verifies(index, config.keys.final_public.read_bytes())
    listed = {}
    for entry in index.entries:
        path = final / f"{entry['P']}-{entry['V']}.apk"
        assert path.is_file(), f"{path.name} is listed but missing"
        assert int(entry["S"]) == path.stat().st_size
        assert entry["C"] == apk_checksum(path)
        listed[entry["P"]] = entry["V"]
    if exact:
        on_disk = {p.name for p in final.glob("*.apk")}
        assert on_disk == {f"{n}-{v}.apk" for n, v in listed.items()}
    return listed


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_sigkill_at_each_boundary_then_restart(
    boundary: str, make_config: ConfigFactory, fake_daemon: DaemonFactory, pmaports: Path
) -> None:
    config = make_config(branches=X86_ONLY.format(tree=pmaports))
    # The published starting point, made quickly (fake clock, in-memory jobs).
    assert fake_daemon(config).converge(max_seconds=120).all_published
    before = check_live_index(config, "main/x86_64", exact=True)
    # A change that needs every step: a new version to copy, a deletion to prune.
    set_field(pmaports / "main/foo-gui/APKBUILD", "pkgrel", "1")
    shutil.rmtree(pmaports / "main/hello-x86")

    crashed = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "--once", "--config", config.source],
        cwd=ROOT,
        env={**os.environ, ENV: boundary},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == -9, f"the daemon did not reach {boundary}"
    for relpath in ("main/x86_64", "extra-repos/systemd/main/x86_64"):
        check_live_index(config, relpath, exact=False)  # never a dangling entry

    # The restart is real: the local job service, the jobs the crash left running.
    result = Daemon(config).converge(max_seconds=120)
    assert result.all_published, result.plan.repos
    after = check_live_index(config, "main/x86_64", exact=True)
    check_live_index(config, "extra-repos/systemd/main/x86_64", exact=True)
    assert after["foo-gui"] == "2.0.1-r1"
    assert "hello-x86" not in after
    assert {n: v for n, v in before.items() if n not in ("foo-gui", "hello-x86")} == {
        n: v for n, v in after.items() if n != "foo-gui"
    }, "everything else is exactly as it was: nothing lost, nothing went backwards"
