"""Leave-one-out validation: predict every stored figure from the others, and keep every error.

For each decode and prefill figure the files give (a device, a model, a quant, an engine), the
prediction is made each way ``advise`` could make it if that figure were missing, from the same
engine and quantization family: from *other models on the same device*, from *the same model on
other devices* (the H100 from the H200 and back), and from *every other device* (the figure's
device left out entirely). The error ranges per quantity, engine and method are the bands
``advise`` prints; the table is docs/reference/prediction-error.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_gpubench.advise.predict import (
    METHODS,
    SAME_DEVICE,
    Band,
    Point,
    calibration,
    ceiling,
    methods,
)
from pytest_gpubench.advise.sources import Library
from pytest_gpubench.devices.profile import ProfileSet

QUANTITIES = ("decode", "prefill")
MIN_ROWS = 3  # validation rows behind an error band


@dataclass(frozen=True)
class Row:
    point: Point
    method: str
    predicted: float
    used: int  # calibration points behind the prediction

    @property
    def error(self) -> float:
        return self.predicted / self.point.figure.value - 1


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def rows(lib: Library, profiles: ProfileSet) -> list[Row]:
    out: list[Row] = []
    groups: dict[tuple[str, str, str], list[Point]] = {}
    for quantity in QUANTITIES:
        for f in lib.find(quantity):
            group = (quantity, f.engine, f.quant)
            if group not in groups:
                groups[group] = calibration(lib, quantity, f.engine, f.quant, profiles)
    for (quantity, _, _), points in groups.items():
        for p in points:
            f = p.figure
            if any(r.point.figure == f for r in out):
                continue
            profile = profiles.get(f.device)
            top = ceiling(quantity, f.model, f.quant, profile, f.context, p.relative)
            for method, used in methods(points, f.device, f.model):
                if used and (method == SAME_DEVICE or not p.relative):
                    eff = _median([q.efficiency for q in used])
                    out.append(Row(p, method, eff * top, len(used)))
    return out


def bands(found: list[Row]) -> dict[tuple[str, str, str], Band]:
    """Per quantity, engine and method, the lowest and highest error of the rows and the median
    absolute error (three rows at least: two devices predicting each other say little).
    llama.cpp's band is not widened by an eager transformers run's; the median ranks the
    methods advise tries."""
    errs: dict[tuple[str, str, str], list[float]] = {}
    for r in found:
        f = r.point.figure
        errs.setdefault((f.quantity, f.engine, r.method), []).append(r.error)
    return {
        k: (min(v), max(v), _median([abs(e) for e in v]))
        for k, v in errs.items()
        if len(v) >= MIN_ROWS
    }


def markdown(found: list[Row]) -> list[str]:
    """The docs table: every row, then each method's error range (the bands advise prints)."""
    lines = [
        "| quantity | device | model | quant | engine | stored tok/s | from | points | "
        "predicted tok/s | error |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = sorted(
        found,
        key=lambda r: (
            r.point.figure.quantity,
            r.point.figure.engine,
            r.point.figure.device,
            r.point.figure.model,
            METHODS.index(r.method),
        ),
    )
    for r in order:
        f = r.point.figure
        lines.append(
            f"| {f.quantity} | {f.device} | {f.model.split('/')[-1]} | {f.quant} | {f.engine} | "
            f"{f.value:.1f} ({f.kind}) | {r.method} | {r.used} | {r.predicted:.1f} | "
            f"{r.error:+.0%} |"
        )
    lines += [
        "",
        "| quantity | engine | from | rows | lowest error | highest error | median abs. error |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str, str], list[float]] = {}
    for r in found:
        f = r.point.figure
        groups.setdefault((f.quantity, f.engine, r.method), []).append(r.error)
    for (quantity, engine, method), errs in sorted(groups.items()):
        mae = _median([abs(e) for e in errs])
        lines.append(
            f"| {quantity} | {engine} | {method} | {len(errs)} | {min(errs):+.0%} | "
            f"{max(errs):+.0%} | {mae:.0%} |"
        )
    return lines
