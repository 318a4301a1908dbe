"""The serving metrics' definitions, as data: each metric's name, unit, direction and meaning,
what vLLM, GuideLLM and AIPerf call it, and where their result files store it.

Apart from ``metrics`` (which computes the values) because ``report.peers`` and the docs
tables read only these; ``metrics`` re-exports ``ServingMetricDef``, ``SERVING_METRICS``,
``definition_table`` and ``peer_field_table`` so their import path stays.
"""

from __future__ import annotations

from dataclasses import dataclass


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
