"""Serving metrics, defined once: what each number means, its unit and direction, and what
vLLM, GuideLLM and AIPerf call it (they disagree on TPOT and ITL, so the mapping is data, in
``metric_defs``).

``serving_metrics`` turns the per-request results of one run into ``Metric`` objects. Rules
that keep the numbers honest:

- token counts come from the server's ``usage``; the client's count of streamed text chunks
  is only a fallback, and requests where the two disagree are counted;
- requests that produced fewer output tokens than asked are counted (``short_outputs``): a
  run that silently stops early measures a different workload;
- throughput is total tokens over the run's duration; the highest 1-second bucket is
  recorded separately as ``peak_output_tok_s`` and never under a mean's name.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.metrics.stats import summarize
from pytest_gpubench.serving.client import RequestResult
from pytest_gpubench.serving.metric_defs import (  # re-exported: their import path stays
    SERVING_METRICS,
    ServingMetricDef,  # noqa: F401
    definition_table,  # noqa: F401
    peer_field_table,  # noqa: F401
)
from pytest_gpubench.serving.throughput import (  # all but the interval lived here
    batch_means_ci,  # noqa: F401
    output_tok_s_interval,
    peak_in_flight,
    tokens_after,
)

SLO_KEYS = ("ttft_ms", "tpot_ms", "e2el_ms")


def metric(name: str, value: float, spread: Mapping[str, float] | None = None) -> Metric:
    d = SERVING_METRICS[name]
    return Metric(name, float(value), d.unit, d.higher_is_better, dict(spread or {}), d.definition)


def distribution(values_s: Sequence[float]) -> dict[str, float]:
    """mean/std/p50/p90/p95/p99/min/max and the 95% interval of the mean, in ms."""
    s = summarize([v * 1000.0 for v in values_s])
    return {
        "n": s.n,
        "mean": s.mean,
        "std": s.std,
        "p50": s.median,
        "p90": s.p90,
        "p95": s.p95,
        "p99": s.p99,
        "min": s.min,
        "max": s.max,
        "ci95_low": s.ci95_low,
        "ci95_high": s.ci95_high,
    }


def peak_per_second(times: Sequence[float], start: float) -> float:
    if not times:
        return 0.0
    buckets = np.floor(np.asarray(times) - start).astype(int)
    return float(np.bincount(buckets[buckets >= 0]).max()) if buckets.size else 0.0


def check_slo(slo: Mapping[str, float] | None) -> dict[str, float]:
    if not slo:
        return {}
    unknown = sorted(set(slo) - set(SLO_KEYS))
    if unknown:
        raise GpubenchError(
            f"unknown SLO key(s) {unknown}; use {', '.join(SLO_KEYS)} (milliseconds)"
        )
    return {k: float(v) for k, v in slo.items()}


def slo_values(r: RequestResult) -> dict[str, float | None]:
    """What each SLO key judges of one request, in seconds (None where it has none)."""
    return {"ttft_ms": r.ttft, "tpot_ms": r.tpot, "e2el_ms": r.e2el}


def meets_slo(r: RequestResult, slo: Mapping[str, float]) -> bool:
    values = slo_values(r)
    for key, limit in slo.items():
        v = values[key]
        if v is not None and v * 1000.0 > limit:
            return False
    return True


def error_summary(results: Sequence[RequestResult], limit: int = 5) -> str:
    counts = Counter(r.error.splitlines()[0][:200] if r.error else "?" for r in results if not r.ok)
    return "; ".join(f"{n} x {msg}" for msg, n in counts.most_common(limit))


def _latency_metrics(ok: Sequence[RequestResult]) -> dict[str, Metric]:
    """TTFT, TPOT, ITL and end-to-end latency of the successful requests: the mean as value,
    the distribution (percentiles, 95% interval of the mean) as spread, in ms."""
    out: dict[str, Metric] = {}
    for name, values in (
        ("ttft_ms", [r.ttft for r in ok if r.ttft is not None]),
        ("tpot_ms", [r.tpot for r in ok if r.tpot is not None]),
        ("itl_ms", [g for r in ok for g in r.itl]),
        ("e2el_ms", [r.e2el for r in ok if r.e2el is not None]),
    ):
        if values:
            dist = distribution(values)
            out[name] = metric(name, dist.pop("mean"), dist)
    return out


def _token_metrics(
    ok: Sequence[RequestResult],
    in_tokens: Sequence[int],
    out_tokens: Sequence[int],
    expect_full_output: bool,
) -> dict[str, Metric]:
    """Tokens per request in and out, and the two honesty counts: requests that stopped
    short of ``max_tokens`` and requests whose usage disagrees with the streamed chunks."""
    total_in, total_out = sum(in_tokens), sum(out_tokens)
    out: dict[str, Metric] = {}
    out["input_tokens"] = metric(
        "input_tokens",
        total_in / len(ok),
        {"min": min(in_tokens), "max": max(in_tokens), "total": total_in},
    )
    out["output_tokens"] = metric(
        "output_tokens",
        total_out / len(ok),
        {"min": min(out_tokens), "max": max(out_tokens), "total": total_out},
    )
    short = [r for r in ok if r.output_tokens < r.spec.max_tokens] if expect_full_output else []
    out["short_outputs"] = metric(
        "short_outputs",
        len(short),
        {"asked_tokens": float(sum(r.spec.max_tokens for r in ok)), "got_tokens": float(total_out)},
    )
    mismatches = sum(
        r.usage_completion_tokens is None or r.usage_completion_tokens < r.client_output_chunks
        for r in ok
    )
    out["token_count_mismatches"] = metric("token_count_mismatches", mismatches)
    return out


def _cache_and_server_metrics(ok: Sequence[RequestResult]) -> dict[str, Metric]:
    """What the server reported per request: the prompt-cache hit fraction and, from
    llama.cpp's ``timings``, its own prefill and decode speeds."""
    out: dict[str, Metric] = {}
    cache = [c for c in (r.prompt_cache for r in ok) if c is not None]
    if cache:
        hit, total = sum(c[0] for c in cache), sum(c[1] for c in cache)
        out["cached_prompt_fraction"] = metric(
            "cached_prompt_fraction",
            hit / total,
            {"n": len(cache), "cached_tokens": float(hit), "prompt_tokens": float(total)},
        )
    timings = [r.server_timings for r in ok if r.server_timings]
    if timings:
        pn = sum(t.get("prompt_n", 0) for t in timings)
        pms = sum(t.get("prompt_ms", 0.0) for t in timings)
        dn = sum(t.get("predicted_n", 0) for t in timings)
        dms = sum(t.get("predicted_ms", 0.0) for t in timings)
        if pms > 0:
            out["server_prefill_tok_s"] = metric(
                "server_prefill_tok_s", pn / pms * 1000.0, {"n": len(timings)}
            )
        if dms > 0:
            out["server_decode_tok_s"] = metric(
                "server_decode_tok_s", dn / dms * 1000.0, {"n": len(timings)}
            )
    return out


def serving_metrics(
    results: Sequence[RequestResult],
    duration_s: float,
    *,
    slo: Mapping[str, float] | None = None,
    expect_full_output: bool = True,
    throughput_ci: tuple[float, float] | None = None,
    server: Mapping[str, float] | None = None,
    lead: Sequence[RequestResult] = (),
    windows: Sequence[tuple[float, float]] | None = None,
) -> dict[str, Metric]:
    """All serving metrics of one run (or of several rounds pooled, with their total time).

    ``lead``: warm-ups that led into the measured requests with no pause (a sweep point) and
    so still ran in the measured window. The server's capacity went to them too, so output
    tok/s and requests/s count what the server did in the window, theirs included: the output
    tokens streamed and the requests finished after the first measured request was sent.
    Latencies, token counts and goodput are the measured requests' alone.

    Output tok/s's 95% interval is the ratio estimator's over blocks of the same window
    (``output_tok_s_interval``). ``windows``: each round's (start, end) where rounds were
    pooled (their lengths add up to ``duration_s``); one run's window is found from its
    requests. ``throughput_ci``: the caller's interval, kept only where none can be computed
    here and only if it holds the value."""
    ok = [r for r in results if r.ok]
    failed = len(results) - len(ok)
    out: dict[str, Metric] = {}
    out["completed"] = metric("completed", len(ok))
    out["failed"] = metric("failed", failed)
    out["error_rate"] = metric("error_rate", failed / len(results) if results else 0.0)
    if not ok or duration_s <= 0:
        return out
    out_tokens = [r.output_tokens for r in ok]
    in_tokens = [
        r.usage_prompt_tokens if r.usage_prompt_tokens is not None else (r.spec.input_tokens or 0)
        for r in ok
    ]
    total_out, total_in = sum(out_tokens), sum(in_tokens)
    spread: dict[str, float] = {"n": len(ok)}
    window_start = min(r.start for r in results)
    lead_out = sum(tokens_after(r, window_start) for r in lead if r.ok)
    lead_done = sum(1 for r in lead if r.ok and r.end is not None and r.end > window_start)
    window_out = total_out + lead_out
    spread.update(
        output_tok_s_interval(
            results, duration_s, window_out / duration_s, lead, windows, throughput_ci
        )
    )
    if lead:
        spread["lead_tokens"] = float(lead_out)
    out["output_tok_s"] = metric("output_tok_s", window_out / duration_s, spread)
    out["total_tok_s"] = metric("total_tok_s", (total_in + window_out) / duration_s, {"n": len(ok)})
    out["requests_per_s"] = metric(
        "requests_per_s", (len(ok) + lead_done) / duration_s, {"n": len(ok) + lead_done}
    )
    if slo:
        good = sum(meets_slo(r, slo) for r in ok)
        out["goodput_req_s"] = metric(
            "goodput_req_s",
            good / duration_s,
            {"good": good, **{f"slo_{k}": v for k, v in slo.items()}},
        )
    start = min(r.start for r in results)
    out["peak_output_tok_s"] = metric(
        "peak_output_tok_s", peak_per_second([t for r in ok for t in r.token_times], start)
    )
    out["peak_concurrency"] = metric("peak_concurrency", peak_in_flight(results))
    out["duration_s"] = metric("duration_s", duration_s)
    out.update(_latency_metrics(ok))
    out.update(_token_metrics(ok, in_tokens, out_tokens, expect_full_output))
    out.update(_cache_and_server_metrics(ok))
    for name, value in (server or {}).items():
        if name in SERVING_METRICS and math.isfinite(value):
            out[name] = metric(name, value)
    return out


def result_rows(results: Sequence[RequestResult]) -> list[dict[str, Any]]:
    """Per-request records (input/output tokens, latencies) for extra_info and debugging."""
    rows = []
    for r in results:
        rows.append(
            {
                "ok": r.ok,
                "input_tokens": r.usage_prompt_tokens,
                "expected_input_tokens": r.spec.input_tokens,
                "output_tokens": r.usage_completion_tokens,
                "cached_prompt_tokens": None if r.prompt_cache is None else r.prompt_cache[0],
                "client_chunks": r.client_output_chunks,
                "max_tokens": r.spec.max_tokens,
                "ttft_ms": None if r.ttft is None else round(r.ttft * 1000, 3),
                "e2el_ms": None if r.e2el is None else round(r.e2el * 1000, 3),
                **({"error": r.error[:300]} if r.error else {}),
                **(
                    {"turn": r.spec.turn, "conversation": r.spec.conversation}
                    if r.spec.turn
                    else {}
                ),
                **({"arrival_s": r.spec.arrival} if r.spec.arrival is not None else {}),
            }
        )
    return rows
