"""Pareto frontiers across devices, from stored results: ``pytest-gpubench pareto``.

Each file (our baseline or any pytest-benchmark JSON of ours, a published reference, a peer's
result file) gives one curve per benchmark that carries sweep points:

- ours: ``extra_info["sweep"]["points"]`` and ``extra_info["capacity"]["points"]`` (what
  ``serve_bench.sweep`` / ``.capacity`` record), with the capacity and its SLO;
- a reference written by hand: metrics named per point, ``output_tok_s_per_user.c4`` and
  ``output_tok_s_per_gpu.c4`` (the names a sweep records); ``capacity_users`` marks the
  capacity;
- a peer's file with several runs (``vllm bench serve --append-result``, a GuideLLM report
  of several loads): each entry keyed ``...@c<N>...`` with ``output_tok_s`` and ``tpot_ms`` is
  a point, tokens/s per user being 1000 / TPOT as ours is, per GPU the file's tokens/s (one
  GPU: a peer's file does not say how many it used).

A curve's frontier is ``serving.sweep.pareto_frontier`` of its points.

A sweep recorded without an SLO can be judged against one afterwards (``--slo
tpot_ms=50,ttft_ms=2000 --percentile 90``, ``apply_slo``): the line is drawn and the curve's
capacity read from its own grid, the highest swept concurrency that (with every lower one)
meets the SLO at that percentile, marked as such ("on the swept grid"), since the real
capacity lies between it and the first swept concurrency that misses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.results.baseline import Baseline, Entry
from pytest_gpubench.results.sections import CAPACITY, PointRecord, metric_value, read_sweeps
from pytest_gpubench.serving.sweep import pareto_frontier

X = "output_tok_s_per_user"
Y = "output_tok_s_per_gpu"
_LABEL = re.compile(r"^(?P<base>[a-z_]+)\.(?P<label>c\d+|r[0-9.]+|rinf|i\d+o\d+)$")
_PEER_C = re.compile(r"@c(?P<c>\d+)")


#: the latency metrics an SLO may limit (serving.sweep.meets reads the same)
SLO_METRICS = ("ttft_ms", "tpot_ms", "e2el_ms")


@dataclass(frozen=True)
class Point:
    per_user: float
    per_gpu: float
    concurrency: int | None = None
    label: str = ""
    # each SLO metric's mean and percentiles at this point ({"tpot_ms": {"value", "p90"...}})
    latency: Mapping[str, Mapping[str, float]] = field(
        default_factory=dict, compare=False, hash=False
    )

    def get(self, name: str) -> float | None:
        return {X: self.per_user, Y: self.per_gpu}.get(name)


@dataclass
class Curve:
    device: str  # the file's device label: "h200", "spark (published)", "vllm bench serve (x)"
    key: str  # the benchmark the points come from
    points: list[Point]
    capacity: int | None = None
    slo_ms: dict[str, float] = field(default_factory=dict)
    percentile: int | None = None
    file: str = ""
    capacity_source: str = "search"  # or "grid": read from the sweep's points (apply_slo)
    capacity_upper: int | None = None  # grid: the lowest swept concurrency that misses

    @property
    def frontier(self) -> list[Point]:
        return pareto_frontier(self.points)

    @property
    def capacity_point(self) -> Point | None:
        """The measured point at the capacity concurrency (the best of them, if several)."""
        if self.capacity is None:
            return None
        at = [p for p in self.points if p.concurrency == self.capacity]
        return max(at, key=lambda p: p.per_gpu) if at else None

    @property
    def name(self) -> str:
        return self.device if not self.key else f"{self.device}: {self.key}"


def _points(records: Iterable[PointRecord]) -> list[Point]:
    out = []
    for p in records:
        x, y = p.value(X), p.value(Y)
        if x is not None and y is not None:
            out.append(Point(x, y, p.concurrency, p.label, _latency(p.metrics)))
    return out


def _latency(metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in SLO_METRICS:
        raw = metrics.get(name)
        value = metric_value(raw)
        if value is None or not isinstance(raw, Mapping):
            continue
        spread = raw.get("spread") if isinstance(raw.get("spread"), Mapping) else {}
        out[name] = {"value": value, **{k: float(v) for k, v in spread.items() if metric_value(v)}}
    return out


def parse_slo(text: str) -> dict[str, float]:
    """``"tpot_ms=50,ttft_ms=2000"`` -> ``{"tpot_ms": 50.0, "ttft_ms": 2000.0}``."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, raw = part.partition("=")
        name = name.strip()
        try:
            value = float(raw) if sep else math.nan
        except ValueError:
            value = math.nan
        if name not in SLO_METRICS or not math.isfinite(value) or value <= 0:
            raise GpubenchError(
                f"--slo {text!r}: each limit is NAME=MILLISECONDS with NAME one of "
                f"{', '.join(SLO_METRICS)} and a number > 0, e.g. --slo tpot_ms=50,ttft_ms=2000"
            )
        out[name] = value
    if not out:
        raise GpubenchError("--slo names no limit, e.g. --slo tpot_ms=50,ttft_ms=2000")
    return out


def _meets(point: Point, slo: Mapping[str, float], percentile: int) -> bool | None:
    """Whether the point meets every limit at ``percentile``; None when it lacks the data."""
    for name, limit in slo.items():
        value = point.latency.get(name, {}).get(f"p{percentile}")
        if value is None:  # the mean would flatter a percentile limit: claim nothing
            return None
        if value > limit:
            return False
    return True


def apply_slo(curves: Iterable[Curve], slo: Mapping[str, float], percentile: int = 90) -> None:
    """Judge the curves that carry no SLO of their own against ``slo``: the line, and a
    capacity read from the curve's swept concurrencies (``capacity_source="grid"``). A curve
    with its own SLO (a capacity search's) keeps it and its searched capacity."""
    for c in curves:
        if c.slo_ms:
            continue
        c.slo_ms, c.percentile = dict(slo), percentile
        if c.capacity is not None:
            continue
        swept = sorted(
            (p for p in c.points if p.concurrency is not None), key=lambda p: p.concurrency
        )
        verdicts = [(p.concurrency, _meets(p, slo, percentile)) for p in swept]
        if not verdicts or any(v is None for _, v in verdicts):
            continue  # no percentiles stored for some point: no capacity claimed
        passed = None
        for conc, ok in verdicts:
            if not ok:
                c.capacity_upper = conc
                break
            passed = conc
        c.capacity = passed if passed is not None else 0
        c.capacity_source = "grid"


def grid_lower_bound(c: Curve) -> bool:
    """A capacity read from a sweep in which no swept point missed the SLO: the sweep ended
    (saturation, a time budget, its last setting) before the limit, which lies higher."""
    return c.capacity_source == "grid" and c.capacity_upper is None and bool(c.capacity)


def capacity_text(c: Curve) -> str:
    """``capacity 8 users`` or, read from a sweep, ``capacity 8 users on the swept grid, c16
    misses`` (or ``capacity at least 8 users ..., no swept point misses``)."""
    if c.capacity is None:
        return ""
    if c.capacity_source != "grid":
        return f"capacity {c.capacity} users"
    if grid_lower_bound(c):
        return f"capacity at least {c.capacity} users on the swept grid, no swept point misses"
    upper = f", c{c.capacity_upper} misses" if c.capacity_upper is not None else ""
    return f"capacity {c.capacity} users on the swept grid{upper}"


def _short(key: str) -> str:
    return key.split("::")[-1] if "::" in key else key


def curves_of(b: Baseline) -> list[Curve]:
    """The curves one loaded file carries (none when it has no sweep points)."""
    found: list[Curve] = []
    for key, entry in b.entries.items():
        points: list[Point] = []
        capacity = None
        slo: dict[str, float] = {}
        pct = None
        for record in read_sweeps(entry.extra):
            points += _points(record.points)
            slo.update(record.slo_ms)
            if record.kind == CAPACITY:
                capacity, pct = record.max_concurrency, record.percentile
        if not points:  # per-point metric names (a reference written by hand)
            points = _named_points(entry)
        if "capacity_users" in entry.metrics and capacity is None:
            m = entry.metrics["capacity_users"]
            capacity = int(m.value)
            slo.update(
                {k[4:]: v for k, v in m.spread.items() if k.startswith("slo_") and v is not None}
            )
            pct = int(m.spread["percentile"]) if "percentile" in m.spread else pct
        if points:
            found.append(Curve(b.label, _short(key), points, capacity, slo, pct, str(b.path)))
    if not found:
        found += _peer_curves(b)
    return found


def _named_points(entry: Entry) -> list[Point]:
    """Points from metrics named per point (``output_tok_s_per_user.c4``)."""
    pairs: dict[str, dict[str, float]] = {}
    for name, m in entry.metrics.items():
        hit = _LABEL.match(name)
        if hit and hit["base"] in (X, Y):
            pairs.setdefault(hit["label"], {})[hit["base"]] = m.value
    points = []
    for label, xy in pairs.items():
        if X in xy and Y in xy:
            conc = int(label[1:]) if re.fullmatch(r"c\d+", label) else None
            points.append(Point(xy[X], xy[Y], conc, label))
    return points


def _peer_curves(b: Baseline) -> list[Curve]:
    """A peer's runs at several concurrencies, grouped by the rest of their key."""
    groups: dict[str, list[Point]] = {}
    for key, entry in b.entries.items():
        hit = _PEER_C.search(key)
        tok, tpot = entry.metrics.get("output_tok_s"), entry.metrics.get("tpot_ms")
        if hit is None or tok is None or tpot is None or tpot.value <= 0:
            continue
        rest = _PEER_C.sub("", key)
        c = int(hit["c"])
        groups.setdefault(rest, []).append(Point(1000.0 / tpot.value, tok.value, c, f"c{c}"))
    return [
        Curve(b.label, _short(rest), pts, file=str(b.path))
        for rest, pts in groups.items()
        if len(pts) >= 2
    ]


def load_curves(paths: Sequence[str | Path], key: str | None = None) -> list[Curve]:
    """Every curve in ``paths`` (``key``: only benchmarks whose key contains it); an error
    when none of the files carries sweep points."""
    from pytest_gpubench.report.peers import load

    curves: list[Curve] = []
    for path in paths:
        curves += [c for c in curves_of(load(path)) if key is None or key in c.key]
    if not curves:
        raise GpubenchError(
            "no sweep points in "
            + ", ".join(str(p) for p in paths)
            + (f" for key {key!r}" if key else "")
            + ": record them with serve_bench.sweep or serve_bench.capacity, or give "
            "output_tok_s_per_user.c<N> and output_tok_s_per_gpu.c<N> metrics"
        )
    # one device, one benchmark: name the curve by the device alone
    devices = [c.device for c in curves]
    for c in curves:
        if devices.count(c.device) == 1:
            c.key = ""
    return curves


def tpot_line(curves: Iterable[Curve]) -> float | None:
    """Where the SLO sits on the x axis: 1000 / the TPOT limit (the slowest per-user speed
    the SLO allows); the strictest when curves disagree."""
    limits = [c.slo_ms["tpot_ms"] for c in curves if c.slo_ms.get("tpot_ms")]
    return 1000.0 / min(limits) if limits else None


def text_rows(curves: Sequence[Curve]) -> list[str]:
    """The frontiers as text, for the terminal."""
    lines = []
    for c in curves:
        cap = f", {capacity_text(c)}" if c.capacity is not None else ""
        slo = ", ".join(f"{k} <= {v:g}" for k, v in c.slo_ms.items())
        at = f" at p{c.percentile}" if slo and c.percentile else ""
        lines.append(
            f"{c.name}: {len(c.points)} points{cap}" + (f" (SLO {slo}{at})" if slo else "")
        )
        for p in c.frontier:
            where = f"c{p.concurrency}" if p.concurrency is not None else p.label
            lines.append(
                f"  {where:>8}  {p.per_user:10.4g} tok/s/user  {p.per_gpu:10.4g} tok/s/GPU"
            )
    return lines
