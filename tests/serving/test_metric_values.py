"""The serving metrics' values, checked against numbers worked out by hand for a small run.

Every expected value below is derived in the comments from the request timings, not read back
from the code: goodput is the fraction of completed requests meeting every SLO, TPOT is
(e2el - ttft) / (usage tokens - 1), throughput is tokens / duration, percentiles interpolate
linearly. Times are multiples of 1/8 s so the arithmetic is exact in binary floating point.
"""

from __future__ import annotations

import math

import pytest

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.serving.client import RequestResult, RequestSpec
from pytest_gpubench.serving.metrics import (
    SERVING_METRICS,
    batch_means_ci,
    check_slo,
    distribution,
    error_summary,
    meets_slo,
    metric,
    peak_in_flight,
    peak_per_second,
    result_rows,
    serving_metrics,
)

SPEC = RequestSpec("completions", {"prompt": "x"}, max_tokens=4, input_tokens=10)
T975 = {1: 12.706204736174707, 2: 4.302652729749464, 4: 2.7764451051977987}  # t tables


def ok(start, ttft, times, usage=None, prompt=None, timings=None) -> RequestResult:
    return RequestResult(
        SPEC,
        start=start,
        ok=True,
        ttft=ttft,
        end=times[-1],
        token_times=list(times),
        usage_prompt_tokens=prompt,
        usage_completion_tokens=usage,
        server_timings=timings,
    )


def run() -> list[RequestResult]:
    return [
        # r1: e2el 0.5, ttft 0.125, 4 tokens -> tpot (0.5 - 0.125) / 3 = 0.125
        ok(0.0, 0.125, [0.125, 0.25, 0.375, 0.5], usage=4, prompt=10),
        # r2: e2el 1.125, ttft 0.375 -> tpot 0.75 / 3 = 0.25
        ok(0.5, 0.375, [0.875, 1.125, 1.375, 1.625], usage=4, prompt=12),
        # r3: the server says 3 tokens, the client saw 2 chunks: tpot uses usage,
        # (0.75 - 0.25) / (3 - 1) = 0.25 (the chunk count would give 0.5); short (3 < 4)
        ok(1.0, 0.25, [1.25, 1.75], usage=3, prompt=None),
        # r4: failed
        RequestResult(SPEC, start=1.25, ok=False, error="HTTP 500: boom\ntrace"),
        # r5: no usage: 4 chunks counted, one token-count mismatch; tpot 0.375 / 3 = 0.125
        ok(2.0, 0.125, [2.125, 2.25, 2.375, 2.5], usage=None, prompt=8),
    ]


def values(m):
    return {k: v.value for k, v in m.items()}


def test_tpot_uses_the_servers_token_count_not_the_chunk_count() -> None:
    r = run()
    assert [x.tpot for x in r] == [0.125, 0.25, 0.25, None, 0.125]
    assert [x.output_tokens for x in r] == [4, 4, 3, 0, 4]
    assert [x.e2el for x in r] == [0.5, 1.125, 0.75, None, 0.5]
    assert r[0].itl == [0.125, 0.125, 0.125]
    # one output token: no decode time to divide
    assert ok(0.0, 0.125, [0.125], usage=1).tpot is None
    assert ok(0.0, 0.125, [0.125, 0.25], usage=2).tpot == 0.125


def test_counts_throughput_and_token_totals() -> None:
    m = serving_metrics(run(), 2.5)
    v = values(m)
    assert v["completed"] == 4
    assert v["failed"] == 1
    assert v["error_rate"] == 1 / 5
    # output tokens 4 + 4 + 3 + 4 = 15; input 10 + 12 + 10 (workload's count) + 8 = 40
    assert v["output_tok_s"] == 15 / 2.5
    assert v["total_tok_s"] == 55 / 2.5
    assert v["requests_per_s"] == 4 / 2.5
    assert v["duration_s"] == 2.5
    assert v["input_tokens"] == 10.0
    assert m["input_tokens"].spread == {"min": 8, "max": 12, "total": 40}
    assert v["output_tokens"] == 15 / 4
    assert m["output_tokens"].spread == {"min": 3, "max": 4, "total": 15}
    assert m["output_tok_s"].spread == {"n": 4}
    assert m["total_tok_s"].spread == {"n": 4}
    assert m["requests_per_s"].spread == {"n": 4}
    assert "goodput_req_s" not in m  # no SLO asked
    assert v["short_outputs"] == 1  # r3: 3 of 4 tokens
    assert m["short_outputs"].spread == {"asked_tokens": 16.0, "got_tokens": 15.0}
    assert v["token_count_mismatches"] == 1  # r5 has no usage
    assert "server_prefill_tok_s" not in m and "server_decode_tok_s" not in m


def test_units_and_directions_come_from_the_definitions() -> None:
    m = serving_metrics(run(), 2.5, slo={"ttft_ms": 1000})
    for name, x in m.items():
        d = SERVING_METRICS[name]
        assert (x.unit, x.higher_is_better, x.description) == (
            d.unit,
            d.higher_is_better,
            d.definition,
        ), name
    assert m["goodput_req_s"].higher_is_better and not m["ttft_ms"].higher_is_better


def test_latency_means_and_percentiles() -> None:
    m = serving_metrics(run(), 2.5)
    # ttft ms: 125, 375, 250, 125 -> mean 218.75, median (125 + 250) / 2
    assert m["ttft_ms"].value == 218.75
    assert m["ttft_ms"].spread["p50"] == 187.5
    assert m["ttft_ms"].spread["n"] == 4
    # tpot ms: 125, 250, 250, 125
    assert m["tpot_ms"].value == 187.5
    # itl pooled: 125 x3, 250 x3, 500, 125 x3 -> (6 * 125 + 3 * 250 + 500) / 10
    assert m["itl_ms"].value == 200.0
    assert m["itl_ms"].spread["n"] == 10
    assert m["itl_ms"].spread["max"] == 500.0
    # e2el ms: 500, 1125, 750, 500
    assert m["e2el_ms"].value == 718.75
    assert (m["e2el_ms"].spread["min"], m["e2el_ms"].spread["max"]) == (500.0, 1125.0)
    assert "mean" not in m["e2el_ms"].spread  # the mean is the value
    # 5 of 14 text chunks in second 0 (r1's four, r2's first), 5 in second 1, 4 in second 2
    assert m["peak_output_tok_s"].value == 5
    # r1 ends at 0.5 as r2 starts (not overlapping); r2 and r3 overlap; r4 has no duration
    assert m["peak_concurrency"].value == 2


def test_goodput_is_requests_meeting_every_slo_per_second() -> None:
    r = run()
    slo = {"ttft_ms": 250, "tpot_ms": 125}
    # r1: 125 <= 250, 125 <= 125 (at the limit meets) -> good
    # r2: ttft 375 > 250 -> not; r3: ttft 250 ok but tpot 250 > 125 -> not; r5 good
    assert [meets_slo(x, slo) for x in r if x.ok] == [True, False, False, True]
    m = serving_metrics(r, 2.5, slo=slo)
    assert m["goodput_req_s"].value == 2 / 2.5
    assert m["goodput_req_s"].spread == {"good": 2, "slo_ttft_ms": 250, "slo_tpot_ms": 125}
    # an e2el limit alone: e2el 500, 1125, 750, 500 ms under 750 -> r1, r3, r5
    assert serving_metrics(r, 2.5, slo={"e2el_ms": 750})["goodput_req_s"].value == 3 / 2.5
    # a limit nobody meets
    assert serving_metrics(r, 2.5, slo={"ttft_ms": 1})["goodput_req_s"].value == 0.0


def test_a_request_without_a_tpot_is_not_failed_by_a_tpot_slo() -> None:
    one_token = ok(0.0, 0.125, [0.125], usage=1)
    assert one_token.tpot is None
    assert meets_slo(one_token, {"tpot_ms": 1.0})
    assert not meets_slo(one_token, {"ttft_ms": 1.0})


def test_check_slo() -> None:
    assert check_slo(None) == {}
    assert check_slo({}) == {}
    out = check_slo({"ttft_ms": 200, "e2el_ms": "500"})
    assert out == {"ttft_ms": 200.0, "e2el_ms": 500.0}
    assert all(type(x) is float for x in out.values())
    with pytest.raises(GpubenchError, match=r"unknown SLO key\(s\) \['itl_ms'\]; use ttft_ms"):
        check_slo({"itl_ms": 10, "ttft_ms": 5})


def test_no_completed_requests_gives_only_the_counts() -> None:
    failed = [RequestResult(SPEC, ok=False, error="x")] * 3
    m = serving_metrics(failed, 2.0)
    assert values(m) == {"completed": 0, "failed": 3, "error_rate": 1.0}
    assert values(serving_metrics([], 2.0)) == {"completed": 0, "failed": 0, "error_rate": 0.0}
    # a run of no length has no rates
    assert set(serving_metrics(run(), 0.0)) == {"completed", "failed", "error_rate"}
    assert "output_tok_s" in serving_metrics(run(), 0.001)


def test_expect_full_output_off_counts_no_short_outputs() -> None:
    assert serving_metrics(run(), 2.5, expect_full_output=False)["short_outputs"].value == 0


def test_usage_below_the_chunk_count_is_a_mismatch() -> None:
    r = [ok(0.0, 0.125, [0.125, 0.25, 0.375], usage=2), ok(0.0, 0.125, [0.125, 0.25], usage=2)]
    assert serving_metrics(r, 1.0)["token_count_mismatches"].value == 1


def test_throughput_interval_is_recorded_on_output_tok_s() -> None:
    m = serving_metrics(run(), 2.5, throughput_ci=(5.0, 7.0))
    assert m["output_tok_s"].spread == {"n": 4, "ci95_low": 5.0, "ci95_high": 7.0}


def test_llamacpp_timings_pool_over_requests() -> None:
    r = [
        ok(
            0.0,
            0.125,
            [0.125, 0.25],
            usage=2,
            timings={"prompt_n": 100, "prompt_ms": 50.0, "predicted_n": 30, "predicted_ms": 60.0},
        ),
        ok(
            0.0,
            0.125,
            [0.125, 0.25],
            usage=2,
            timings={"prompt_n": 300, "prompt_ms": 150.0, "predicted_n": 10, "predicted_ms": 20.0},
        ),
        ok(0.0, 0.125, [0.125, 0.25], usage=2),
    ]
    m = serving_metrics(r, 1.0)
    # (100 + 300) tokens / (50 + 150) ms; (30 + 10) / (60 + 20) ms
    assert m["server_prefill_tok_s"].value == 2000.0
    assert m["server_decode_tok_s"].value == 500.0
    assert m["server_prefill_tok_s"].spread == {"n": 2}
    assert m["server_decode_tok_s"].spread == {"n": 2}
    no_decode = [ok(0, 0.125, [0.125, 0.25], usage=2, timings={"prompt_n": 4, "prompt_ms": 2.0})]
    m = serving_metrics(no_decode, 1.0)
    assert m["server_prefill_tok_s"].value == 2000.0 and "server_decode_tok_s" not in m


def test_server_side_metrics_are_taken_when_known_and_finite() -> None:
    server = {"server_ttft_ms": 12.5, "server_itl_ms": math.nan, "not_a_metric": 1.0}
    m = serving_metrics(run(), 2.5, server=server)
    assert m["server_ttft_ms"].value == 12.5
    assert m["server_ttft_ms"].unit == "ms"
    assert "server_itl_ms" not in m and "not_a_metric" not in m


def test_distribution_in_ms() -> None:
    d = distribution([0.1, 0.2, 0.3, 0.4, 0.5])
    # ms: 100..500; linear percentiles: p90 at rank 3.6 -> 400 + 0.6 * 100
    assert d["n"] == 5
    assert d["mean"] == pytest.approx(300.0)
    assert d["p50"] == pytest.approx(300.0)
    assert d["p90"] == pytest.approx(460.0)
    assert d["p95"] == pytest.approx(480.0)
    assert d["p99"] == pytest.approx(496.0)
    assert (d["min"], d["max"]) == (pytest.approx(100.0), pytest.approx(500.0))
    std = math.sqrt(sum((x - 300.0) ** 2 for x in (100, 200, 300, 400, 500)) / 4)
    assert d["std"] == pytest.approx(std)
    half = T975[4] * std / math.sqrt(5)
    assert d["ci95_low"] == pytest.approx(300.0 - half)
    assert d["ci95_high"] == pytest.approx(300.0 + half)


def test_peak_per_second() -> None:
    assert peak_per_second([], 0.0) == 0.0
    # relative to start 10: buckets 0, 0, 1, 1, 1, 3; a time before the start is dropped
    assert peak_per_second([10.1, 10.9, 11.0, 11.5, 11.99, 13.2, 9.0, 9.5, 9.7, 9.9], 10.0) == 3


def test_peak_in_flight() -> None:
    def span(start, end):
        return RequestResult(SPEC, start=start, end=end, ok=True)

    assert peak_in_flight([]) == 0
    assert peak_in_flight([span(0, 1), span(1, 2)]) == 1  # back to back
    assert peak_in_flight([span(0, 2), span(1, 3), span(1.5, 1.75)]) == 3
    assert peak_in_flight([span(0, 2), span(3, 4)]) == 1


def test_batch_means_interval() -> None:
    def done(end, tokens=10, good=True):
        return RequestResult(SPEC, start=0.0, end=end, ok=good, usage_completion_tokens=tokens)

    results = [done(1), done(2), done(3), done(4.5), done(5), done(6.5), done(7)]
    results.append(done(0.5, good=False))  # failures are not completions
    # blocks of 2 from start 0: 20 tok / 2 s, 20 / 2.5, 20 / 2; the 7th completion is left over
    rates = [10.0, 8.0, 10.0]
    mean = sum(rates) / 3
    sem = math.sqrt(sum((x - mean) ** 2 for x in rates) / 2) / math.sqrt(3)
    low, high, n = batch_means_ci(list(reversed(results)), 0.0, 2)
    assert n == 3
    assert low == pytest.approx(mean - T975[2] * sem)
    assert high == pytest.approx(mean + T975[2] * sem)
    assert batch_means_ci(results[:5], 0.0, 2) is None  # two blocks only
    # a block of zero span gives no sample
    same = [done(1), done(1), done(1), done(1), done(2), done(3), done(4)]
    low, high, n = batch_means_ci(same, 0.0, 1)
    assert n == 4  # five blocks, one with no span
    # three blocks far apart: 10 tok / 1 s, 10 / 0.01 s, 10 / 1 s; the t interval's lower end
    # (mean 340 - 4.30 * sem 330 < 0) is clamped at 0, the upper end is left as it is
    wild = [done(1), done(1.01), done(2.01)]
    rates = [10.0, 1000.0, 10.0]
    mean = sum(rates) / 3
    sem = math.sqrt(sum((x - mean) ** 2 for x in rates) / 2) / math.sqrt(3)
    assert mean - T975[2] * sem < 0
    low, high, n = batch_means_ci(wild, 0.0, 1)
    assert (low, n) == (0.0, 3)
    assert high == pytest.approx(mean + T975[2] * sem)


def test_error_summary_groups_first_lines() -> None:
    r = [
        RequestResult(SPEC, ok=False, error="HTTP 500: boom\nstack"),
        RequestResult(SPEC, ok=False, error="HTTP 500: boom\nother stack"),
        RequestResult(SPEC, ok=False, error="timeout"),
        RequestResult(SPEC, ok=False),
        RequestResult(SPEC, ok=True),
    ]
    assert error_summary(r) == "2 x HTTP 500: boom; 1 x timeout; 1 x ?"
    assert error_summary(r, limit=1) == "2 x HTTP 500: boom"
    assert error_summary([RequestResult(SPEC, ok=False, error="e" * 300)]) == "1 x " + "e" * 200


def test_result_rows() -> None:
    rows = result_rows(run())
    assert rows[0] == {
        "ok": True,
        "input_tokens": 10,
        "expected_input_tokens": 10,
        "output_tokens": 4,
        "cached_prompt_tokens": None,  # the server said nothing about its cache
        "client_chunks": 4,
        "max_tokens": 4,
        "ttft_ms": 125.0,
        "e2el_ms": 500.0,
    }
    assert rows[3]["error"] == "HTTP 500: boom\ntrace"
    assert rows[3]["ttft_ms"] is None and rows[3]["e2el_ms"] is None
    assert result_rows([RequestResult(SPEC, ok=False, error="e" * 400)])[0]["error"] == "e" * 300
    assert result_rows([RequestResult(SPEC, ttft=0.0012344, end=1.0)])[0]["ttft_ms"] == 1.234


def test_cached_prompt_fraction_from_usage_or_llamacpp_timings() -> None:
    """The share of prompt tokens the server took from its cache, pooled over requests:
    OpenAI usage details first, llama.cpp's timings (cache_n reused + prompt_n computed)
    where usage has none; requests reporting neither are left out of the share."""
    usage = RequestResult(SPEC, start=0.0, ok=True, ttft=0.1, end=0.5, token_times=[0.1, 0.5])
    usage.usage_prompt_tokens, usage.usage_completion_tokens = 100, 2
    usage.usage_cached_tokens = 90
    timed = RequestResult(SPEC, start=0.0, ok=True, ttft=0.1, end=0.5, token_times=[0.1, 0.5])
    timed.usage_prompt_tokens, timed.usage_completion_tokens = 300, 2
    timed.server_timings = {"cache_n": 0.0, "prompt_n": 300.0, "prompt_ms": 30.0}
    silent = RequestResult(SPEC, start=0.0, ok=True, ttft=0.1, end=0.5, token_times=[0.1, 0.5])
    silent.usage_prompt_tokens, silent.usage_completion_tokens = 50, 2
    m = serving_metrics([usage, timed, silent], 1.0)["cached_prompt_fraction"]
    assert m.value == pytest.approx(90 / 400)  # (90 + 0) / (100 + 300)
    assert m.spread == {"n": 2, "cached_tokens": 90.0, "prompt_tokens": 400.0}
    assert m.higher_is_better is False
    assert "cached_prompt_fraction" not in serving_metrics([silent], 1.0)


def test_metric_builds_from_the_definition() -> None:
    m = metric("ttft_ms", 3, {"n": 2})
    assert (m.name, m.value, m.unit, m.higher_is_better, m.spread) == (
        "ttft_ms",
        3.0,
        "ms",
        False,
        {"n": 2},
    )
    assert type(m.value) is float
    assert metric("completed", 1).spread == {}


def test_error_summary_shows_five_kinds_by_default() -> None:
    r = [RequestResult(SPEC, ok=False, error=f"e{i}") for i in range(7)]
    assert error_summary(r) == "; ".join(f"1 x e{i}" for i in range(5))


def test_check_slo_names_the_keys_it_knows() -> None:
    with pytest.raises(GpubenchError) as info:
        check_slo({"itl_ms": 10})
    assert str(info.value) == (
        "unknown SLO key(s) ['itl_ms']; use ttft_ms, tpot_ms, e2el_ms (milliseconds)"
    )


def test_input_tokens_fall_back_to_the_workload_then_zero() -> None:
    unknown = RequestSpec("completions", {"prompt": "x"}, max_tokens=2, input_tokens=None)
    r = RequestResult(
        unknown, ok=True, ttft=0.125, end=0.25, token_times=[0.125, 0.25], usage_completion_tokens=2
    )
    m = serving_metrics([r], 1.0)
    assert m["input_tokens"].value == 0.0
    assert m["total_tok_s"].value == 2.0


def test_llamacpp_timings_with_missing_fields() -> None:
    def with_timings(t):
        return ok(0.0, 0.125, [0.125, 0.25], usage=2, timings=t)

    # a missing field counts as 0 tokens / 0 ms
    r = [
        with_timings({"prompt_n": 10, "prompt_ms": 0.5, "predicted_n": 3, "predicted_ms": 0.5}),
        with_timings({"prompt_ms": 0.5, "predicted_ms": 0.25}),
        with_timings({"prompt_n": 10, "predicted_n": 3}),
    ]
    m = serving_metrics(r, 1.0)
    assert m["server_prefill_tok_s"].value == 20 / 1.0 * 1000.0
    assert m["server_decode_tok_s"].value == 6 / 0.75 * 1000.0
    # no time measured: no speed, whatever the token count
    m = serving_metrics([with_timings({"prompt_n": 10, "predicted_n": 3})], 1.0)
    assert "server_prefill_tok_s" not in m and "server_decode_tok_s" not in m


def test_result_rows_round_to_microseconds() -> None:
    row = result_rows([RequestResult(SPEC, start=1.0, ttft=0.0012344, end=1.0012346)])[0]
    assert row["ttft_ms"] == 1.234
    assert row["e2el_ms"] == 1.235


def test_readme_peer_field_table_matches_the_code() -> None:
    from pathlib import Path

    from pytest_gpubench.serving.metrics import peer_field_table

    lines = peer_field_table()
    assert lines[0].startswith("| ours | unit | `vllm bench serve --save-result` |")
    assert (
        "| `ttft_ms` | ms | `mean_ttft_ms` (ms) | `metrics.time_to_first_token_ms.successful` (ms) "
        "| - |"
    ) in lines
    assert not any(line.startswith("| `error_rate`") for line in lines)  # no peer field
    page = Path(__file__).resolve().parents[2] / "docs" / "reference" / "metrics.md"
    text = page.read_text()
    for line in lines:
        assert line in text, line


# Equivalent mutants (scripts/mutation.py lists them):
# - peak_per_second: `if buckets.size else 0.0` -> `or True` / `else 1.0`: ``times`` is non-empty
#   there (checked above it), so ``buckets.size`` is never 0 and the else branch is dead.
# - peak_in_flight: `sorted(events, key=lambda e: (e[0], e[1]))` -> `sorted(events)`: the
#   events are (time, delta) pairs, so the default tuple order is the same order.
