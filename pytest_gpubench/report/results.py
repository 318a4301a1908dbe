"""The terminal results table: each benchmark's headline metrics with their 95% interval."""

from __future__ import annotations

from collections.abc import Iterable

from pytest_gpubench.report.table import format_table
from pytest_gpubench.results.record import Recorded


def _number(value: float) -> str:
    if value == 0 or 0.01 <= abs(value) < 1e6:
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.1f}"
    return f"{value:.3g}"


def results_lines(recorded: Iterable[Recorded]) -> list[str]:
    rows = []
    notes: list[str] = []
    bounds: list[str] = []
    recorded = list(recorded)
    judged = any(entry.bound is not None for entry in recorded)
    pinned = any(entry.gpu for entry in recorded)  # --gpubench-gpu-per-worker
    doubted = [e for e in recorded if e.invalid]  # metrics/validity.py
    for entry in recorded:
        notes += [n for n in entry.notes if n not in notes]
        if entry.bound is not None and entry.bound.bound != "gpu":
            bounds.append(entry.bound.warning(entry.nodeid))
        for i, name in enumerate(entry.headline):
            m = entry.metrics[name]
            low, high = m.spread.get("ci95_low"), m.spread.get("ci95_high")
            ci = (
                f"{_number(low)} .. {_number(high)}"
                if low is not None and high is not None
                else "-"
            )
            rounds = m.spread.get("rounds", m.spread.get("n"))
            rows.append(
                (
                    entry.nodeid,
                    name,
                    _number(m.value),
                    m.unit,
                    ci,
                    int(rounds) if rounds is not None else "-",
                    "higher" if m.higher_is_better else "lower",
                )
                + ((entry.bound.bound if entry.bound and i == 0 else "",) if judged else ())
                + ((entry.gpu if i == 0 else "",) if pinned else ())
                + (("invalid" if entry.invalid and i == 0 else "",) if doubted else ())
            )
    if not rows:
        return []
    header = ("test", "metric", "value", "unit", "95% CI", "n", "better")
    header += ("bound",) if judged else ()
    header += ("gpu",) if pinned else ()
    table = format_table(header + (("valid",) if doubted else ()), rows)
    invalid = [f"invalid: {e.nodeid}: {e.invalid}" for e in doubted]
    return table + [f"note: {n}" for n in notes] + [f"bound: {b}" for b in bounds] + invalid
