"""The comparison as one self-contained HTML page, to share.

Everything is inline (CSS, a small script, the charts as SVG), so the file opens anywhere
without a network. The table sorts on a click on any header (numbers as numbers, ratios by
how much better, missing cells last) and filters by text and by metric; each device's value
cell links to its source in the "Sources" list: a published figure's citation (a
``owner/repo@commit:path`` becomes a GitHub link, URLs are links) or a measured baseline's
file and hardware. Each metric's row links to its chart.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from pytest_gpubench.errors import GpubenchError

_REPO_AT = re.compile(
    r"(?<![\w/.-])([A-Za-z0-9][\w.-]*/[\w.-]+)@([0-9a-f]{7,40}):([^\s;,()'\"]+[^\s;,()'\".:])"
)
_URL = re.compile(r"https?://[^\s()<>'\"]+[^\s()<>'\".,;:]")
_MISSING = ("did not fit", "not run", "skipped")


def linkify(text: str) -> str:
    """Escape ``text`` and turn URLs and ``owner/repo@commit:path`` citations into links."""
    spans = []
    for m in _URL.finditer(text):
        spans.append((m.start(), m.end(), m.group(0), m.group(0)))
    for m in _REPO_AT.finditer(text):
        repo, commit, path = m.groups()
        url = f"https://github.com/{repo}/blob/{commit}/{quote(path)}"
        spans.append((m.start(), m.end(), url, f"{repo}@{commit[:7]}:{path}"))
    spans.sort()
    out, at = [], 0
    for start, end, url, shown in spans:
        if start < at:
            continue  # overlaps a link already made
        out.append(html.escape(text[at:start]))
        out.append(f'<a href="{html.escape(url)}">{html.escape(shown)}</a>')
        at = end
    out.append(html.escape(text[at:]))
    return "".join(out)


def _breakable(key: str) -> str:
    """A long test id that may wrap after its '/' and '::'."""
    return re.sub(r"(/|::)", r"\1<wbr>", html.escape(key))


def _fmt(value: float) -> str:
    from pytest_gpubench.report.wide import fmt

    return fmt(value)


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _file_href(file: str, base: Path | None) -> str:
    path = Path(file)
    if base is not None:
        try:
            path = Path(os.path.relpath(path.resolve(), base.resolve()))
        except ValueError:  # another drive (Windows)
            path = path.resolve()
    return quote(path.as_posix())


class _Sources:
    """Numbered footnotes, one per distinct (device, source, conditions)."""

    def __init__(self, base: Path | None) -> None:
        self.base = base
        self.items: dict[tuple, int] = {}
        self.html: list[str] = []

    def ref(self, row: object, device_kind: str) -> int:
        source = str(getattr(row, "source", "") or "")
        file = str(getattr(row, "file", "") or "")
        conditions = str(getattr(row, "conditions", "") or "")
        date = str(getattr(row, "date", "") or "")
        hardware = str(getattr(row, "hardware", "") or "")
        key = (row.device, source, conditions, date)  # type: ignore[attr-defined]
        if key in self.items:
            return self.items[key]
        n = len(self.items) + 1
        self.items[key] = n
        device = html.escape(str(row.device))  # type: ignore[attr-defined]
        is_file = source in (file, "") or (file and Path(source) == Path(file))
        if device_kind == "measured" and is_file:
            target = file or source
            body = (
                f'measured by pytest-gpubench: <a href="{_file_href(target, self.base)}">'
                f"{html.escape(target)}</a>"
            )
            if hardware:
                body += f" ({html.escape(hardware)})"
        else:
            body = linkify(source)
            if file and not is_file:
                body += (
                    f' <span class="file">in <a href="{_file_href(file, self.base)}">'
                    f"{html.escape(file)}</a></span>"
                )
        more = ""
        if date:
            more += f'<div class="cond">date: {html.escape(date)}</div>'
        if conditions:
            more += (
                '<details class="cond"><summary>conditions</summary>'
                f"{html.escape(conditions)}</details>"
            )
        self.html.append(f'<li id="src-{n}"><b>{device}</b>: {body}{more}</li>')
        return n


def _chart_svgs(frame: pd.DataFrame) -> tuple[list[tuple[str, str]], str]:
    try:
        from pytest_gpubench.report import charts

        return charts.svg_documents(frame), ""
    except GpubenchError as exc:
        return [], str(exc)


def _header(devices: list[str], first: str) -> tuple[list[str], list[str]]:
    """The two header rows: benchmark / metric / unit, then per device a group of value,
    95% CI and (for every device but the first) the ratio to the first."""
    top = [
        '<th rowspan="2" class="text" data-col="0" scope="col">benchmark</th>',
        '<th rowspan="2" class="text" data-col="1" scope="col">metric</th>',
        '<th rowspan="2" class="text" data-col="2" scope="col">unit</th>',
    ]
    leaf = []
    col = 3
    for i, d in enumerate(devices):
        span = 3 if i else 2
        top.append(
            f'<th colspan="{span}" class="device" data-col="{col}" scope="colgroup">'
            f"{html.escape(d)}</th>"
        )
        leaf.append(f'<th class="num" data-col="{col}" scope="col">value</th>')
        leaf.append(f'<th class="num" data-col="{col + 1}" scope="col">95% CI</th>')
        col += 2
        if i:
            leaf.append(
                f'<th class="num" data-col="{col}" scope="col">vs {html.escape(first)}</th>'
            )
            col += 1
    return top, leaf


def _value_cells(r: Any, value: float, kind: str, sources: _Sources) -> list[str]:
    """One device's value cell (with its source link, or why it has no value) and its 95% CI
    cell; ``r`` is None where the device has no row for this benchmark."""
    cells = []
    if r is None or (not math.isfinite(value) and r.status == "not run"):
        cells.append('<td class="missing" data-sort="">not run</td>')
    else:
        n = sources.ref(r, kind)
        link = f' <a class="src" href="#src-{n}" title="source [{n}]">[{n}]</a>'
        if math.isfinite(value):
            cells.append(f'<td class="num" data-sort="{value!r}">{_fmt(value)}{link}</td>')
        else:
            note = str(getattr(r, "note", "") or "")
            tip = f' title="{html.escape(note)}"' if note else ""
            cells.append(
                f'<td class="missing" data-sort=""{tip}>{html.escape(str(r.status))}{link}</td>'
            )
    low = _number(getattr(r, "ci95_low", math.nan)) if r is not None else math.nan
    high = _number(getattr(r, "ci95_high", math.nan)) if r is not None else math.nan
    if math.isfinite(value) and math.isfinite(low) and math.isfinite(high):
        cells.append(f'<td class="num ci" data-sort="{low!r}">{_fmt(low)} – {_fmt(high)}</td>')
    else:
        cells.append('<td class="none" data-sort="" title="no interval stored">–</td>')
    return cells


def _ratio_cell(value: float, first_value: float, hib: bool, unit: str) -> str:
    """The 'vs first device' cell, green when better, red when worse."""
    from pytest_gpubench.report.wide import ratio_text

    ratio = ratio_text(value, first_value, hib, unit)
    css = ""
    if ratio.endswith(("faster", "better")):
        css = ' class="up"'
    elif ratio.endswith(("slower", "worse")):
        css = ' class="down"'
    return f"<td{css}>{html.escape(ratio)}</td>"


def _body_rows(
    frame: pd.DataFrame, devices: list[str], kinds: dict[str, str], sources: _Sources,
    charted: set[str],
) -> list[str]:  # fmt: skip
    """One table row per (benchmark, metric), sorted, each device's cells side by side."""
    from pytest_gpubench.report.wide import wide_rows

    _, text_rows = wide_rows(frame)
    first = devices[0]
    body = []
    groups = frame.groupby(["key", "metric"], sort=True)
    for ((key, metric), group), text in zip(groups, text_rows, strict=True):
        by_device = {r.device: r for r in group.itertuples()}
        measured = [r for r in group.itertuples() if isinstance(r.unit, str) and r.unit]
        unit = measured[0].unit if measured else ""
        hib = bool(measured[0].higher_is_better) if measured else True
        first_row = by_device.get(first)
        first_value = _number(first_row.value) if first_row is not None else math.nan
        metric_cell = html.escape(str(metric))
        if metric in charted:
            metric_cell = f'<a href="#chart-{html.escape(str(metric))}">{metric_cell}</a>'
        cells = [
            f'<td class="text key" title="{html.escape(str(key))}">{_breakable(str(key))}</td>',
            f'<td class="text">{metric_cell}</td>',
            f'<td class="text">{html.escape(unit)}</td>',
        ]
        for i, d in enumerate(devices):
            r = by_device.get(d)
            value = _number(r.value) if r is not None else math.nan
            cells += _value_cells(r, value, kinds[d], sources)
            if i:
                cells.append(_ratio_cell(value, first_value, hib, unit))
        # the plain-text cells of wide_rows() say the same; kept in step by construction
        assert text[0] == key and text[1] == metric
        search = html.escape(f"{key} {metric} {unit}".lower())
        body.append(
            f'<tr data-metric="{html.escape(str(metric))}" data-text="{search}">'
            + "".join(cells)
            + "</tr>"
        )
    return body


def _device_rows(
    frame: pd.DataFrame, devices: list[str], kinds: dict[str, str], base: Path | None
) -> str:
    """The devices table: kind, hardware and a link to each device's results file."""
    hardware = {}
    files = {}
    for d in devices:
        rows = frame[frame["device"] == d]
        hardware[d] = str(rows["hardware"].iloc[0]) if "hardware" in rows else ""
        files[d] = str(rows["file"].iloc[0]) if "file" in rows else ""
    return "".join(
        f"<tr><td>{html.escape(d)}</td><td>{html.escape(kinds[d])}</td>"
        f"<td>{html.escape(hardware[d])}</td>"
        + (
            f'<td><a href="{_file_href(files[d], base)}">{html.escape(files[d])}</a></td>'
            if files[d]
            else "<td></td>"
        )
        + "</tr>"
        for d in devices
    )


def render(
    frame: pd.DataFrame,
    title: str = "pytest-gpubench comparison",
    base: Path | None = None,
    with_charts: bool = True,
    pareto: Sequence[Any] | None = None,
) -> str:
    """The page for ``frame`` (best from ``compare_files(paths, detail=True)``); ``base`` is the
    folder the page is written to, so links to baseline files are relative to it; ``pareto``
    (``report.pareto.Curve`` objects) adds the Pareto frontier section."""
    devices = list(dict.fromkeys(frame["device"]))
    first = devices[0]
    kinds = {d: str(frame.loc[frame["device"] == d, "kind"].iloc[0]) for d in devices}
    sources = _Sources(base)
    svgs, chart_error = _chart_svgs(frame) if with_charts else ([], "")
    charted = {metric for metric, _ in svgs}
    top, leaf = _header(devices, first)
    body = _body_rows(frame, devices, kinds, sources, charted)

    metrics = sorted(set(frame["metric"]))
    options = "".join(
        f'<option value="{html.escape(m)}">{html.escape(m)}</option>' for m in metrics
    )
    figures = "\n".join(
        f'<figure id="chart-{html.escape(metric)}" data-metric="{html.escape(metric)}">'
        f"{svg}</figure>"
        for metric, svg in svgs
    )
    if chart_error:
        figures = f'<p class="note">No charts: {html.escape(chart_error)}</p>'
    n_rows = len(body)
    return _TEMPLATE.format(
        title=html.escape(title),
        devices=_device_rows(frame, devices, kinds, base),
        first=html.escape(first),
        options=options,
        n_rows=n_rows,
        top="".join(top),
        leaf="".join(leaf),
        body="\n".join(body),
        charts=figures or '<p class="note">No metric has a value to chart.</p>',
        pareto=pareto_section(pareto) if pareto else "",
        sources="\n".join(sources.html),
        css=_CSS,
        script=_SCRIPT,
    )


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em 2em;
  color: #1f2328; line-height: 1.4; }
h1 { font-size: 1.5em; margin: 0 0 .3em; } h2 { font-size: 1.2em; margin: 1.6em 0 .5em; }
a { color: #0969da; } .note, .cond, .file { color: #59636e; font-size: .9em; }
table { border-collapse: collapse; font-size: 14px; }
th, td { border: 1px solid #d1d9e0; padding: 4px 8px; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; vertical-align: bottom; }
th.text, td.text { text-align: left; } th.num, td.num, td.up, td.down { text-align: right; }
th.device { text-align: left; border-bottom: 2px solid #8c959f; }
td.num, td.up, td.down, td.missing, th.num { font-variant-numeric: tabular-nums;
  white-space: nowrap; }
td.key { min-width: 16em; max-width: 30em; overflow-wrap: anywhere; }
#cmp th[data-col] { cursor: pointer; user-select: none; }
#cmp th[data-col]:hover { background: #eaeef2; }
#cmp th[aria-sort="ascending"]::after { content: " ▲"; font-size: .75em; }
#cmp th[aria-sort="descending"]::after { content: " ▼"; font-size: .75em; }
#cmp thead th { position: sticky; top: 0; }
#cmp thead tr:nth-child(2) th { top: var(--head1, 2em); }
#cmp tbody tr:nth-child(even) { background: #fafbfc; }
.up { color: #1a7f37; } .down { color: #b42318; }
.missing { color: #6e7781; font-style: italic; text-align: left; }
.none { color: #c0c6cc; text-align: center; }
a.src { font-size: .75em; text-decoration: none; vertical-align: super; color: #59636e; }
.controls { display: flex; gap: 1em; align-items: center; margin: .8em 0; flex-wrap: wrap; }
.controls input { font: inherit; padding: 3px 6px; width: 24em; }
.controls select { font: inherit; padding: 2px 4px; }
.scroll { overflow-x: auto; }
#charts { display: flex; flex-wrap: wrap; gap: 1em 2em; align-items: flex-start; }
figure { margin: 0 0 1.5em; max-width: 100%; } figure svg { max-width: 100%; height: auto; }
nav a { margin-right: 1em; }
#devices td { text-align: left; }
#sources li { margin: .3em 0; } #sources li:target { background: #fff8c5; }
"""

_SCRIPT = r"""
(function () {
  const table = document.getElementById('cmp');
  const tbody = table.tBodies[0];
  const rows = Array.from(tbody.rows);
  rows.forEach((r, i) => { r.dataset.order = i; });
  // a number for a cell, or a lower-case string, or null (missing: always sorted last)
  function sortKey(td) {
    if (!td) return null;
    if (td.dataset.sort !== undefined) {
      return td.dataset.sort === '' ? null : parseFloat(td.dataset.sort);
    }
    const text = td.textContent.trim();
    if (text === '') return null;
    const ratio = text.match(/^([\d.,]+)x (faster|better|slower|worse)$/);
    if (ratio) {
      const v = parseFloat(ratio[1].replace(/,/g, ''));
      return /faster|better/.test(ratio[2]) ? v : 1 / v;
    }
    if (text === 'same') return 1;
    const n = Number(text.replace(/,/g, ''));
    return Number.isFinite(n) ? n : text.toLowerCase();
  }
  function compare(a, b) {
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    if (typeof a === 'number') return -1;
    if (typeof b === 'number') return 1;
    return a.localeCompare(b, undefined, {numeric: true});
  }
  function sortBy(th) {
    const col = Number(th.dataset.col);
    const dir = th.getAttribute('aria-sort') === 'ascending' ? 'descending' : 'ascending';
    table.querySelectorAll('th[aria-sort]').forEach(h => h.removeAttribute('aria-sort'));
    th.setAttribute('aria-sort', dir);
    const sign = dir === 'ascending' ? 1 : -1;
    const keyed = rows.map(r => [sortKey(r.cells[col]), r]);
    keyed.sort((x, y) => {
      if (x[0] === null && y[0] === null) return x[1].dataset.order - y[1].dataset.order;
      if (x[0] === null) return 1;
      if (y[0] === null) return -1;
      return sign * compare(x[0], y[0]) || x[1].dataset.order - y[1].dataset.order;
    });
    keyed.forEach(k => tbody.appendChild(k[1]));
  }
  table.querySelectorAll('th[data-col]').forEach(th => {
    th.tabIndex = 0;
    th.addEventListener('click', () => sortBy(th));
    th.addEventListener('keydown', e => {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(th); }
    });
  });
  const filter = document.getElementById('filter');
  const metric = document.getElementById('metric');
  const count = document.getElementById('count');
  function apply() {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    const m = metric.value;
    let shown = 0;
    rows.forEach(r => {
      const ok = (!m || r.dataset.metric === m) && words.every(w => r.dataset.text.includes(w));
      r.hidden = !ok;
      if (ok) shown += 1;
    });
    count.textContent = shown + ' of ' + rows.length + ' rows';
    document.querySelectorAll('#charts figure').forEach(f => {
      f.hidden = Boolean(m) && f.dataset.metric !== m;
    });
  }
  filter.addEventListener('input', apply);
  metric.addEventListener('change', apply);
  const head1 = table.tHead.rows[0].getBoundingClientRect().height;
  table.style.setProperty('--head1', head1 + 'px');
  apply();
  window.gpubenchSort = sortBy;  // for scripted use (and the tests)
  window.gpubenchFilter = apply;
})();
"""

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="pytest-gpubench">
<title>{title}</title>
<style>{css}</style></head><body>
<h1>{title}</h1>
<nav><a href="#devices">Devices</a><a href="#results">Results</a><a href="#charts">Charts</a>
<a href="#sources">Sources</a></nav>
<p class="note">Ratios are against <b>{first}</b> and direction-aware ("2.00x faster" is better
whether the metric is a rate or a latency). 95% CI: the interval the result stores (from its
rounds); published figures usually have none. Each value links to its source below. Click a
header to sort; hover a chart's label for the full test id.</p>
<h2>Devices</h2>
<table id="devices"><thead><tr><th class="text">device</th><th class="text">kind</th>
<th class="text">hardware</th><th class="text">file</th></tr></thead>
<tbody>{devices}</tbody></table>
<h2 id="results">Results</h2>
<div class="controls">
<input type="search" id="filter" placeholder="filter: benchmark, metric or unit"
 aria-label="filter rows">
<label>metric <select id="metric"><option value="">all metrics</option>{options}</select></label>
<span id="count" class="note">{n_rows} rows</span>
</div>
<div class="scroll"><table id="cmp">
<thead><tr>{top}</tr><tr>{leaf}</tr></thead>
<tbody>
{body}
</tbody></table></div>
<h2>Charts</h2>
<section id="charts">
{charts}
</section>
{pareto}<h2>Sources</h2>
<ol id="sources">
{sources}
</ol>
<script>{script}</script>
</body></html>
"""


def pareto_section(curves: Sequence[Any]) -> str:
    """The Pareto chart (inline SVG) and each curve's frontier as a table."""
    from pytest_gpubench.report.pareto import capacity_text

    try:
        from pytest_gpubench.report.charts import pareto_svg

        chart = f'<figure id="pareto-chart">{pareto_svg(curves)}</figure>'
    except GpubenchError as exc:
        chart = f'<p class="note">No chart: {html.escape(str(exc))}</p>'
    rows = []
    for c in curves:
        cap = c.capacity_point
        for p in c.frontier:
            where = f"c{p.concurrency}" if p.concurrency is not None else p.label
            mark = " (capacity)" if cap is not None and p == cap else ""
            rows.append(
                f'<tr><td class="text">{html.escape(c.name)}</td>'
                f'<td class="text">{html.escape(where + mark)}</td>'
                f'<td class="num">{_fmt(p.per_user)}</td><td class="num">{_fmt(p.per_gpu)}</td>'
                "</tr>"
            )
    caps = "".join(
        f"<li>{html.escape(c.name)}: <b>{html.escape(capacity_text(c))}</b>"
        + (
            " at "
            + html.escape(", ".join(f"{k} <= {v:g} ms" for k, v in c.slo_ms.items()))
            + (f" (p{c.percentile})" if c.percentile else "")
            if c.slo_ms
            else ""
        )
        + "</li>"
        for c in curves
        if c.capacity is not None
    )
    return (
        '<h2 id="pareto">Pareto frontier</h2>\n<section>\n'
        + chart
        + (f"<ul>{caps}</ul>" if caps else "")
        + '<table class="pareto"><thead><tr><th class="text">device</th>'
        '<th class="text">point</th><th class="num">tok/s per user</th>'
        '<th class="num">tok/s per GPU</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>\n</section>\n"
    )


def render_pareto(curves: Sequence[Any], title: str = "pytest-gpubench Pareto frontier") -> str:
    """One self-contained page: the Pareto chart and the frontier table."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="generator" content="pytest-gpubench">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>\n{pareto_section(curves)}</body></html>\n"
    )
