"""Sweep and capacity points as data: one point's setting, its metrics, and the pure rules
read from them (saturation, SLO verdicts with their noise, the Pareto frontier, the time budget
and a point's cost, the line a finished point leaves).

Nothing here sends a request: ``serving/sweeper.py`` measures points, ``serving/sweep.py``
and ``serving/capacity.py`` drive them. Kept apart so each of those reads the same rules.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.metrics.stats import quantile_interval
from pytest_gpubench.serving.arguments import whole
from pytest_gpubench.serving.client import RequestResult
from pytest_gpubench.serving.failures import kinds_text
from pytest_gpubench.serving.metrics import metric, slo_values

if TYPE_CHECKING:
    from pytest_gpubench.serving.aggregate import ServeResult

POINT_METRICS = (
    "output_tok_s",
    "output_tok_s_per_user",
    "output_tok_s_per_gpu",
    "requests_per_s",
    "goodput_req_s",
    "ttft_ms",
    "tpot_ms",
    "itl_ms",
    "e2el_ms",
    "failed",
)
PERCENTILES = (50, 90, 95, 99)
#: serve_bench arguments a sweep point decides itself, or that mean nothing per point
NOT_PER_POINT = ("rounds", "precision", "max_requests", "duration_s")


# --- points -----------------------------------------------------------------------------------


def _g(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Setting:
    """One point's load: what varies along the sweep and the shape of its requests."""

    concurrency: int | None
    request_rate: float | None  # None: as fast as the concurrency allows
    input_len: int
    output_len: int
    axis: str = "concurrency"  # "concurrency", "request_rate" or "shape"

    @property
    def label(self) -> str:
        """The point's part of a metric name: ``c4``, ``r2.5``, ``i1000o300``."""
        if self.axis == "request_rate":
            return f"r{_g(self.request_rate)}" if self.request_rate is not None else "rinf"
        if self.axis == "shape":
            return f"i{self.input_len}o{self.output_len}"
        return f"c{self.concurrency}"


@dataclass
class SweepPoint:
    concurrency: int | None
    request_rate: float | None
    input_len: int
    output_len: int
    metrics: dict[str, Metric]
    label: str = ""
    num_prompts: int = 0
    warmups: int = 0
    steady: dict[str, float] = field(default_factory=dict)
    saturated: bool = False
    meets_slo: bool | None = None  # capacity points: this measurement met every SLO
    # capacity points: per SLO metric its percentile, that percentile's 95% interval and the
    # verdict, "meets" / "misses" or "unsure" (the interval holds the limit: noise decides)
    slo_check: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_s: float = 0.0  # the point's wall time, warm-ups included (what the next one costs)
    result: ServeResult | None = field(default=None, repr=False, compare=False)
    # the point's own bound verdict (``Verdict.as_dict()``, metrics/point.py) where telemetry
    # judged it; None on a run without a sampler
    bound: dict[str, str] | None = None

    def __getitem__(self, name: str) -> float:
        return self.metrics[name].value

    def get(self, name: str) -> float | None:
        m = self.metrics.get(name)
        return m.value if m is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "concurrency": self.concurrency,
            "request_rate": self.request_rate,
            "input_len": self.input_len,
            "output_len": self.output_len,
            "num_prompts": self.num_prompts,
            "warmups": self.warmups,
            "steady": self.steady,
            "saturated": self.saturated,
            "wall_s": round(self.wall_s, 3),
            **({"meets_slo": self.meets_slo} if self.meets_slo is not None else {}),
            **({"slo_check": self.slo_check} if self.slo_check else {}),
            **({"bound": self.bound} if self.bound else {}),
            # which requests it sent: (test key, n-th set, run nonce), RequestFactory's draw
            **(
                {"prompt_draw": self.result.workload["prompt_draw"]}
                if self.result is not None and "prompt_draw" in self.result.workload
                else {}
            ),
            "metrics": {n: m.as_dict() for n, m in self.metrics.items()},
        }


@dataclass
class SweepResult:
    points: list[SweepPoint]
    axis: str
    # "done" (every setting measured), "saturation", "time_budget" or "failed_point"
    stopped_by: str
    gpus: int = 1
    failure: str | None = None  # the failed point's line (``failures.point_failure``)

    @property
    def frontier(self) -> list[SweepPoint]:
        return pareto_frontier(self.points)


@dataclass
class CapacityResult:
    max_concurrency: int  # 0: not even one user meets the SLO
    points: list[SweepPoint]
    slo: dict[str, float]
    percentile: int
    capped: bool = False  # max_concurrency met the SLO: the capacity may be higher
    upper: int | None = None  # the lowest concurrency found to fail (None: none failed)
    stopped_by: str = "done"  # or "time_budget": the search stopped before its boundary

    @property
    def frontier(self) -> list[SweepPoint]:
        return pareto_frontier(self.points)

    @property
    def within_noise(self) -> str | None:
        """The boundary's SLO checks whose 95% interval holds the limit (``boundary_noise``),
        or None when the answer is clear of the noise."""
        return boundary_noise(self.points, (self.max_concurrency, self.upper), self.percentile)


def point_metrics(base: Mapping[str, Metric], gpus: int) -> dict[str, Metric]:
    """``base`` plus the per-user and per-GPU throughput of the point."""
    out = dict(base)
    tpot = base.get("tpot_ms")
    if tpot is not None and tpot.value > 0:
        out["output_tok_s_per_user"] = metric(
            "output_tok_s_per_user", 1000.0 / tpot.value, {"n": tpot.spread.get("n", 0)}
        )
    tok_s = base.get("output_tok_s")
    if tok_s is not None:
        spread = {"gpus": float(gpus)}
        for k in ("ci95_low", "ci95_high"):
            if k in tok_s.spread:
                spread[k] = tok_s.spread[k] / gpus
        out["output_tok_s_per_gpu"] = metric("output_tok_s_per_gpu", tok_s.value / gpus, spread)
    return out


def named(m: Metric, label: str) -> Metric:
    """``m`` under the point's name: ``output_tok_s.c4``."""
    return Metric(
        f"{m.name}.{label}",
        m.value,
        m.unit,
        m.higher_is_better,
        dict(m.spread),
        f"{m.description} (sweep point {label})" if m.description else f"sweep point {label}",
    )


def steady_state(
    results: Sequence[RequestResult],
    target: int | None,
    warmups: Sequence[RequestResult] = (),
) -> dict[str, float]:
    """How much of a point's measured time ran at its full load, reported rather than cut:
    ``ramp_s`` (the first measured request until ``target`` requests were first in flight),
    ``drain_s`` (the last time that many were in flight until the end), ``full_fraction`` of
    the duration in between, and ``steady_output_tok_s``, the tokens streamed in that window
    over its length. ``warmups`` that led into the measured requests count as in flight (and
    their tokens in the window): with them the load is full from the first measured request."""
    done = [r for r in results if r.end is not None]
    if not done:
        return {}
    start = min(r.start for r in results)
    end = max(r.end for r in done)  # type: ignore[type-var]
    lead = [r for r in warmups if r.end is not None and r.end > start]
    every = done + lead
    events = sorted(
        [(max(r.start, start), 1) for r in every] + [(r.end, -1) for r in every]  # type: ignore[misc]
    )
    want = min(target or len(done), len(done))
    cur, first, last = 0, None, None
    for t, d in events:
        was = cur
        cur += d
        if cur >= want and first is None:
            first = t
        if was >= want and cur < want:
            last = t
    first = start if first is None else first
    last = end if last is None else last
    duration = max(end - start, 1e-9)
    window = max(last - first, 0.0)
    tokens = sum(1 for r in every if r.ok for t in r.token_times if first <= t <= last)
    out = {
        "ramp_s": first - start,
        "drain_s": end - last,
        "full_fraction": window / duration,
    }
    if window > 0:
        out["steady_output_tok_s"] = tokens / window
    return out


# --- saturation, SLO, frontier: pure ----------------------------------------------------------


def saturated(
    before: Mapping[str, Metric], now: Mapping[str, Metric], tolerance: float = 0.1
) -> bool:
    """``now`` (more load than ``before``) gained no more than ``tolerance`` in throughput while
    its end-to-end latency rose by more than ``tolerance``.

    The point's own 95% interval does not widen the "flat" band: with a few blocks it is wide
    (on the H200, llama.cpp at 4 users read 364 tok/s, 95% CI 0 .. 765, while 10 users served
    445), so widening by it stopped sweeps at the first noisy point. Noise that wide means the
    data cannot tell, and a sweep that cannot tell measures the next point rather than stop.
    """
    a, b = before.get("output_tok_s"), now.get("output_tok_s")
    la, lb = before.get("e2el_ms"), now.get("e2el_ms")
    if a is None or b is None or la is None or lb is None or a.value <= 0 or la.value <= 0:
        return False
    flat = b.value / a.value - 1 <= tolerance
    slower = lb.value / la.value - 1 > tolerance
    return flat and slower


def check_percentile(percentile: Any) -> int:
    if isinstance(percentile, bool) or percentile not in PERCENTILES:
        raise GpubenchError(
            f"percentile must be one of {', '.join(map(str, PERCENTILES))}, got {percentile!r}"
        )
    return int(percentile)


def meets(
    metrics: Mapping[str, Metric],
    slo: Mapping[str, float],
    percentile: int,
    max_error_rate: float = 0.0,
) -> bool:
    """Every SLO met at ``percentile`` (``p90`` of the point's distribution), and no more
    failed requests than allowed (a point whose requests fail does not serve its users)."""
    err = metrics.get("error_rate")
    if err is not None and err.value > max_error_rate:
        return False
    for key, limit in slo.items():
        m = metrics.get(key)
        if m is None:
            return False
        value = m.spread.get(f"p{percentile}", m.value)
        if value > limit:
            return False
    return True


def slo_check(
    results: Sequence[RequestResult], slo: Mapping[str, float], percentile: int
) -> dict[str, dict[str, Any]]:
    """For each SLO metric, the point's ``percentile`` of its completed requests, the 95%
    interval of that percentile (``metrics.stats.quantile_interval``) and whether the limit is
    clear of it: "meets" (the whole interval within the limit), "misses" (all above) or "unsure"
    (the limit inside: another measurement may well decide the other way). The verdict of
    ``meets`` stays the point estimate's; this says how much to trust it."""
    import numpy as np

    out: dict[str, dict[str, Any]] = {}
    for key, limit in slo.items():
        values = [v * 1000.0 for r in results if r.ok and (v := slo_values(r)[key]) is not None]
        if not values:
            continue
        low, high = quantile_interval(values, percentile)
        verdict = "meets" if high <= limit else "misses" if low > limit else "unsure"
        value = float(np.percentile(values, percentile))
        out[key] = {"value": value, "low": low, "high": high, "limit": limit, "verdict": verdict}
    return out


def boundary_noise(
    points: Sequence[SweepPoint], concurrencies: Iterable[int | None], percentile: int
) -> str | None:
    """What makes a capacity answer uncertain: the SLO checks of the points measured at the
    boundary (the capacity and the lowest failure) whose interval holds the limit, in words;
    None when every one is clear."""
    at = {c for c in concurrencies if c is not None}
    unsure = []
    for p in points:
        if p.concurrency not in at:
            continue
        for key, c in p.slo_check.items():
            if c["verdict"] == "unsure":
                unsure.append(
                    f"c{p.concurrency}'s p{percentile} {key.removesuffix('_ms')} "
                    f"{c['value']:,.0f} ms (95% interval {c['low']:,.0f} .. {c['high']:,.0f}) "
                    f"against {c['limit']:,.0f}"
                )
    return "; ".join(unsure) if unsure else None


def pareto_frontier(points: Iterable[Any]) -> list[Any]:
    """The points no other point beats on both tokens/s per user and tokens/s per GPU (higher
    is better on both), ordered by tokens/s per user. A point is anything with
    ``get(name)`` or a ``metrics`` mapping of values or ``Metric``; those without both
    numbers are left out; of equal points the first is kept."""

    def xy(p: Any) -> tuple[float, float] | None:
        vals = []
        for name in ("output_tok_s_per_user", "output_tok_s_per_gpu"):
            v = p.get(name) if hasattr(p, "get") else p.metrics.get(name)
            v = getattr(v, "value", v)
            if v is None or not math.isfinite(float(v)):
                return None
            vals.append(float(v))
        return vals[0], vals[1]

    found = [(xy(p), p) for p in points]
    found = [(c, p) for c, p in found if c is not None]
    front = []
    for i, (c, p) in enumerate(found):
        dominated = any(
            (o[0] >= c[0] and o[1] >= c[1]) and (o != c or j < i)
            for j, (o, _) in enumerate(found)
            if j != i
        )
        if not dominated:
            front.append((c, p))
    return [p for _, p in sorted(front, key=lambda cp: (cp[0][0], -cp[0][1]))]


@dataclass
class Budget:
    """A wall-clock limit for a sweep or a capacity search (None: no limit), checked before
    each point: a point starts only when the time spent plus its estimated cost fits. The
    first point always runs (nothing is known of the cost before it)."""

    seconds: float | None
    clock: Callable[[], float] = time.monotonic
    start: float = 0.0

    def __post_init__(self) -> None:
        self.start = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def allows(self, cost_s: float | None) -> bool:
        if self.seconds is None or cost_s is None:
            return True
        return self.elapsed() + cost_s <= self.seconds


def point_cost(
    measured: Sequence[SweepPoint], concurrency: int | None, rate: float | None, requests: int
) -> float | None:
    """Seconds a point of ``requests`` requests (warm-ups included) should take, from the
    points measured so far; None before the first.

    A closed loop of ``c`` users runs ``requests / c`` waves, each one request long, so a
    point's wall time over its waves is one request's wall time at that load. It is read
    from the measured point nearest at or above ``c``; above every measured point, from the
    highest one scaled by ``c / its c`` (past saturation a request's latency grows in
    proportion to the users, before it less: the estimate errs long). An open loop at
    ``rate`` requests/s takes ``requests / rate`` plus one request's latency to drain.
    """
    done = [p for p in measured if p.wall_s > 0 and (p.num_prompts + p.warmups) > 0]
    if not done:
        return None
    if concurrency is None:
        last = done[-1]
        e2el = last.get("e2el_ms") or 0.0
        if rate is not None and math.isfinite(rate) and rate > 0:
            return requests / rate + e2el / 1000
        return last.wall_s

    def per_wave(p: SweepPoint) -> float:
        c = p.concurrency or 1
        return p.wall_s / max(1.0, (p.num_prompts + p.warmups) / c)

    waves = max(1.0, requests / concurrency)
    above = [p for p in done if (p.concurrency or 1) >= concurrency]
    if above:
        nearest = min(above, key=lambda p: p.concurrency or 1)
        return per_wave(nearest) * waves
    top = max(done, key=lambda p: p.concurrency or 1)
    return per_wave(top) * waves * concurrency / (top.concurrency or 1)


def describe_point(kind: str, point: SweepPoint, percentile: int = 90) -> str:
    """The permanent line a finished point leaves on the terminal and in the log."""

    def pct(name: str) -> str:
        m = point.metrics.get(name)
        if m is None:
            return "-"
        return f"{m.value:,.0f}/{m.spread.get(f'p{percentile}', m.value):,.0f}"

    out = point.metrics.get("output_tok_s")
    parts = [
        f"{kind} {point.label}:",
        f"{out.value:,.1f} output tok/s," if out is not None else "",
        f"ttft mean/p{percentile} {pct('ttft_ms')} ms,",
        f"tpot {pct('tpot_ms')} ms,",
        f"{point.wall_s:.1f} s;",
    ]
    failed = point.metrics.get("failed")
    if failed is not None and failed.value > 0:
        done = point.metrics.get("completed")
        sent = int(failed.value) + (int(done.value) if done is not None else 0)
        kinds = f" ({kinds_text(point.result.results)})" if point.result is not None else ""
        parts.append(f"{int(failed.value)} of {sent} requests failed{kinds};")
    cached = point.metrics.get("cached_prompt_fraction")
    if cached is not None and cached.value >= 0.05:  # said where it matters: BOS is ~0.1%
        parts.append(f"{cached.value:.0%} of prompt tokens from the server's cache;")
    if point.meets_slo is not None:
        parts.append("meets the SLO" if point.meets_slo else "misses the SLO")
        if any(c["verdict"] == "unsure" for c in point.slo_check.values()):
            parts.append("(within the noise)")
    if point.saturated:
        parts.append("saturated")
    return " ".join(p for p in parts if p).rstrip(";")


# --- the settings of a sweep ---------------------------------------------------------------


def settings_for(
    concurrency: Any, request_rate: Any, shapes: Any, input_len: int, output_len: int
) -> list[Setting]:
    """The points of a sweep: exactly one of the three is a list (the axis); the others are
    one value each (concurrency None: no cap; request_rate inf: as fast as the cap allows)."""

    def is_list(v: Any) -> bool:
        return isinstance(v, list | tuple | range)

    axes = [n for n, v in (("concurrency", concurrency), ("request_rate", request_rate),
                           ("shapes", shapes)) if is_list(v)]  # fmt: skip
    if len(axes) != 1:
        raise GpubenchError(
            "give exactly one list to sweep over: concurrency=[1, 2, 4, ...], "
            "request_rate=[1.0, 2.0, ...] or shapes=[(input_len, output_len), ...]"
            + (f" (got lists for {', '.join(axes)})" if axes else "")
        )
    axis = axes[0]
    values = list(locals()[axis] if axis != "shapes" else shapes)
    if not values:
        raise GpubenchError(f"{axis} must list at least one setting")
    rate = None if is_list(request_rate) else request_rate
    if rate is not None and math.isinf(float(rate)):
        rate = None
    out = []
    for v in values:
        if axis == "concurrency":
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise GpubenchError(f"concurrency=[...] must hold whole numbers >= 1, got {v!r}")
            out.append(Setting(v, rate, input_len, output_len, "concurrency"))
        elif axis == "request_rate":
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise GpubenchError(f"request_rate=[...] must hold rates > 0 req/s, got {v!r}")
            r = None if math.isinf(float(v)) else float(v)
            out.append(Setting(concurrency, r, input_len, output_len, "request_rate"))
        else:
            ok = (
                isinstance(v, list | tuple)
                and len(v) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v)
            )
            if not ok:
                raise GpubenchError(
                    f"shapes=[...] must hold (input_len, output_len) pairs of whole numbers, "
                    f"got {v!r}"
                )
            out.append(Setting(concurrency, rate, int(v[0]), int(v[1]), "shape"))
    labels = [s.label for s in out]
    if len(set(labels)) != len(labels):
        raise GpubenchError(f"{axis} lists a setting twice: {labels}")
    if axis != "shapes":
        key = (lambda s: s.concurrency) if axis == "concurrency" else (lambda s: s.request_rate)
        out.sort(key=lambda s: math.inf if key(s) is None else key(s))
    return out


def prompts_for(setting: Setting, prompts_per_user: int, min_prompts: int) -> int:
    """Requests at one point: ``prompts_per_user`` per stream at a concurrency, that many
    seconds of arrivals at a request rate, never fewer than ``min_prompts``."""
    if setting.axis == "request_rate" and setting.request_rate is not None:
        n = math.ceil(prompts_per_user * setting.request_rate)
    else:
        n = prompts_per_user * (setting.concurrency or 1)
    return max(min_prompts, n)


def warmups_for(setting: Setting, warmups: int | None) -> int:
    """Warm-ups before a point: as given, else one per stream (every slot warm)."""
    if warmups is not None:
        return warmups
    if setting.concurrency:
        return setting.concurrency
    return min(8, max(1, math.ceil(setting.request_rate or 1)))


@dataclass(frozen=True)
class PointSizes:
    """How many requests a point sends: ``prompts_per_user`` per stream (never fewer than
    ``min_prompts``) unless ``num_prompts`` fixes it; ``warmups`` (None: one per stream)."""

    prompts_per_user: int = 4
    min_prompts: int = 8
    num_prompts: int | None = None
    warmups: int | None = None

    def __post_init__(self) -> None:
        whole("prompts_per_user", self.prompts_per_user, 1)
        whole("min_prompts", self.min_prompts, 1)
        whole("num_prompts", self.num_prompts, 1, none="scaled per point")
        whole("warmups", self.warmups, 0, none="one per stream")

    def prompts(self, setting: Setting) -> int:
        return self.num_prompts or prompts_for(setting, self.prompts_per_user, self.min_prompts)

    def warmups_at(self, setting: Setting) -> int:
        return warmups_for(setting, self.warmups)
