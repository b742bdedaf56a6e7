"""The shipped systemd units, scored by `systemd-analyze security --offline=true`:
the daemon's and the webhook receiver's at or below 3.0, and the drop-in for a
local pmbootstrap builder loads (it relaxes, so it scores worse, by design)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT
from .nginx_server import require_tool

UNITS = ("reconciler.service", "reconciler-webhook.service")
DROP_IN = ROOT / "deploy" / "dropins" / "local-pmbootstrap.conf"
LEVEL_RE = re.compile(r"Overall exposure level for (\S+): ([0-9.]+) ")


def exposure(unit: Path) -> tuple[float, str]:
    """The overall exposure level of a unit file, and what was printed."""
    analyze = require_tool("systemd-analyze", "systemd")
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", unit.name],
        cwd=unit.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    found = LEVEL_RE.search(output)
    assert found is not None, output
    assert found.group(1) == unit.name
    return float(found.group(2)), output


@pytest.mark.parametrize("name", UNITS)
def test_the_shipped_unit_scores_at_most_3(name: str, tmp_path: Path) -> None:
    unit = tmp_path / name  # alone: no drop-in beside it
    shutil.copy(ROOT / "deploy" / name, unit)
    level, output = exposure(unit)
    assert level <= 3.0, output
    assert "Unknown" not in output and "Failed to parse" not in output, output


def test_the_local_pmbootstrap_drop_in_loads_and_relaxes_only_what_it_says(
    tmp_path: Path,
) -> None:
    unit = tmp_path / "reconciler.service"
    shutil.copy(ROOT / "deploy" / "reconciler.service", unit)
    tight, _ = exposure(unit)
    (tmp_path / "reconciler.service.d").mkdir()
    shutil.copy(DROP_IN, tmp_path / "reconciler.service.d" / DROP_IN.name)
    relaxed, output = exposure(unit)
    assert "Unknown" not in output and "Failed to parse" not in output, output
    assert relaxed > tight, "the drop-in is read"
    text = DROP_IN.read_text()
    for setting in re.findall(r"^(\w+)=", text, re.MULTILINE):
        comment_before = text.split(f"\n{setting}=")[0].rsplit("\n\n", 1)[-1]
        assert "#" in comment_before, f"{setting} relaxed without a reason"
