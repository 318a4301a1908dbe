"""Serving metrics, defined once: what each number means, its unit and direction, and what
vLLM, GuideLLM and AIPerf call it (they disagree on TPOT and ITL, so the mapping is data).

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
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.metrics.stats import mean_ci, summarize
from pytest_gpubench.serving.client import RequestResult


@dataclass(frozen=True)
class ServingMetricDef:
    name: str
    unit: str
    higher_is_better: bool
    definition: str
    vllm: str = "-"
    guidellm: str = "-"
    aiperf: str = "-"
    # Where the peers' result files store this metric, as (field, the unit the file uses);
    # ``report/peers.py`` reads them through these and converts to ``unit``. Only where the
    # peer's number has our definition (docs/guides/baselines-and-comparing.md: where they differ).
    # vllm_field: a key of `vllm bench serve --save-result` JSON ("a/b" divides two keys;
    #   mean_<x>_ms brings its median/std/p<N> keys as spread).
    # guidellm_field: a path under one benchmark of a GuideLLM JSON report, to a number or a
    #   distribution (its mean is the value, its std_dev, percentiles and count the spread).
    # llama_bench_field: "<test>.<field>" of a llama-bench -o json/jsonl test, the test being
    #   pp (prompt only), tg (generation only) or pg (both); "ns/token" divides by its tokens.
    vllm_field: tuple[str, str] | None = None
    guidellm_field: tuple[str, str] | None = None
    llama_bench_field: tuple[str, str] | None = None


_DEFS: tuple[ServingMetricDef, ...] = (
    ServingMetricDef(
        "ttft_ms",
        "ms",
        False,
        "request sent -> first streamed chunk that carries generated text",
        "ttft",
        "time_to_first_token_ms",
        "time_to_first_token",
        vllm_field=("mean_ttft_ms", "ms"),
        guidellm_field=("metrics.time_to_first_token_ms.successful", "ms"),
    ),
    ServingMetricDef(
        "tpot_ms",
        "ms",
        False,
        "per request (e2el - ttft) / (output tokens - 1): decode time per token, first token "
        "excluded; mean over requests",
        "tpot",
        "inter_token_latency_ms",
        "inter_token_latency",
        vllm_field=("mean_tpot_ms", "ms"),
        guidellm_field=("metrics.inter_token_latency_ms.successful", "ms"),
        llama_bench_field=("tg.avg_ns", "ns/token"),
    ),
    ServingMetricDef(
        "itl_ms",
        "ms",
        False,
        "every gap between consecutive text chunks, pooled over all requests",
        "itl",
        "-",
        "inter_chunk_latency",
        vllm_field=("mean_itl_ms", "ms"),
    ),
    ServingMetricDef(
        "e2el_ms",
        "ms",
        False,
        "request sent -> last streamed chunk with choices (the finish chunk)",
        "e2el",
        "request_latency",
        "request_latency",
        vllm_field=("mean_e2el_ms", "ms"),
        guidellm_field=("metrics.request_latency.successful", "s"),
        llama_bench_field=("pg.avg_ns", "ns"),
    ),
    ServingMetricDef(
        "output_tok_s",
        "tok/s",
        True,
        "sum of output tokens (server usage) / run duration",
        "output_throughput",
        "output_tokens_per_second",
        "output_token_throughput",
        vllm_field=("output_throughput", "tok/s"),
        guidellm_field=("metrics.output_tokens_per_second.successful", "tok/s"),
    ),
    ServingMetricDef(
        "total_tok_s",
        "tok/s",
        True,
        "sum of input + output tokens / run duration",
        "total_token_throughput",
        "tokens_per_second",
        "total_token_throughput",
        vllm_field=("total_token_throughput", "tok/s"),
        guidellm_field=("metrics.tokens_per_second.successful", "tok/s"),
        llama_bench_field=("pg.avg_ts", "tok/s"),
    ),
    ServingMetricDef(
        "requests_per_s",
        "req/s",
        True,
        "completed requests / run duration",
        "request_throughput",
        "requests_per_second",
        "request_throughput",
        vllm_field=("request_throughput", "req/s"),
        guidellm_field=("metrics.requests_per_second.successful", "req/s"),
    ),
    ServingMetricDef(
        "goodput_req_s",
        "req/s",
        True,
        "completed requests meeting every SLO (ttft_ms, tpot_ms, e2el_ms limits) / duration",
        "request_goodput",
        "-",
        "goodput",
        vllm_field=("request_goodput", "req/s"),
    ),
    ServingMetricDef(
        "peak_output_tok_s",
        "tok/s",
        True,
        "most output chunks in any 1-second bucket of the run (a peak, never a mean)",
        "max_output_tokens_per_s",
        "-",
        "-",
        vllm_field=("max_output_tokens_per_s", "tok/s"),
    ),
    ServingMetricDef(
        "peak_concurrency",
        "requests",
        True,
        "most requests in flight at once",
        "- (its max_concurrent_requests counts requests active within a 1-s bucket)",
        "request_concurrency (max)",
        "-",
        guidellm_field=("metrics.request_concurrency.successful.max", "requests"),
    ),
    ServingMetricDef(
        "duration_s",
        "s",
        False,
        "first measured request sent -> last measured request finished",
        "duration",
        "duration",
        "benchmark_duration",
        vllm_field=("duration", "s"),
        guidellm_field=("duration", "s"),
    ),
    ServingMetricDef(
        "completed",
        "requests",
        True,
        "requests that streamed text and ended",
        "completed",
        "successful requests",
        "request_count",
        vllm_field=("completed", "requests"),
        guidellm_field=("metrics.request_totals.successful", "requests"),
    ),
    ServingMetricDef(
        "failed",
        "requests",
        False,
        "requests that errored, timed out or sent malformed SSE",
        "failed",
        "errored requests",
        "error_request_count",
        vllm_field=("failed", "requests"),
        guidellm_field=("metrics.request_totals.errored", "requests"),
    ),
    ServingMetricDef("error_rate", "fraction", False, "failed / (completed + failed)"),
    ServingMetricDef(
        "input_tokens",
        "tok/request",
        True,
        "prompt tokens per request (server usage; the workload's count as fallback)",
        "total_input_tokens / completed",
        "prompt_token_count",
        "input_sequence_length",
        vllm_field=("total_input_tokens/completed", "tok/request"),
        guidellm_field=("metrics.prompt_token_count.successful", "tok/request"),
    ),
    ServingMetricDef(
        "output_tokens",
        "tok/request",
        True,
        "output tokens per request (server usage; client chunk count as fallback)",
        "total_output_tokens / completed",
        "output_token_count",
        "output_sequence_length",
        vllm_field=("total_output_tokens/completed", "tok/request"),
        guidellm_field=("metrics.output_token_count.successful", "tok/request"),
    ),
    ServingMetricDef(
        "short_outputs",
        "requests",
        False,
        "completed requests that produced fewer output tokens than max_tokens "
        "although the workload asked for exactly that many",
        "-",
        "-",
        "osl_mismatch_diff_pct",
    ),
    ServingMetricDef(
        "token_count_mismatches",
        "requests",
        False,
        "requests whose usage is missing or reports fewer output tokens than "
        "text chunks the client received",
    ),
    ServingMetricDef(
        "decode_tok_s",
        "tok/s",
        True,
        "one user's decode speed: output tokens after the first / time after the first "
        "token, pooled over the requests (depth sweep)",
        "-",
        "-",
        "output_token_throughput_per_user",
        llama_bench_field=("tg.avg_ts", "tok/s"),
    ),
    ServingMetricDef(
        "prefill_tok_s",
        "tok/s",
        True,
        "per request input tokens / ttft (depth sweep)",
        "-",
        "-",
        "prefill_throughput_per_user",
        llama_bench_field=("pp.avg_ts", "tok/s"),
    ),
    ServingMetricDef(
        "cached_prompt_fraction",
        "fraction",
        False,
        "prompt tokens the server reports it took from its prefix cache / prompt tokens "
        "(usage.prompt_tokens_details.cached_tokens, or llama.cpp timings cache_n); random "
        "prompts are drawn anew for every point and round, so only a shared prefix should hit",
    ),
    ServingMetricDef(
        "server_stall_fraction",
        "fraction",
        False,
        "time the server's own log shows its main loop blocking every request / the time the "
        "run's log lines span (llama.cpp: copies into and evictions from its host prompt "
        "cache, --cache-ram); servers the plugin started only",
    ),
    ServingMetricDef(
        "server_prefill_tok_s",
        "tok/s",
        True,
        "llama.cpp timings: sum prompt_n / sum prompt_ms (per-request speed)",
    ),
    ServingMetricDef(
        "server_decode_tok_s",
        "tok/s",
        True,
        "llama.cpp timings: sum predicted_n / sum predicted_ms (per-request speed)",
    ),
    ServingMetricDef(
        "server_ttft_ms",
        "ms",
        False,
        "vLLM /metrics: mean of time_to_first_token_seconds over the run",
    ),
    ServingMetricDef(
        "server_itl_ms",
        "ms",
        False,
        "vLLM /metrics: mean of inter_token_latency_seconds over the run",
    ),
    ServingMetricDef(
        "server_e2el_ms",
        "ms",
        False,
        "vLLM /metrics: mean of e2e_request_latency_seconds over the run",
    ),
    ServingMetricDef(
        "server_queue_ms",
        "ms",
        False,
        "vLLM /metrics: mean of request_queue_time_seconds over the run",
    ),
    ServingMetricDef(
        "server_output_tokens",
        "tok",
        True,
        "output tokens the server counted over the run (vLLM generation_tokens_total "
        "or llama.cpp tokens_predicted_total delta)",
    ),
    ServingMetricDef(
        "output_tok_s_per_user",
        "tok/s",
        True,
        "1000 / tpot_ms: the speed one user sees its reply stream at after the first token "
        "(sweep and capacity points; the x axis of the Pareto chart)",
        "-",
        "-",
        "output_token_throughput_per_user",
    ),
    ServingMetricDef(
        "output_tok_s_per_gpu",
        "tok/s",
        True,
        "output_tok_s / the device profile's GPU count (1 for a CPU or a single GPU; sweep "
        "and capacity points; the y axis of the Pareto chart)",
    ),
    ServingMetricDef(
        "capacity_users",
        "users",
        True,
        "serve_bench.capacity: the highest concurrency whose chosen percentile meets every "
        "SLO (bracket, bisect, boundary re-measured)",
    ),
)

SERVING_METRICS: dict[str, ServingMetricDef] = {d.name: d for d in _DEFS}

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


def peak_in_flight(results: Sequence[RequestResult]) -> int:
    events = []
    for r in results:
        events.append((r.start, 1))
        events.append((r.start + (r.e2el or 0.0), -1))
    peak = cur = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        cur += delta
        peak = max(peak, cur)
    return peak


def tokens_after(r: RequestResult, t0: float) -> float:
    """The output tokens ``r`` streamed after ``t0``: its usage count, in the share of its
    text chunks that arrived after ``t0`` (chunks and tokens differ where a chunk holds more)."""
    if not r.token_times:
        return 0.0
    late = sum(1 for t in r.token_times if t > t0)
    return r.output_tokens * late / len(r.token_times)


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


def serving_metrics(
    results: Sequence[RequestResult],
    duration_s: float,
    *,
    slo: Mapping[str, float] | None = None,
    expect_full_output: bool = True,
    throughput_ci: tuple[float, float] | None = None,
    server: Mapping[str, float] | None = None,
    lead: Sequence[RequestResult] = (),
) -> dict[str, Metric]:
    """All serving metrics of one run (or of several rounds pooled, with their total time).

    ``lead``: warm-ups that led into the measured requests with no pause (a sweep point) and
    so still ran in the measured window. The server's capacity went to them too, so output
    tok/s and requests/s count what the server did in the window, theirs included: the output
    tokens streamed and the requests finished after the first measured request was sent.
    Latencies, token counts and goodput are the measured requests' alone."""
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
    if throughput_ci is not None:
        spread["ci95_low"], spread["ci95_high"] = throughput_ci
    window_start = min(r.start for r in results)
    lead_out = sum(tokens_after(r, window_start) for r in lead if r.ok)
    lead_done = sum(1 for r in lead if r.ok and r.end is not None and r.end > window_start)
    if lead:
        spread["lead_tokens"] = float(lead_out)
    window_out = total_out + lead_out
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
    for name, values in (
        ("ttft_ms", [r.ttft for r in ok if r.ttft is not None]),
        ("tpot_ms", [r.tpot for r in ok if r.tpot is not None]),
        ("itl_ms", [g for r in ok for g in r.itl]),
        ("e2el_ms", [r.e2el for r in ok if r.e2el is not None]),
    ):
        if values:
            dist = distribution(values)
            out[name] = metric(name, dist.pop("mean"), dist)
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
    for name, value in (server or {}).items():
        if name in SERVING_METRICS and math.isfinite(value):
            out[name] = metric(name, value)
    return out


def batch_means_ci(
    results: Sequence[RequestResult], start: float, block: int
) -> tuple[float, float, int] | None:
    """95% interval of output tok/s by batch means over blocks of ``block`` completions.

    In a closed loop the requests finishing in one block produced their tokens over roughly
    the block's span, so each block's tokens / span is one throughput sample; blocks several
    requests long are close to independent. None with fewer than 3 blocks. The t interval's
    lower end is clamped at 0: three noisy blocks can put it below zero (a sweep point on the
    CPU read -428 .. 6,333 tok/s), and no throughput is negative.
    """
    done = sorted((r for r in results if r.ok and r.end is not None), key=lambda r: r.end)
    rates = []
    prev = start
    for i in range(block, len(done) + 1, block):
        chunk = done[i - block : i]
        span = chunk[-1].end - prev  # type: ignore[operator]
        if span > 0:
            rates.append(sum(r.output_tokens for r in chunk) / span)
        prev = chunk[-1].end  # type: ignore[assignment]
    if len(rates) < 3:
        return None
    low, high = mean_ci(rates)
    return max(0.0, low), high, len(rates)


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


def definition_table() -> list[str]:
    """The metric table of docs/reference/metrics.md, generated from the definitions above."""
    lines = [
        "| ours | unit | better | definition | vLLM | GuideLLM | AIPerf |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in _DEFS:
        better = "higher" if d.higher_is_better else "lower"
        lines.append(
            f"| `{d.name}` | {d.unit} | {better} | {d.definition} | {d.vllm} | {d.guidellm} "
            f"| {d.aiperf} |"
        )
    return lines


def peer_field_table() -> list[str]:
    """The table of the peers' fields each metric is read from (report/peers.py), in docs."""

    def cell(field: tuple[str, str] | None) -> str:
        return f"`{field[0]}` ({field[1]})" if field else "-"

    lines = [
        "| ours | unit | `vllm bench serve --save-result` | GuideLLM JSON (per benchmark) "
        "| llama-bench json/jsonl |",
        "|---|---|---|---|---|",
    ]
    for d in _DEFS:
        if d.vllm_field or d.guidellm_field or d.llama_bench_field:
            lines.append(
                f"| `{d.name}` | {d.unit} | {cell(d.vllm_field)} | {cell(d.guidellm_field)} "
                f"| {cell(d.llama_bench_field)} |"
            )
    return lines
