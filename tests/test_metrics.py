"""The metrics file: Prometheus text exposition of one pass, formatted purely.

Table tests over hand-made plans and pass figures; the daemon writes this text
every pass (its heartbeat), which test_daemon checks.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from reconciler.model.images import ImageTarget
from reconciler.model.names import RepoKey
from reconciler.model.progress import ImageStatus, PkgState, PkgStatus, RepoPhase, RepoStatus
from reconciler.plan.planner import Plan
from reconciler.site.metrics import MetricsFormatter, PassFigures

X86 = RepoKey("main", "", "x86_64")
SYSTEMD = RepoKey("main", "systemd", "x86_64")
PUBLISHED_X86 = (
    'reconciler_packages{branch="main",splitrepo="main",arch="x86_64",state="published"}'
)
SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\\n]|\\.)*",?)+\})? [0-9.e+-]+$')
FIGURES = PassFigures(
    now=1_800_000_000.123456,
    duration_seconds=0.0123456789,
    live_jobs=2,
    job_service_up=True,
    actions=5,
    failed_actions=1,
    site_files_written=40,
    apks_opened=12,
)


def plan(*packages: PkgStatus, phases: dict[RepoKey, RepoPhase] | None = None) -> Plan:
    phases = phases or {X86: RepoPhase.PUBLISHED, SYSTEMD: RepoPhase.BUILDING}
    return Plan((), packages, tuple(RepoStatus(k, p) for k, p in phases.items()))


def status(name: str, state: PkgState, repo: RepoKey = X86) -> PkgStatus:
    return PkgStatus(repo, name, "1-r0", state)


def samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if not line.startswith("#")
    }


def test_every_line_is_a_comment_or_a_sample_and_every_metric_has_help_and_type() -> None:
    text = MetricsFormatter().format(plan(status("a", PkgState.PUBLISHED)), FIGURES)
    assert text.endswith("\n")
    names = set()
    for line in text.splitlines():
        assert line.startswith("# ") or SAMPLE.match(line), line
        if not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    for name in names:
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text, name


@pytest.mark.parametrize(
    ("packages", "sample", "value"),
    [
        (
            (),
            'reconciler_packages{branch="main",splitrepo="main",arch="x86_64",state="published"}',
            0,
        ),
        ((status("a", PkgState.PUBLISHED), status("b", PkgState.PUBLISHED)), PUBLISHED_X86, 2),
        (
            (status("a", PkgState.FAILED, SYSTEMD),),
            'reconciler_packages{branch="main",splitrepo="systemd",arch="x86_64",state="failed"}',
            1,
        ),
        ((), 'reconciler_repository_published{branch="main",splitrepo="main",arch="x86_64"}', 1),
        ((), 'reconciler_repository_published{branch="main",splitrepo="systemd",arch="x86_64"}', 0),
        ((), "reconciler_jobs_running", 2),
        ((), "reconciler_job_service_up", 1),
        ((), "reconciler_pass_actions", 5),
        ((), "reconciler_pass_failed_actions", 1),
        ((), "reconciler_pass_duration_seconds", 0.012346),
        ((), "reconciler_last_pass_timestamp_seconds", 1_800_000_000.123),
        ((), "reconciler_site_written_ok", 1),
        ((), "reconciler_site_files_written_total", 40),
        ((), "reconciler_apks_opened_total", 12),
    ],
)
def test_samples(packages: tuple[PkgStatus, ...], sample: str, value: float) -> None:
    got = samples(MetricsFormatter().format(plan(*packages), FIGURES))
    assert got[sample] == pytest.approx(value)


@pytest.mark.parametrize(
    "now", [1_796_560_000.123, 1_800_000_000.999, 1_796_563_599.0004, 2_000_000_000.0, 1.5]
)
def test_the_heartbeat_time_round_trips_to_the_millisecond(now: float) -> None:
    """Six significant digits (%g) would lose more than an hour of a unix time."""
    text = MetricsFormatter().format(plan(), replace(FIGURES, now=now))
    got = samples(text)["reconciler_last_pass_timestamp_seconds"]
    assert got == round(now, 3)
    assert abs(got - now) <= 0.0005 + 1e-9


def test_values_are_written_in_full() -> None:
    text = MetricsFormatter().format(plan(status("a", PkgState.PUBLISHED)), FIGURES)
    lines = set(text.splitlines())
    assert "reconciler_last_pass_timestamp_seconds 1800000000.123" in lines
    assert "reconciler_pass_duration_seconds 0.012346" in lines
    assert "reconciler_jobs_running 2" in lines  # counts stay integers
    assert f"{PUBLISHED_X86} 1" in lines
    big = MetricsFormatter().format(plan(), replace(FIGURES, apks_opened=123_456_789_012))
    assert "reconciler_apks_opened_total 123456789012" in big.splitlines()


def test_every_state_of_every_repository_is_counted_even_at_zero() -> None:
    got = samples(MetricsFormatter().format(plan(), FIGURES))
    counted = [k for k in got if k.startswith("reconciler_packages{")]
    assert len(counted) == 2 * len(PkgState)


def test_an_empty_repository_counts_as_published() -> None:
    got = samples(MetricsFormatter().format(plan(phases={X86: RepoPhase.EMPTY}), FIGURES))
    assert got['reconciler_repository_published{branch="main",splitrepo="main",arch="x86_64"}'] == 1


def test_label_values_are_escaped() -> None:
    odd = RepoKey('ma"in\\x', "", "x86_64")
    text = MetricsFormatter().format(plan(phases={odd: RepoPhase.PUBLISHED}), FIGURES)
    assert 'branch="ma\\"in\\\\x"' in text
    for line in text.splitlines():
        assert line.startswith("# ") or SAMPLE.match(line), line


def test_an_unreachable_job_service_and_an_unwritten_site_show() -> None:
    down = replace(FIGURES, job_service_up=False, site_ok=False)
    got = samples(MetricsFormatter().format(plan(), down))
    assert got["reconciler_job_service_up"] == 0
    assert got["reconciler_site_written_ok"] == 0


def test_the_plan_part_is_formatted_again_only_for_another_plan() -> None:
    formatter, same = MetricsFormatter(), plan(status("a", PkgState.PUBLISHED))
    first = formatter.format(same, FIGURES)
    assert formatter.format(same, FIGURES) == first
    other = formatter.format(plan(status("a", PkgState.FAILED)), FIGURES)
    assert other != first
    assert 'state="failed"} 1' in other


def test_images_are_counted_per_branch_arch_and_state_without_device_names() -> None:
    def image(device: str, state: PkgState) -> ImageStatus:
        target = ImageTarget("main", device, "demo", "", "20270101-0000")
        return ImageStatus(target, "aarch64", "edge", state)

    images = (
        image("a", PkgState.FAILED),
        image("b", PkgState.FAILED),
        image("c", PkgState.PUBLISHED),
    )
    text = MetricsFormatter().format(replace(plan(), images=images), FIGURES)
    got = samples(text)
    assert got['reconciler_images{branch="main",arch="aarch64",state="failed"}'] == 2
    assert got['reconciler_images{branch="main",arch="aarch64",state="published"}'] == 1
    assert got['reconciler_images{branch="main",arch="aarch64",state="queued"}'] == 0
    assert "demo" not in text and "device=" not in text
    assert "reconciler_images" not in MetricsFormatter().format(plan(), FIGURES)
