"""Figures, their baselines and targets; the tables printed and the JSON written."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal


@dataclasses.dataclass(frozen=True)
class Target:
    """``value OP limit``: ``>= 1000`` msgs/s, ``<= 0.3`` ms."""

    op: Literal[">=", "<="]
    limit: float
    text: str = ""

    def met(self, value: float) -> bool:
        return value >= self.limit if self.op == ">=" else value <= self.limit

    def describe(self, unit: str) -> str:
        if self.text:
            return self.text
        sign = "≥" if self.op == ">=" else "≤"
        limit = f"{self.limit:,.0f}" if self.limit >= 1000 else f"{self.limit:g}"
        return f"{sign} {limit} {unit}".strip()


@dataclasses.dataclass
class Row:
    """One figure of a scenario, beside the baseline measured in the same run."""

    label: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    target: Target | None = None
    problems: list[str] = dataclasses.field(default_factory=list)
    """Why the figure cannot be trusted (failed deliveries, a sink that counted less)."""
    reference: bool = False
    """A figure for context (a faster client, the C tool): no target."""
    skipped: str | None = None
    """Why this figure was not measured on this machine (PostgreSQL not installed): not
    a failure; no value."""

    @property
    def valid(self) -> bool:
        if self.skipped is not None:
            return not self.problems
        return not self.problems and self.value is not None and math.isfinite(self.value)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.target is None or not self.valid or self.skipped is not None:
            return None
        assert self.value is not None
        return self.target.met(self.value)

    def verdict(self) -> str:
        if self.problems:
            return "INVALID"
        if self.skipped is not None:
            return "skipped"
        if self.target is None:
            return ""
        return "yes" if self.met else "NO"

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_label": self.baseline_label or None,
            "ratio": self.ratio,
            "target": None
            if self.target is None
            else {
                "op": self.target.op,
                "limit": self.target.limit,
                "text": self.target.describe(self.unit),
            },
            "met": self.met,
            "valid": self.valid,
            "problems": list(self.problems),
            "reference": self.reference,
            "skipped": self.skipped,
        }


@dataclasses.dataclass
class Scenario:
    number: int
    title: str
    rows: list[Row] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None
    """The scenario could not run at all (a server did not start, an exception)."""
    seconds: float = 0.0

    @property
    def valid(self) -> bool:
        return self.error is None and all(r.valid for r in self.rows if not r.reference)

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "title": self.title,
            "rows": [r.as_dict() for r in self.rows],
            "notes": list(self.notes),
            "error": self.error,
            "valid": self.valid,
            "seconds": round(self.seconds, 3),
        }


def _number(value: float) -> str:
    """Counts as integers; otherwise 4 significant digits (``69.96 %`` must not read as
    ``70.0 %`` beside a target of 70 that it misses), thousands separated."""
    magnitude = abs(value)
    if float(value).is_integer() and magnitude < 1e9:
        return f"{int(value):,}"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    return f"{value:#.4g}".rstrip(".")


def quantity(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{_number(value)} {unit}".strip()


def table(scenario: Scenario) -> str:
    """The scenario as a fixed-width table, its notes and problems below it."""
    lines = [f"== {scenario.number}. {scenario.title} =="]
    if scenario.error:
        lines.append(f"   NOT RUN: {scenario.error}")
    header = ("figure", "value", "baseline", "ratio", "target", "met")
    cells = [header]
    for row in scenario.rows:
        ratio = row.ratio
        cells.append(
            (
                row.label,
                "skipped" if row.skipped is not None else quantity(row.value, row.unit),
                quantity(row.baseline, row.unit) if row.baseline is not None else "-",
                f"{ratio:.2f}x" if ratio is not None else "-",
                row.target.describe(row.unit) if row.target else "-",
                row.verdict() or "-",
            )
        )
    if scenario.rows:
        widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
        for number, c in enumerate(cells):
            text = "  ".join(
                c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(len(c))
            )
            lines.append("   " + text.rstrip())
            if number == 0:
                lines.append("   " + "-" * len(text))
    baselines = {r.baseline_label for r in scenario.rows if r.baseline_label}
    for label in sorted(baselines):
        lines.append(f"   baseline: {label}")
    skipped: dict[str, list[str]] = {}
    for row in scenario.rows:
        if row.skipped is not None:
            skipped.setdefault(row.skipped, []).append(row.label.strip())
    for reason, labels in skipped.items():
        what = labels[0] if len(labels) == 1 else f"{labels[0]} and {len(labels) - 1} more"
        lines.append(f"   {what}: skipped: {reason}")
    for row in scenario.rows:
        for problem in row.problems:
            lines.append(f"   INVALID {row.label}: {problem}")
    for note in scenario.notes:
        lines.append(f"   note: {note}")
    lines.append(f"   ({scenario.seconds:.1f} s)")
    return "\n".join(lines)


def first_reasons(reasons: Iterable[str], limit: int = 3) -> str:
    """``3 x connection refused; 1 x timed out``: the most common reasons first."""
    counts = Counter(reasons)
    return "; ".join(f"{n} x {reason}" for reason, n in counts.most_common(limit))
