"""``serve_bench`` against a real local HTTP server, through real pytest runs.

The server is the stub (pytest_gpubench/testing/stub_server.py): these tests are about what
the fixture records and how it fails, which needs a server that can be told to fail.
Live engines are exercised in tests/integration.
"""

from __future__ import annotations

import json

import pytest

from pytest_gpubench.serving.metrics import SERVING_METRICS

from plumbing.leftovers import failure_lines
from plumbing.servers import SERVER_CLASSES

SERVER = (
    """
import pytest
"""
    + SERVER_CLASSES
    + """
URL = {url!r}
"""
)


def bench_file(pytester: pytest.Pytester, url: str, body: str) -> None:
    pytester.makepyfile(SERVER.format(url=url) + body)


def run_json(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu", "-W", "default", *args)
    path = pytester.path / "out.json"
    return result, json.loads(path.read_text()) if path.exists() else {}


def test_every_metric_is_recorded_with_unit_and_direction(pytester, stub_server) -> None:
    bench_file(
        pytester,
        stub_server.base_url,
        """
def test_serve(serve_bench):
    r = serve_bench(Server(URL), input_len=32, output_len=16, num_prompts=30, concurrency=4,
                    warmups=3, slo={"ttft_ms": 10000})
    assert r.failed == 0 and r.completed == 30
""",
    )
    result, data = run_json(pytester)
    result.assert_outcomes(passed=1)
    bench = data["benchmarks"][0]
    assert bench["stats"]["rounds"] == 1
    metrics = bench["extra_info"]["metrics"]
    for name in (
        "ttft_ms",
        "tpot_ms",
        "itl_ms",
        "e2el_ms",
        "output_tok_s",
        "total_tok_s",
        "requests_per_s",
        "goodput_req_s",
        "peak_output_tok_s",
        "peak_concurrency",
        "completed",
        "failed",
        "error_rate",
        "input_tokens",
        "output_tokens",
        "short_outputs",
        "token_count_mismatches",
        "duration_s",
        "server_prefill_tok_s",
        "server_decode_tok_s",
    ):
        m = metrics[name]
        assert m["unit"] == SERVING_METRICS[name].unit, name
        assert m["higher_is_better"] is SERVING_METRICS[name].higher_is_better, name
    for name in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"):
        assert {"std", "p50", "p90", "p95", "p99", "ci95_low", "ci95_high"} <= set(
            metrics[name]["spread"]
        )
    assert metrics["completed"]["value"] == 30
    assert metrics["output_tokens"]["value"] == 16  # per request, from server usage
    assert metrics["input_tokens"]["value"] == 32  # exact, through the server's /tokenize
    assert metrics["short_outputs"]["value"] == 0
    assert metrics["peak_concurrency"]["value"] <= 4
    assert metrics["output_tok_s"]["value"] == pytest.approx(
        30 * 16 / metrics["duration_s"]["value"]
    )
    assert metrics["peak_output_tok_s"]["description"].endswith("(a peak, never a mean)")
    serving = bench["extra_info"]["serving"]
    assert serving["requests_used"] == 30 and serving["warmups"] == 3
    rows = bench["extra_info"]["requests"]
    assert len(rows) == 30  # warm-ups are not among the measured requests
    assert {(r["input_tokens"], r["output_tokens"], r["max_tokens"]) for r in rows} == {
        (32, 16, 16)
    }
    result.stdout.fnmatch_lines(["*test_serve * output_tok_s * tok/s *higher*"])


def test_warmups_are_sent_but_not_measured(pytester, start_stub) -> None:
    stub = start_stub()
    bench_file(
        pytester,
        stub.base_url,
        """
import httpx

def requests_so_far():
    text = httpx.get(URL + "/metrics").text
    return float(text.split("stub:requests_total ")[1].split()[0])

def test_warm(serve_bench):
    before = requests_so_far()
    r = serve_bench(Server(URL), input_len=8, output_len=4, num_prompts=6, warmups=5, rounds=2,
                    concurrency=2)
    assert requests_so_far() - before == 2 * (5 + 6)
    assert r.requests_used == 12
""",
    )
    result, data = run_json(pytester)
    result.assert_outcomes(passed=1)
    assert data["benchmarks"][0]["stats"]["rounds"] == 2
    spread = data["benchmarks"][0]["extra_info"]["metrics"]["output_tok_s"]["spread"]
    assert spread["rounds"] == 2 and spread["ci95_low"] <= spread["ci95_high"]


def test_error_rate_above_the_threshold_fails_with_a_summary(pytester, start_stub) -> None:
    stub = start_stub("--fail-every", "4", "--malformed-every", "5")
    bench_file(
        pytester,
        stub.base_url,
        """
def test_flaky(serve_bench):
    serve_bench(Server(URL), input_len=8, output_len=8, num_prompts=20)
""",
    )
    result, data = run_json(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*serve_bench: 8 of 20 requests failed (error rate 40.0% > allowed 0.0%): "
            "5 x HTTP 500: *injected failure*; 3 x malformed SSE event*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    # the numbers are still recorded for the post-mortem
    metrics = data["benchmarks"][0]["extra_info"]["metrics"]
    assert metrics["failed"]["value"] == 8 and metrics["error_rate"]["value"] == 0.4


def test_json_of_the_wrong_shape_is_counted_not_a_crash(pytester, start_stub) -> None:
    """String token counts in usage used to reach the metrics and raise TypeError there."""
    stub = start_stub("--wrong-shape", "tokens-string", "--wrong-shape-every", "4")
    bench_file(
        pytester,
        stub.base_url,
        """
def test_shape(serve_bench):
    serve_bench(Server(URL), input_len=8, output_len=8, num_prompts=20, concurrency=2)
""",
    )
    result, data = run_json(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "serve_bench: 5 of 20 requests failed (error rate 25.0% > allowed 0.0%): 5 x "
            "malformed SSE event (usage.prompt_tokens is not a whole number >= 0): *",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert data["benchmarks"][0]["extra_info"]["metrics"]["completed"]["value"] == 15


def test_a_stalled_stream_ends_at_the_idle_timeout(pytester, start_stub) -> None:
    """The stub stalls every 5th stream after 2 tokens (real engines wedge, but not on
    demand); each stalled request is a failure after idle_timeout_s, not after 3600 s."""
    stub = start_stub("--stall-after", "2", "--stall-every", "5")
    bench_file(
        pytester,
        stub.base_url,
        """
import time

def test_stall(serve_bench):
    t0 = time.perf_counter()
    try:
        serve_bench(Server(URL), input_len=8, output_len=8, num_prompts=10, concurrency=2,
                    idle_timeout_s=0.3)
    finally:
        print("TOOK", time.perf_counter() - t0)
""",
    )
    result, _ = run_json(pytester, "-s")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "serve_bench: 2 of 10 requests failed (error rate 20.0% > allowed 0.0%): "
            "2 x stream stalled: no data for 0.3 s",
        ]
    )
    took = float(result.stdout.str().split("TOOK ")[1].split()[0])
    assert took < 5


def test_error_rate_threshold_comes_from_the_option(pytester, start_stub) -> None:
    stub = start_stub("--fail-every", "4")
    bench_file(
        pytester,
        stub.base_url,
        """
def test_flaky(serve_bench):
    r = serve_bench(Server(URL), input_len=8, output_len=8, num_prompts=20)
    assert r.failed == 5
""",
    )
    result, _ = run_json(pytester, "--gpubench-max-error-rate=0.3")
    result.assert_outcomes(passed=1)


def test_short_outputs_are_flagged_not_hidden(pytester, start_stub) -> None:
    stub = start_stub("--short-output", "3")
    bench_file(
        pytester,
        stub.base_url,
        """
def test_short(serve_bench):
    r = serve_bench(Server(URL), input_len=8, output_len=30, num_prompts=10)
    assert r.short_outputs == 10
""",
    )
    result, data = run_json(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*ServingWarning: 10 of 10 requests produced fewer output tokens than asked "
            "(30 of 300 tokens in all)*",
        ]
    )
    metrics = data["benchmarks"][0]["extra_info"]["metrics"]
    assert metrics["short_outputs"]["value"] == 10
    assert metrics["output_tokens"]["value"] == 3


def test_missing_usage_falls_back_to_the_client_count_and_says_so(pytester, start_stub) -> None:
    stub = start_stub("--no-usage")
    bench_file(
        pytester,
        stub.base_url,
        """
def test_nousage(serve_bench):
    r = serve_bench(Server(URL), input_len=8, output_len=12, num_prompts=5)
    assert r["output_tokens"] == 12
""",
    )
    result, _ = run_json(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*ServingWarning: 5 of 5 requests had no usage from the server*"])


def test_adaptive_mode_stops_at_the_asked_precision(pytester, start_stub) -> None:
    """On a paced stub (each request 20 ms to the first token, then 16 tokens at 200 tok/s,
    on a fixed schedule) one request at a time takes ~100 ms whatever the load, so every
    block of 5 completions spans ~0.5 s and the interval is narrow after the first 5 blocks.
    One at a time, because two streams of equal length finish in pairs: blocks of 5 would
    then span 3, 2, 3, 2 request times and never agree to 10%."""
    stub = start_stub("--tokens-per-s", "200", "--ttft-ms", "20")
    bench_file(
        pytester,
        stub.base_url,
        """
def test_adaptive(serve_bench):
    r = serve_bench(Server(URL), input_len=8, output_len=16, concurrency=1, precision=0.1,
                    max_requests=200)
    print("USED", r.requests_used, r.stopped_by)
""",
    )
    result, data = run_json(pytester, "-s")
    result.assert_outcomes(passed=1)
    info = data["benchmarks"][0]["extra_info"]
    m = info["metrics"]["output_tok_s"]
    assert info["serving"]["stopped_by"] == "precision", result.stdout.str()[-2000:]
    assert 25 <= info["serving"]["requests_used"] < 200
    low, high = m["spread"]["ci95_low"], m["spread"]["ci95_high"]
    assert (high - low) / 2 <= 0.1 * (high + low) / 2
    assert m["spread"]["ci_blocks"] >= 5
    # a request takes at least its schedule (0.1 s for 16 tokens); a busy machine only adds
    assert 0 < m["value"] <= 16 / 0.1


def test_duration_mode_and_poisson_rate(pytester, stub_server) -> None:
    bench_file(
        pytester,
        stub_server.base_url,
        """
import itertools
from pytest_gpubench.serving.schedule import LoadSpec, arrival_offsets

def test_duration(serve_bench):
    r = serve_bench(Server(URL), input_len=8, output_len=4, request_rate=40, duration_s=1.0,
                    concurrency=8, arrival="gamma", burstiness=0.5)
    assert r.stopped_by == "duration"
    # the seeded schedule fixes what is due in the second (39 requests): all of them are sent
    # unless the loop falls behind at the very end, and it cannot be half a second behind
    due = list(itertools.takewhile(lambda t: t < 1.0, arrival_offsets(LoadSpec(
        concurrency=8, rate=40, arrival="gamma", burstiness=0.5, num_requests=None,
        duration_s=1.0))))
    assert sum(t < 0.5 for t in due) <= r.requests_used <= len(due), (r.requests_used, due)
""",
    )
    result, _ = run_json(pytester)
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("serve_bench(object())", "serve_bench(server): server needs base_url"),
        ("serve_bench(Server(URL + '/v1'))", "serve_bench(server): base_url 'http://127.0.0.1:"),
        (
            "serve_bench(Server(URL), slo={'ttft': 1})",
            "serve_bench: unknown SLO key(s) ['ttft']; use ttft_ms",
        ),
        (
            "serve_bench(Server(URL), precision=2)",
            "serve_bench: precision must be a fraction such as 0.02, got 2",
        ),
        (
            "serve_bench(Server(URL), concurrency=0)",
            "serve_bench: concurrency must be a whole number >= 1, or None (no cap), got 0",
        ),
        (
            "serve_bench(Server(URL), concurrency=2.5)",
            "serve_bench: concurrency must be a whole number >= 1, or None (no cap), got 2.5",
        ),
        (
            "serve_bench(Server(URL), num_prompts='10')",
            "serve_bench: num_prompts must be a whole number >= 1, or None (with duration_s), "
            "got '10' (a string; pass the number without quotes)",
        ),
        (
            "serve_bench(Server(URL), request_rate='fast')",
            "serve_bench: request_rate must be a number > 0, got 'fast' (a string); requests "
            "per second, or math.inf to send as fast as the concurrency allows",
        ),
        (
            "serve_bench(Server(URL), timeout_s=0)",
            "serve_bench: timeout_s must be a number > 0, got 0; seconds a whole request may "
            "take (default 3600)",
        ),
        (
            "serve_bench(Server(URL), idle_timeout_s=float('nan'))",
            "serve_bench: idle_timeout_s must be a number > 0, or None (no idle limit), got nan",
        ),
        (
            "serve_bench(Server(URL), output_len='5')",
            "serve_bench: output_len must be a whole number >= 1, got '5'",
        ),
        (
            "serve_bench(Server(URL), slo={'ttft_ms': 'fast'})",
            "serve_bench: slo['ttft_ms'] must be a number > 0, got 'fast'",
        ),
        (
            "serve_bench(Server(URL), extra_body=['x'])",
            "serve_bench: extra_body must be a dict of extra request fields, got ['x']",
        ),
        (
            "serve_bench(Server(URL), prompts_file='nowhere.jsonl')",
            "serve_bench: prompt file nowhere.jsonl does not exist",
        ),
        (
            "serve_bench.depth_sweep(Server(URL), depths=['a'])",
            "serve_bench.depth_sweep: depths[...] must be a whole number >= 0, got 'a' (a string)",
        ),
        (
            "serve_bench.depth_sweep(Server(URL), timeout_s=-1)",
            "serve_bench.depth_sweep: timeout_s must be a number > 0, got -1;",
        ),
    ],
)
def test_misuse_is_one_line_without_a_traceback(pytester, stub_server, call, message) -> None:
    bench_file(
        pytester,
        stub_server.base_url,
        f"""
def test_misuse(serve_bench):
    {call}
""",
    )
    result = pytester.runpytest("--device=cpu")
    result.assert_outcomes(failed=1)
    lines = failure_lines(result, "test_misuse")
    assert len(lines) == 1, result.stdout.str()  # the message alone: no traceback
    assert lines[0].startswith(message), lines[0]


def test_benchmark_disable_runs_the_workload_and_records_nothing(pytester, stub_server) -> None:
    bench_file(
        pytester,
        stub_server.base_url,
        """
def test_disabled(serve_bench, gpubench):
    r = serve_bench(Server(URL), input_len=8, output_len=4, num_prompts=5)
    assert r.completed == 5 and r["output_tok_s"] > 0
    assert gpubench.metrics == {}
""",
    )
    pytester.runpytest("--benchmark-disable").assert_outcomes(passed=1)


def test_depth_sweep_records_speed_per_depth(pytester, start_stub) -> None:
    stub = start_stub("--tokens-per-s", "1000")
    bench_file(
        pytester,
        stub.base_url,
        """
def test_depth(serve_bench):
    out = serve_bench.depth_sweep(Server(URL), depths=[16, 256], output_len=8,
                                  requests_per_depth=2)
    assert sorted(out) == [16, 256]
""",
    )
    result, data = run_json(pytester)
    result.assert_outcomes(passed=1)
    metrics = data["benchmarks"][0]["extra_info"]["metrics"]
    for d in (16, 256):
        assert metrics[f"decode_tok_s.d{d}"]["unit"] == "tok/s"
        assert metrics[f"ttft_ms.d{d}"]["higher_is_better"] is False
        assert metrics[f"prefill_tok_s.d{d}"]["value"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpubench-max-error-rate=lots"], "*--gpubench-max-error-rate: max error rate must be*"),
        (["--gpubench-progress=maybe"], "*--gpubench-progress: progress must be on, off or auto*"),
    ],
)
def test_bad_serving_options_are_usage_errors(pytester, args, message) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_progress_bar_shows_requests_when_on(pytester, stub_server) -> None:
    bench_file(
        pytester,
        stub_server.base_url,
        """
def test_bar(serve_bench):
    serve_bench(Server(URL), input_len=8, output_len=4, num_prompts=7)
""",
    )
    # under pytest's default capture: the line goes through the terminal reporter
    result = pytester.runpytest_subprocess("--device=cpu", "--gpubench-progress=on")
    result.assert_outcomes(passed=1)
    assert "gpubench: llamacpp stub-model:" in result.stdout.str()
    assert "/7 [" in result.stdout.str()  # a bar over the 7 measured requests
