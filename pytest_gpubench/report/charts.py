"""Comparison charts: one horizontal grouped bar chart per metric, sized to its content.

Each benchmark is a row group with one bar per device (colours follow the file order, the same
in every chart), error bars where the result stores its 95% interval (``ci95_low`` /
``ci95_high`` in the metric's spread), and an explicit mark where a device has no value: "did
not fit" (a skip record with ``did_not_fit``), "skipped", or "not run". Test ids lose the
prefix they all share (named in the subtitle); a label still too long is wrapped at a ``/`` or
``::``, or else shortened in the middle and listed in full under the chart; in SVG every label
and bar carries the full id and value as a tooltip.

The layout is computed in inches from the measured text: the height grows with the number of
benchmarks and devices, the width with the longest label; the title, legend and notes sit
outside the axes, so nothing overlaps and nothing is cut.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import BytesIO, StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

import pandas as pd

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.report.labels import (  # re-exported: their import path stays
    LABEL_LIMIT as LABEL_LIMIT,
)
from pytest_gpubench.report.labels import common_prefix as common_prefix
from pytest_gpubench.report.labels import short_labels

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

FORMATS = ("png", "svg")
DPI = 100
PLOT_WIDTH_IN = 6.5
BAR_IN = 0.2  # one device's bar
GAP_IN = 0.16  # between benchmarks
LINE_IN = 0.17  # one line of tick-label text (9 pt)
NOTE_CHARS = 150  # a note under the chart wraps at this many characters
STATUSES = ("did not fit", "skipped", "not run")
STATUS_TEXT = {"did not fit": "✕ did not fit", "skipped": "– skipped", "not run": "– not run"}
STATUS_COLOR = {"did not fit": "#b42318", "skipped": "#666666", "not run": "#888888"}
# matplotlib's tab10, in file order; a device keeps its colour in every chart
COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


@dataclass
class Cell:
    value: float = math.nan
    low: float = math.nan
    high: float = math.nan
    status: str = "not run"

    @property
    def measured(self) -> bool:
        return math.isfinite(self.value)

    @property
    def interval(self) -> bool:
        return self.measured and math.isfinite(self.low) and math.isfinite(self.high)


@dataclass
class MetricChart:
    """What one chart shows: the benchmarks (rows), the devices (bars) and each cell."""

    metric: str
    unit: str
    higher_is_better: bool
    keys: list[str]
    devices: list[str]
    colors: dict[str, str]
    cells: dict[tuple[str, str], Cell]
    absent: list[str] = field(default_factory=list)  # devices with nothing for this metric

    def cell(self, key: str, device: str) -> Cell:
        return self.cells.get((key, device), Cell())


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def chart_data(frame: pd.DataFrame) -> list[MetricChart]:
    """One ``MetricChart`` per metric with at least one value; works on the plain long frame
    (no error bars then) and on ``compare_files(..., detail=True)``'s."""
    all_devices = list(dict.fromkeys(frame["device"]))
    colors = {d: COLORS[i % len(COLORS)] for i, d in enumerate(all_devices)}
    has_interval = {"ci95_low", "ci95_high"} <= set(frame.columns)
    charts = []
    for metric, group in frame.groupby("metric", sort=True):
        measured = group[group["value"].notna()]
        if measured.empty:
            continue
        cells: dict[tuple[str, str], Cell] = {}
        for row in group.itertuples():
            cells[(row.key, row.device)] = Cell(
                _number(row.value),
                _number(row.ci95_low) if has_interval else math.nan,
                _number(row.ci95_high) if has_interval else math.nan,
                str(row.status) if not math.isfinite(_number(row.value)) else "",
            )
        keys = sorted(set(group["key"]))
        # a device with no value and no skip record for any of these benchmarks gets no bar
        # slot; the chart names it once ("not run here: ...") instead of a column of marks
        devices = [
            d
            for d in all_devices
            if any(
                (c := cells.get((k, d))) is not None and (c.measured or c.status in STATUSES[:2])
                for k in keys
            )
        ]
        charts.append(
            MetricChart(
                str(metric),
                str(measured["unit"].iloc[0]),
                bool(measured["higher_is_better"].iloc[0]),
                keys,
                devices,
                colors,
                cells,
                [d for d in all_devices if d not in devices],
            )
        )
    return charts


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.4g}"


# --- figures ------------------------------------------------------------------------------------


def _matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise GpubenchError(
            "charts need matplotlib: pip install 'pytest-gpubench[report]'"
        ) from exc
    return Figure


def _inches(artist, renderer) -> tuple[float, float]:
    box = artist.get_window_extent(renderer)
    return box.width / DPI, box.height / DPI


def _draw_bars(
    ax, chart: MetricChart, uid: str, pitch: float, bar: float
) -> tuple[dict[str, str], list, list[float], bool]:
    """One bar per measured (benchmark, device) cell, a status word where none was measured,
    95% interval whiskers. Returns the tooltips, the value labels with the x they start at,
    every bar's right end, and whether any interval was drawn (it then gets a legend entry)."""
    from matplotlib.transforms import blended_transform_factory

    tips: dict[str, str] = {}
    status_at = blended_transform_factory(ax.transAxes, ax.transData)
    value_texts = []
    ends = [0.0]
    any_interval = False
    for d_index, device in enumerate(chart.devices):
        color = chart.colors[device]
        ys, xs, lows, highs = [], [], [], []
        for k_index, key in enumerate(chart.keys):
            cell = chart.cell(key, device)
            y = k_index - 0.5 + GAP_IN / pitch / 2 + bar * (d_index + 0.5)
            if cell.measured:
                patch = ax.barh(y, cell.value, height=bar * 0.92, color=color, zorder=2)[0]
                gid = f"{uid}-bar-{d_index}-{k_index}"
                patch.set_gid(gid)
                tip = f"{device}: {_fmt(cell.value)} {chart.unit}"
                end = cell.value
                if cell.interval:
                    ys.append(y)
                    xs.append(cell.value)
                    lows.append(max(0.0, cell.value - cell.low))
                    highs.append(max(0.0, cell.high - cell.value))
                    end = max(end, cell.high)
                    tip += f" (95% CI {_fmt(cell.low)} – {_fmt(cell.high)})"
                tips[gid] = f"{key}\n{tip}"
                ends.append(end)
                value_texts.append(
                    (ax.text(end, y, " " + _fmt(cell.value), va="center", fontsize=8), end)
                )
            else:
                status = cell.status if cell.status in STATUSES else "not run"
                ax.text(
                    0.004,
                    y,
                    STATUS_TEXT[status],
                    transform=status_at,
                    va="center",
                    fontsize=8,
                    style="italic",
                    color=STATUS_COLOR[status],
                    gid=f"{uid}-status-{d_index}-{k_index}",
                )
        if ys:
            any_interval = True
            ax.errorbar(
                xs,
                ys,
                xerr=[lows, highs],
                fmt="none",
                ecolor="#222222",
                elinewidth=1,
                capsize=3,
                zorder=3,
            )
    return tips, value_texts, ends, any_interval


def _style_axes(ax, chart: MetricChart, labels: list[str], uid: str, tips: dict[str, str]) -> str:
    """Benchmark labels (with their full key as tooltip), grid and x label; returns the
    'higher/lower is better' words the subtitle repeats."""
    ax.set_ylim(len(chart.keys) - 0.5, -0.5)  # first benchmark on top
    ax.set_yticks(range(len(chart.keys)), labels, fontsize=9)
    for k_index, (tick, key) in enumerate(zip(ax.get_yticklabels(), chart.keys, strict=True)):
        tick.set_gid(f"{uid}-key-{k_index}")
        tips[f"{uid}-key-{k_index}"] = key
    ax.tick_params(axis="y", length=0)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="#dddddd", zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    better = "higher is better →" if chart.higher_is_better else "← lower is better"
    ax.set_xlabel(f"{chart.unit}   ({better})", fontsize=9)
    return better


def _note_lines(chart: MetricChart, cut: dict[str, str]) -> list[str]:
    """The footnotes: benchmarks not run here and the full key of each shortened label;
    long notes (a full test id) wrap instead of widening the chart."""
    notes = []
    if chart.absent:
        notes.append("not run here (no value for this metric): " + ", ".join(chart.absent))
    for label, key in cut.items():
        notes.append(f"{label} = {key}")
    return [line for n in notes for line in textwrap.wrap(n, NOTE_CHARS, break_on_hyphens=False)]


def _fitting_legend(fig, handles: list, width: float, renderer):
    """The legend with as many columns as fit the figure's width (one column at least)."""
    legend = None
    for ncol in range(len(handles), 0, -1):
        legend = fig.legend(
            handles=handles,
            loc="upper left",
            ncol=ncol,
            frameon=False,
            fontsize=9,
            handlelength=1.2,
            columnspacing=1.2,
            borderaxespad=0,
            borderpad=0,
        )
        if _inches(legend, renderer)[0] <= max(width, 8.0) - 0.3 or ncol == 1:
            break
        legend.remove()
    assert legend is not None
    return legend


def figure(chart: MetricChart, uid: str = "m0") -> tuple[Figure, dict[str, str]]:
    """The figure for one metric and the SVG tooltips ({gid: text}) of its labels and bars."""
    Figure = _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    prefix, labels, cut = short_labels(chart.keys)
    n_dev = max(1, len(chart.devices))
    lines = max(label.count("\n") + 1 for label in labels)
    pitch = max(n_dev * BAR_IN, lines * LINE_IN) + GAP_IN  # inches per benchmark
    bar = (1 - GAP_IN / pitch) / n_dev  # in data units (1 = one benchmark)

    fig = Figure(figsize=(10, 5), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.3, 0.1, 0.65, 0.8))
    tips, value_texts, ends, any_interval = _draw_bars(ax, chart, uid, pitch, bar)
    better = _style_axes(ax, chart, labels, uid, tips)

    renderer = fig.canvas.get_renderer()
    label_w = max((_inches(t, renderer)[0] for t in ax.get_yticklabels()), default=0.5)
    value_w = max((_inches(t, renderer)[0] for t, _ in value_texts), default=0.0)
    # room right of the longest bar for its value label
    x_max = max(ends) or 1.0
    reserve = min(0.45, (value_w + 0.08) / PLOT_WIDTH_IN)
    ax.set_xlim(0, x_max / (1 - reserve))

    title = fig.text(0, 0, f"{chart.metric} ({chart.unit})", fontsize=12, weight="bold")
    subtitle_bits = [better.replace("→", "").replace("←", "").strip()]
    if prefix:
        subtitle_bits.append(f"benchmarks under {prefix}")
    subtitle = fig.text(0, 0, "; ".join(subtitle_bits), fontsize=9, color="#444444")
    handles = [Patch(facecolor=chart.colors[d], label=d) for d in chart.devices]
    if any_interval:
        handles.append(
            Line2D([], [], color="#222222", marker="|", markersize=8, label="95% interval")
        )
    notes = _note_lines(chart, cut)
    note_texts = [fig.text(0, 0, n, fontsize=8, color="#444444") for n in notes]

    left = label_w + 0.25
    right = 0.3
    width = left + PLOT_WIDTH_IN + right
    legend = _fitting_legend(fig, handles, width, renderer)
    legend_w, legend_h = _inches(legend, renderer)
    text_w = max(
        [_inches(title, renderer)[0], _inches(subtitle, renderer)[0], legend_w]
        + [_inches(t, renderer)[0] for t in note_texts]
    )
    width = max(width, text_w + 0.3)
    top = 0.15 + 0.28 + 0.22 + legend_h + 0.2
    bottom = 0.62 + LINE_IN * len(notes) + (0.08 if notes else 0)
    plot_h = pitch * len(chart.keys)
    height = top + plot_h + bottom
    fig.set_size_inches(width, height)
    ax.set_position((left / width, bottom / height, PLOT_WIDTH_IN / width, plot_h / height))

    def at(x_in: float, y_in_from_top: float) -> tuple[float, float]:
        return x_in / width, 1 - y_in_from_top / height

    edge = 0.15
    title.set_position(at(edge, 0.15))
    title.set_va("top")
    subtitle.set_position(at(edge, 0.15 + 0.28))
    subtitle.set_va("top")
    legend.set_bbox_to_anchor(at(edge, 0.15 + 0.28 + 0.22), transform=fig.transFigure)
    for i, text in enumerate(note_texts):
        text.set_position((edge / width, (bottom - 0.62 - LINE_IN * i) / height))
        text.set_va("top")
    return fig, tips


def figures(frame: pd.DataFrame) -> list[tuple[str, Figure]]:
    """(metric, figure) for every metric in ``frame``, for inspection or your own saving."""
    return [(c.metric, figure(c, f"m{i}")[0]) for i, c in enumerate(chart_data(frame))]


def _svg_with_tips(fig: Figure, tips: dict[str, str]) -> str:
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "pytest-gpubench", "svg.fonttype": "path"}):
        out = StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    for gid, tip in tips.items():
        text = text.replace(
            f"<g id={quoteattr(gid)}>", f"<g id={quoteattr(gid)}><title>{escape(tip)}</title>", 1
        )
    return text


def svg_documents(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(metric, SVG markup without the XML prolog) per chart, for embedding in a page."""
    out = []
    for i, chart in enumerate(chart_data(frame)):
        uid = f"m{i}"
        fig, tips = figure(chart, uid)
        text = _svg_with_tips(fig, tips)
        text = text[text.index("<svg") :]
        text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
        # ids unique across the page: every chart's own ids get its prefix
        text = re.sub(r'\bid="(?!m\d+-)([^"]+)"', rf'id="{uid}_\1"', text)
        text = re.sub(r"url\(#(?!m\d+-)([^)]+)\)", rf"url(#{uid}_\1)", text)
        text = re.sub(r'xlink:href="#(?!m\d+-)([^"]+)"', rf'xlink:href="#{uid}_\1"', text)
        out.append((chart.metric, text))
    return out


def _safe_name(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", metric)


def write_charts(
    frame: pd.DataFrame, folder: Path, formats: Sequence[str] = ("png",)
) -> list[Path]:
    """Write ``<metric>.<format>`` per metric into ``folder``; returns the paths written."""
    from pytest_gpubench.results.atomic import write_error, write_or_explain

    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise GpubenchError(f"chart format {bad[0]!r}: use one of {', '.join(FORMATS)}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(folder, exc) from None
    written = []
    for i, chart in enumerate(chart_data(frame)):
        fig, tips = figure(chart, f"m{i}")
        for fmt in formats:
            path = folder / f"{_safe_name(chart.metric)}.{fmt}"
            if fmt == "svg":
                write_or_explain(path, _svg_with_tips(fig, tips))
            else:
                buffer = BytesIO()
                fig.savefig(buffer, format="png", dpi=DPI)
                write_or_explain(path, buffer.getvalue())
            written.append(path)
    return written


# --- Pareto frontiers (report/pareto.py) -----------------------------------------------------


def pareto_figure(curves: Sequence[Any], title: str = "") -> Figure:
    """Tokens/s per user (x) against tokens/s per GPU (y): every device's measured points
    (faint), its frontier (a line through them), its capacity (a star, "cap N users"), and the
    SLO's TPOT limit as the vertical line 1000 / tpot_ms (the frontier right of it is usable)."""
    from pytest_gpubench.report.pareto import grid_lower_bound, tpot_line

    Figure = _matplotlib()
    fig = Figure(figsize=(8.0, 5.6), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    for i, curve in enumerate(curves):
        color = COLORS[i % len(COLORS)]
        xs = [p.per_user for p in curve.points]
        ys = [p.per_gpu for p in curve.points]
        ax.scatter(xs, ys, s=18, color=color, alpha=0.35, linewidths=0)
        front = curve.frontier
        ax.plot(
            [p.per_user for p in front],
            [p.per_gpu for p in front],
            marker="o",
            markersize=5,
            color=color,
            label=curve.name,
        )
        for p in front:
            if p.concurrency is not None:
                ax.annotate(
                    f"c{p.concurrency}",
                    (p.per_user, p.per_gpu),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color=color,
                )
        cap = curve.capacity_point
        if cap is not None:
            ax.scatter(
                [cap.per_user], [cap.per_gpu], marker="*", s=220, color=color,
                edgecolors="black", linewidths=0.8, zorder=5,
            )  # fmt: skip
            grid = curve.capacity_source == "grid"
            ax.annotate(  # short here (labels of several curves must not overlap); whole in
                # the text rows and the HTML list: "capacity 8 users on the swept grid, ..."
                f"capacity {'>=' if grid_lower_bound(curve) else ''}{curve.capacity}"
                + (" (swept grid)" if grid else " users"),
                (cap.per_user, cap.per_gpu),
                textcoords="offset points",
                xytext=(10, -12 - 11 * (i % 3)),
                fontsize=8,
                color=color,
                fontweight="bold",
            )
    line = tpot_line(curves)
    if line is not None:
        at = sorted({c.percentile for c in curves if c.percentile and c.slo_ms.get("tpot_ms")})
        judged = f" at p{'/p'.join(map(str, at))}; x is the mean" if at else ""
        label = f"SLO: TPOT {1000 / line:g} ms ({line:.3g} tok/s/user{judged})"
        ax.axvline(line, color="#b42318", linestyle="--", linewidth=1.2, label=label)
        ax.axvspan(0, line, color="#b42318", alpha=0.05)  # too slow for the SLO
    slos = sorted(
        {f"{k} <= {v:g} ms" for c in curves for k, v in c.slo_ms.items() if k != "tpot_ms"}
    )
    pcts = sorted({c.percentile for c in curves if c.percentile})
    ax.set_xlabel("output tokens/s per user (1000 / TPOT)")
    ax.set_ylabel("output tokens/s per GPU")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    sub = "higher and further right is better; faint dots: every measured point"
    if slos or pcts:
        sub += "\ncapacity SLO: " + ", ".join(slos or ["TPOT"])
        sub += f" at p{'/p'.join(map(str, pcts))}" if pcts else ""
    ax.set_title(sub, fontsize=8, color="#59636e")
    fig.suptitle(title or "Pareto frontier: throughput per GPU vs speed per user", fontsize=11)
    # below the axes, not on them: at the upper right it hid the labels of the points there
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="outside lower center")
    return fig


def write_pareto(curves: Sequence[Any], path: Path, title: str = "") -> Path:
    """The chart as PNG (or SVG, by the file's suffix), written atomically."""
    from pytest_gpubench.results.atomic import write_or_explain

    fig = pareto_figure(curves, title)
    if path.suffix.lower() == ".svg":
        write_or_explain(path, pareto_svg(curves, title))
        return path
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    write_or_explain(path, buf.getvalue())
    return path


def pareto_svg(curves: Sequence[Any], title: str = "") -> str:
    buf = StringIO()
    pareto_figure(curves, title).savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg") :]
