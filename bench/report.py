"""The bench's figures and how they are printed: one size's table, or two sizes side by side.

A `Figure` is one measured quantity (wall time or memory) with its samples, the
CPU time and garbage-collector time of each run, a target and a note. The
children of `bench/run.py --alpine` (one process per size) hand their figures to
the parent as JSON; the parent prints one table with both sizes, the growth from
the smaller to the larger and the verdict against the target at the larger size.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Figure:
    label: str  # the same at every size: rows of two sizes are matched by it
    unit: str  # "ms" or "MB"
    target: float | None  # in `unit`; None: informational
    samples: list[float] = field(default_factory=list)  # wall, in `unit`
    cpu: list[float] = field(default_factory=list)  # CPU ms of this process
    gc: list[float] = field(default_factory=list)  # ms in the garbage collector
    note: str = ""
    at_most: bool = False  # the target is met at it too ("<=", not "<")
    size_free: bool = False  # does not depend on the distribution's size: no growth
    growth_limit: float | None = None  # the larger size may cost at most this many times
    again: Callable[[], object] | None = None  # one more run, for --profile
    setup: Callable[[], object] | None = None  # called before `again`, not profiled
    entry: str = ""  # function whose direct callees the profile breaks down

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.median <= self.target if self.at_most else self.median < self.target

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "unit": self.unit,
            "target": self.target,
            "samples": self.samples,
            "cpu": self.cpu,
            "gc": self.gc,
            "note": self.note,
            "at_most": self.at_most,
            "size_free": self.size_free,
            "growth_limit": self.growth_limit,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Figure:
        def floats(name: str) -> list[float]:
            values = data[name]
            assert isinstance(values, list)
            return [float(v) for v in values]

        target, limit = data["target"], data["growth_limit"]
        assert target is None or isinstance(target, int | float)
        assert limit is None or isinstance(limit, int | float)
        return cls(
            label=str(data["label"]),
            unit=str(data["unit"]),
            target=target,
            samples=floats("samples"),
            cpu=floats("cpu"),
            gc=floats("gc"),
            note=str(data["note"]),
            at_most=bool(data["at_most"]),
            size_free=bool(data["size_free"]),
            growth_limit=limit,
        )


def fmt(value: float, unit: str) -> str:
    if unit == "ms" and value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"


def target_text(figure: Figure) -> str:
    if figure.target is None:
        return "-"
    return ("<= " if figure.at_most else "< ") + fmt(figure.target, figure.unit)


RESULT = {None: "", True: "met", False: "MISSED"}


def table(figures: list[Figure]) -> list[str]:
    """One size: median, min, CPU and GC medians, target and result of each figure."""
    lines = [
        f"{'figure':52} {'median':>9} {'min':>9} {'CPU med':>9} {'GC med':>8} {'target':>10}"
        "  result",
        "-" * 106,
    ]
    for f in figures:
        cpu = fmt(statistics.median(f.cpu), "ms") if f.cpu else "-"
        collector = fmt(statistics.median(f.gc), "ms") if f.gc else "-"
        lines.append(
            f"{f.label:52} {fmt(f.median, f.unit):>9} {fmt(min(f.samples), f.unit):>9}"
            f" {cpu:>9} {collector:>8} {target_text(f):>10}  {RESULT[f.met]}"
        )
        if f.note:
            lines.append(f"{'':4}{f.note}")
    return lines


def runs_text(f: Figure) -> str:
    """How a figure was taken at one size: runs, min, CPU and GC medians."""
    parts = [f"{len(f.samples)} run{'s' if len(f.samples) > 1 else ''}"]
    if len(f.samples) > 1:
        parts.append(f"min {fmt(min(f.samples), f.unit)}")
    if f.cpu:
        parts.append(f"CPU {fmt(statistics.median(f.cpu), 'ms')}")
    if f.gc:
        parts.append(f"GC {fmt(statistics.median(f.gc), 'ms')}")
    return ", ".join(parts)


def growth(small: Figure, large: Figure) -> float | None:
    """Larger / smaller; None for a size-free figure or one too small to divide by."""
    if small.size_free or small.median < 0.05:
        return None
    return large.median / small.median


def two_sizes(names: tuple[str, str], small: list[Figure], large: list[Figure]) -> list[str]:
    """Both sizes in one table: each figure's medians, the growth (larger / smaller),
    the larger size's CPU, the target and whether the larger size meets it; each
    size's note below. A figure with a growth limit gets a row for that check."""
    by_label = {f.label: f for f in small}
    width = 56
    lines = [
        f"{'figure':{width}} {names[0]:>9} {names[1]:>9} {'growth':>7} {'CPU ' + names[1]:>11}"
        f" {'target':>10}  result",
        "-" * (width + 63),
    ]
    for f in large:
        s = by_label.get(f.label)
        g = growth(s, f) if s is not None else None
        grown = "-" if g is None else f"{g:.1f}x"
        cpu = fmt(statistics.median(f.cpu), "ms") if f.cpu else "-"
        # A figure measured once, whatever the size, shows in the last column only.
        first = "-" if f.size_free or s is None else fmt(s.median, s.unit)
        lines.append(
            f"{f.label:{width}} {first:>9} {fmt(f.median, f.unit):>9} {grown:>7} {cpu:>11}"
            f" {target_text(f):>10}  {RESULT[f.met]}"
        )
        if f.growth_limit is not None:
            check = "n/a" if g is None else ("met" if g <= f.growth_limit else "MISSED")
            label = f"  ... its growth ({names[1]} / {names[0]})"
            lines.append(
                f"{label:{width}} {'':>9} {'':>9} {grown:>7} {'':>11}"
                f" {'<= ' + format(f.growth_limit, 'g') + 'x':>10}  {check}"
            )
        if f.size_free:
            lines.append(
                f"{'':4}does not depend on the size, measured once ({runs_text(f)}): {f.note}"
            )
            continue
        if s is not None:
            lines.append(f"{'':4}{names[0]}: {runs_text(s)}" + (f"; {s.note}" if s.note else ""))
        lines.append(f"{'':4}{names[1]}: {runs_text(f)}" + (f"; {f.note}" if f.note else ""))
    return lines


def missed(figures: list[Figure], small: list[Figure] | None = None) -> list[str]:
    """The labels of the figures that miss their target (or growth limit)."""
    out = [f.label for f in figures if f.met is False]
    if small is not None:
        by_label = {f.label: f for f in small}
        for f in figures:
            s = by_label.get(f.label)
            g = growth(s, f) if s is not None else None
            if f.growth_limit is not None and g is not None and g > f.growth_limit:
                out.append(f"{f.label} (growth {g:.1f}x)")
    return out
