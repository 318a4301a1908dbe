"""Cross-device comparison: baselines, references and pytest-benchmark files side by side.

The data is a pandas DataFrame in long form (one row per device x benchmark x metric), so the
Python API, the terminal table, Markdown, CSV, HTML and charts are views of one table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.report import peers
from pytest_gpubench.report.table import format_table
from pytest_gpubench.report.wide import ratio_text, wide_rows
from pytest_gpubench.results.baseline import Baseline

__all__ = [
    "LONG_COLUMNS",
    "compare_files",
    "comparison_frame",
    "ratio_text",
    "shared_rows",
    "to_html",
    "to_markdown",
    "to_png",
    "to_svg",
    "to_text",
    "wide_rows",
]

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
    frame: pd.DataFrame,
    title: str = "pytest-gpubench comparison",
    base: Path | None = None,
    pareto: Sequence[Any] | None = None,
) -> str:
    """One self-contained page: sortable, filterable table with intervals and source links,
    and the charts inline (see ``pytest_gpubench.report.page``); ``pareto`` curves add the
    Pareto frontier section."""
    from pytest_gpubench.report.page import render

    return render(frame, title, base, pareto=pareto)


def to_png(frame: pd.DataFrame, folder: Path) -> list[Path]:
    """One horizontal bar chart per metric (see ``pytest_gpubench.report.charts``)."""
    from pytest_gpubench.report.charts import write_charts

    return write_charts(frame, folder, ("png",))


def to_svg(frame: pd.DataFrame, folder: Path) -> list[Path]:
    """The same charts as SVG (labels and bars carry the full id and value as tooltips)."""
    from pytest_gpubench.report.charts import write_charts

    return write_charts(frame, folder, ("svg",))
