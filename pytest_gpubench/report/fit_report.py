"""The fit table (``--gpubench-plan``) and the end-of-run 'did not fit' section."""

from __future__ import annotations

from collections.abc import Iterable

from pytest_gpubench.devices.select import SelectedDevice, describe
from pytest_gpubench.report.table import format_table
from pytest_gpubench.selection.fit import Verdict


def did_not_fit_lines(verdicts: Iterable[Verdict]) -> list[str]:
    misses = [v for v in verdicts if v.did_not_fit]
    if not misses:
        return []
    rows = [
        (v.nodeid, f"{v.need.gib:.1f} GiB", f"{v.available_gib:.1f} GiB", v.device)  # type: ignore[union-attr]
        for v in misses
    ]
    headers: tuple[str, ...] = ("test", "needs", "available", "device")
    if any(v.need and v.need.breakdown for v in misses):  # model markers: say where it goes
        headers += ("estimate",)
        rows = [(*row, v.need.breakdown or "-") for row, v in zip(rows, misses, strict=True)]  # type: ignore[union-attr]
    return format_table(headers, rows)


def _verdict_cell(v: Verdict) -> str:
    if not v.runs:
        return "skip: " + v.reason
    if v.need and v.need.breakdown:
        return f"run ({v.need.breakdown})"
    return "run"


def plan_lines(selected: SelectedDevice, verdicts: Iterable[Verdict]) -> list[str]:
    verdicts = list(verdicts)
    runs = sum(v.runs for v in verdicts)
    rows = [
        (v.nodeid, f"{v.need.gib:.1f} GiB" if v.need else "-", _verdict_cell(v)) for v in verdicts
    ]
    header = [
        f"plan for {selected.name} ({describe(selected.profile)}): "
        f"{runs} of {len(verdicts)} benchmarks would run",
    ]
    return header + format_table(("test", "needs", "verdict"), rows)
