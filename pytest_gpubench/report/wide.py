"""The wide comparison table: one row per benchmark and metric, per device its value and its
ratio to the first device. The terminal, Markdown and HTML views all lay it out from here."""

from __future__ import annotations

import math

import pandas as pd


def ratio_text(value: float, first: float, higher_is_better: bool, unit: str) -> str:
    """'4.2x faster' / '3.5x slower' against the first device, direction-aware."""
    if not (math.isfinite(value) and math.isfinite(first)) or value <= 0 or first <= 0:
        return ""
    better = value / first if higher_is_better else first / value
    if abs(better - 1) < 0.005:
        return "same"
    speed = unit.endswith("/s") or unit in ("s", "ms", "us", "s/image") or "/min" in unit
    up, down = ("faster", "slower") if speed else ("better", "worse")
    return f"{better:.2f}x {up}" if better > 1 else f"{1 / better:.2f}x {down}"


def fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def wide_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows: key, metric, unit, then per device its value and ratio to the first."""
    devices = list(dict.fromkeys(frame["device"]))
    header = ["benchmark", "metric", "unit"]
    for i, device in enumerate(devices):
        header.append(device)
        if i:
            # "spark compared with h100: 2.60x slower" says which one is slower
            header.append(f"{device} compared with {devices[0]}")
    rows = []
    for (key, metric), group in frame.groupby(["key", "metric"], sort=True):
        by_device = {r.device: r for r in group.itertuples()}
        measured = [r for r in group.itertuples() if isinstance(r.unit, str) and r.unit]
        unit = measured[0].unit if measured else ""
        hib = bool(measured[0].higher_is_better) if measured else True
        first = by_device.get(devices[0])
        first_value = first.value if first is not None else math.nan
        row = [key, metric, unit]
        for i, device in enumerate(devices):
            r = by_device.get(device)
            if r is None:
                cell, value = "not run", math.nan
            elif math.isnan(r.value):
                cell, value = r.status, math.nan
            else:
                cell, value = fmt(r.value), r.value
            row.append(cell)
            if i:
                row.append(ratio_text(value, first_value, hib, unit))
        rows.append(row)
    return header, rows
