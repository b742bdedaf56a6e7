"""Prometheus text exposition of one pass, for node_exporter's textfile collector.

Pure formatting; labels stay low-cardinality (branch, split repo, arch, state,
phase), never package names, devices or UIs. The loop writes the text every pass: it is the
daemon's heartbeat. Values are written in full (a count as an integer, anything
else as Python's shortest exact repr), never rounded to a few digits: a unix time
needs thirteen to keep its milliseconds. The packages per repository and state
are counted again only where a new plan's statuses differ from the last one's
(site.state.status_diff): hundreds of thousands at Alpine's size.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from reconciler.model.names import RepoKey
from reconciler.model.progress import PkgState, RepoPhase
from reconciler.plan.planner import Plan
from reconciler.site.model import NO_COUNTS, STATE_INDEX, STATES, RepoCounts, repo_counts
from reconciler.site.state import status_diff


@dataclass(frozen=True, slots=True)
class PassFigures:
    now: float
    duration_seconds: float
    live_jobs: int
    job_service_up: bool
    actions: int
    failed_actions: int
    site_files_written: int
    apks_opened: int
    site_ok: bool = True


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _metric(
    lines: list[str], name: str, kind: str, help_text: str, samples: list[tuple[str, float]]
) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    lines.extend(f"{name}{labels} {_value(value)}" for labels, value in samples)


def _value(value: float) -> str:
    """A sample value exactly: integers as such, other numbers as repr(float)
    (Prometheus spells the special values NaN, +Inf and -Inf)."""
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        return "NaN" if math.isnan(number) else ("+Inf" if number > 0 else "-Inf")
    if number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(number)


class MetricsFormatter:
    """The whole exposition of one pass; the plan's part is formatted again only
    when the plan is another object."""

    def __init__(self) -> None:
        self._plan: Plan | None = None
        self._text = ""
        self._counts: dict[RepoKey, list[int]] = {}  # of the last plan's statuses

    def format(self, plan: Plan, figures: PassFigures) -> str:
        if plan is not self._plan:
            old = self._plan.packages if self._plan is not None else ()
            counts = self._counts
            for before, after in status_diff(old, plan.packages).changes:
                for status, step in ((before, -1), (after, 1)):
                    if status is not None:
                        numbers = counts.get(status.repo)
                        if numbers is None:
                            numbers = counts[status.repo] = [0] * len(STATES)
                        numbers[STATE_INDEX[status.state]] += step
            self._plan, self._text = plan, plan_metrics(plan, counts)
        return self._text + pass_metrics(figures)


def plan_metrics(plan: Plan, counts: RepoCounts | None = None) -> str:
    """Packages per repository and state (`counts`, else counted here), and which
    repositories are published."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        _metric(lines, name, kind, help_text, samples)

    if counts is None:
        counts = repo_counts(plan.packages)
    package_samples = []
    for repo in plan.repos:
        numbers = counts.get(repo.repo, NO_COUNTS)
        for index, state in enumerate(STATES):
            package_samples.append(
                (
                    _labels(
                        branch=repo.repo.branch,
                        splitrepo=repo.repo.splitrepo or "main",
                        arch=repo.repo.arch,
                        state=state.value,
                    ),
                    float(numbers[index]),
                )
            )
    metric("reconciler_packages", "gauge", "Packages per repository and state.", package_samples)
    metric(
        "reconciler_repository_published",
        "gauge",
        "1 when the repository's final index holds exactly the desired packages.",
        [
            (
                _labels(
                    branch=r.repo.branch, splitrepo=r.repo.splitrepo or "main", arch=r.repo.arch
                ),
                1.0 if r.phase in (RepoPhase.PUBLISHED, RepoPhase.EMPTY) else 0.0,
            )
            for r in plan.repos
        ],
    )
    if plan.images:
        images = Counter((i.target.branch, i.arch, i.state) for i in plan.images)
        where = sorted({(branch, arch) for branch, arch, _ in images})
        metric(
            "reconciler_images",
            "gauge",
            "Desired device images per branch, arch and state.",
            [
                (
                    _labels(branch=branch, arch=arch, state=state.value),
                    float(images[(branch, arch, state)]),
                )
                for branch, arch in where
                for state in PkgState
            ],
        )
    return "\n".join(lines) + "\n"


def pass_metrics(figures: PassFigures) -> str:
    """Figures of the pass itself: jobs, actions, duration, the heartbeat's time."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        _metric(lines, name, kind, help_text, samples)

    metric("reconciler_jobs_running", "gauge", "Jobs running now.", [("", figures.live_jobs)])
    metric(
        "reconciler_job_service_up",
        "gauge",
        "1 when the last pass could list the job service's jobs.",
        [("", 1.0 if figures.job_service_up else 0.0)],
    )
    metric(
        "reconciler_pass_actions", "gauge", "Actions the last pass took.", [("", figures.actions)]
    )
    metric(
        "reconciler_pass_failed_actions",
        "gauge",
        "Actions of the last pass that failed.",
        [("", figures.failed_actions)],
    )
    metric(
        "reconciler_pass_duration_seconds",
        "gauge",
        "How long the last pass took.",
        [("", round(figures.duration_seconds, 6))],
    )
    metric(
        "reconciler_last_pass_timestamp_seconds",
        "gauge",
        "When the last pass ended (unix time).",
        [("", round(figures.now, 3))],
    )
    metric(
        "reconciler_site_written_ok",
        "gauge",
        "0 when the last pass could not write the status site (a full disk, say).",
        [("", 1.0 if figures.site_ok else 0.0)],
    )
    metric(
        "reconciler_site_files_written_total",
        "counter",
        "Site files written since the daemon started.",
        [("", figures.site_files_written)],
    )
    metric(
        "reconciler_apks_opened_total",
        "counter",
        "apk files read since the daemon started.",
        [("", figures.apks_opened)],
    )
    return "\n".join(lines) + "\n"
