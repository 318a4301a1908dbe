"""Cross-device comparison: baselines, references and pytest-benchmark files side by side.

The data is a pandas DataFrame in long form (one row per device x benchmark x metric), so the
Python API, the terminal table, Markdown, CSV, HTML and charts are views of one table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.report import peers
from pytest_gpubench.report.table import format_table
from pytest_gpubench.results.baseline import Baseline

LONG_COLUMNS = [
    "device",
    "kind",
    "key",
    "metric",
    "value",
    "unit",
    "higher_is_better",
    "status",
    "source",
]
#: Columns ``compare_files(paths, detail=True)`` adds for the charts and the HTML page: the
#: stored 95% interval (metric spread ci95_low/ci95_high), the file, the device's hardware,
#: the entry's date and conditions, and for a missing cell the reason (a skip record's).
DETAIL_COLUMNS = ["ci95_low", "ci95_high", "file", "hardware", "date", "conditions", "note"]


def _labels(baselines: Sequence[Baseline]) -> list[str]:
    """Device labels, made unique with the file name when two files share a profile."""
    labels = [b.label for b in baselines]
    return [
        f"{label} [{b.path.name}]" if labels.count(label) > 1 else label
        for label, b in zip(labels, baselines, strict=True)
    ]


def _hardware(b: Baseline) -> str:
    parts = [b.gpu]
    if b.device.get("driver"):
        parts.append(f"driver {b.device['driver']}")
    if b.device.get("cuda"):
        parts.append(f"CUDA {b.device['cuda']}")
    return ", ".join(p for p in parts if p)


def _conditions(conditions: dict) -> str:
    return "; ".join(f"{k}: {v}" for k, v in conditions.items() if v not in (None, ""))


def comparison_frame(baselines: Sequence[Baseline], detail: bool = False) -> pd.DataFrame:
    """Long table; a benchmark one device ran and another skipped gets a status row there.
    ``detail`` adds ``DETAIL_COLUMNS`` (intervals, file, hardware...) after ``LONG_COLUMNS``."""
    rows = []
    labels = _labels(baselines)
    all_pairs = {(e.row_key, m) for b in baselines for e in b.entries.values() for m in e.metrics}
    for label, b in zip(labels, baselines, strict=True):
        have = {(e.row_key, m) for e in b.entries.values() for m in e.metrics}
        for entry in b.entries.values():
            key = entry.row_key
            for name, metric in entry.metrics.items():
                rows.append(
                    {
                        "device": label,
                        "kind": b.kind,
                        "key": key,
                        "metric": name,
                        "value": metric.value,
                        "unit": metric.unit,
                        "higher_is_better": metric.higher_is_better,
                        "status": b.kind,
                        "source": entry.source or str(b.path),
                        "ci95_low": metric.spread.get("ci95_low", math.nan),
                        "ci95_high": metric.spread.get("ci95_high", math.nan),
                        "file": str(b.path),
                        "hardware": _hardware(b),
                        "date": entry.date,
                        "conditions": _conditions(entry.conditions),
                        "note": "",
                    }
                )
        for key, metric in sorted(all_pairs):
            if (key, metric) in have:
                continue
            skip = b.skipped.get(key)
            status = "not run"
            if skip is not None:
                reason = str(skip.get("reason", ""))
                fit = skip.get("did_not_fit") or reason.lower().startswith("did not fit")
                status = "did not fit" if fit else "skipped"
            rows.append(
                {
                    "device": label,
                    "kind": b.kind,
                    "key": key,
                    "metric": metric,
                    "value": math.nan,
                    "unit": "",
                    "higher_is_better": None,
                    "status": status,
                    "source": str((skip or {}).get("source", b.path)),
                    "ci95_low": math.nan,
                    "ci95_high": math.nan,
                    "file": str(b.path),
                    "hardware": _hardware(b),
                    "date": "",
                    "conditions": "",
                    "note": str((skip or {}).get("reason", "")),
                }
            )
    return pd.DataFrame(rows, columns=LONG_COLUMNS + DETAIL_COLUMNS if detail else LONG_COLUMNS)


def compare_files(
    paths: Iterable[str | Path],
    matches: Mapping[str, str] | None = None,
    detail: bool = False,
) -> pd.DataFrame:
    """The Python API: ``compare_files(["baselines/h100.json", ...])`` -> long DataFrame.

    Peers' result files (vllm bench serve, llama-bench, GuideLLM) are read too
    (``report/peers.py``); ``matches`` maps a peer entry's key (or a glob) to our test id;
    ``detail=True`` adds the ``DETAIL_COLUMNS`` the charts and the HTML page use."""
    paths = list(paths)
    if len(paths) < 1:
        raise GpubenchError("compare needs at least one file")
    baselines = [peers.load(p) for p in paths]
    peers.apply_matches(baselines, matches or {})
    return comparison_frame(baselines, detail=detail)


def shared_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the (benchmark, metric) rows that at least two devices say something about: a
    value, or a 'did not fit' / 'skipped' record. One device's extra metrics are noise in a
    comparison (``--all`` shows them)."""
    informative = frame["value"].notna() | frame["status"].isin(["did not fit", "skipped"])
    counts = frame[informative].groupby(["key", "metric"]).size()
    keep = set(counts[counts >= 2].index)
    mask = [(k, m) in keep for k, m in zip(frame["key"], frame["metric"], strict=True)]
    return frame[mask]


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


def _fmt(value: float) -> str:
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
            header.append(f"{device} vs {devices[0]}")
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
                cell, value = _fmt(r.value), r.value
            row.append(cell)
            if i:
                row.append(ratio_text(value, first_value, hib, unit))
        rows.append(row)
    return header, rows


def to_text(frame: pd.DataFrame) -> list[str]:
    header, rows = wide_rows(frame)
    return format_table(header, rows)


def to_markdown(frame: pd.DataFrame) -> str:
    header, rows = wide_rows(frame)

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [line(header), "|" + "|".join("---" for _ in header) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out) + "\n"


def to_html(
    frame: pd.DataFrame, title: str = "pytest-gpubench comparison", base: Path | None = None
) -> str:
    """One self-contained page: sortable, filterable table with intervals and source links,
    and the charts inline (see ``pytest_gpubench.report.page``)."""
    from pytest_gpubench.report.page import render

    return render(frame, title, base)


def to_png(frame: pd.DataFrame, folder: Path) -> list[Path]:
    """One horizontal bar chart per metric (see ``pytest_gpubench.report.charts``)."""
    from pytest_gpubench.report.charts import write_charts

    return write_charts(frame, folder, ("png",))


def to_svg(frame: pd.DataFrame, folder: Path) -> list[Path]:
    """The same charts as SVG (labels and bars carry the full id and value as tooltips)."""
    from pytest_gpubench.report.charts import write_charts

    return write_charts(frame, folder, ("svg",))
