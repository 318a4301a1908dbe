"""serve_bench against a live llama-server (the tiny model): every metric, server side too."""

from __future__ import annotations

import json

import pytest

from plumbing.servers import SERVER_CLASSES

SERVER = SERVER_CLASSES


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_live_llamacpp_run_records_client_and_server_metrics(
    pytester: pytest.Pytester, llamacpp_server, endpoint
) -> None:
    s = llamacpp_server
    pytester.makepyfile(
        SERVER
        + f"""
def test_llamacpp(serve_bench):
    server = Server({s.base_url!r}, {s.model!r}, Engine("llamacpp"))
    r = serve_bench(server, input_len=120, output_len=48, num_prompts=24, concurrency=4,
                    warmups=4, endpoint={endpoint!r}, range_ratio=0.2)
    assert r.failed == 0
"""
    )
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu", "-W", "error")
    result.assert_outcomes(passed=1)
    data = json.loads((pytester.path / "out.json").read_text())
    extra = data["benchmarks"][0]["extra_info"]
    m = {k: v["value"] for k, v in extra["metrics"].items()}
    for name in (
        "ttft_ms",
        "tpot_ms",
        "itl_ms",
        "e2el_ms",
        "output_tok_s",
        "total_tok_s",
        "requests_per_s",
        "peak_output_tok_s",
        "peak_concurrency",
        "server_prefill_tok_s",
        "server_decode_tok_s",
        "server_output_tokens",
    ):
        assert m[name] > 0, name
    assert m["failed"] == 0 and m["short_outputs"] == 0 and m["token_count_mismatches"] == 0
    rows = extra["requests"]
    # ignore_eos forced every request to its own max_tokens, per server usage
    assert all(r["output_tokens"] == r["max_tokens"] for r in rows)
    assert len({r["max_tokens"] for r in rows}) > 1  # range_ratio varied the lengths
    if endpoint == "completions":  # exact input: the prompt plus llama.cpp's BOS token
        assert all(r["input_tokens"] == r["expected_input_tokens"] + 1 for r in rows)
    # the server counted what the client counted
    assert m["server_output_tokens"] == sum(r["output_tokens"] for r in rows)


def test_live_llamacpp_depth_sweep(pytester, llamacpp_server) -> None:
    s = llamacpp_server
    pytester.makepyfile(
        SERVER
        + f"""
def test_depth(serve_bench):
    server = Server({s.base_url!r}, {s.model!r}, Engine("llamacpp"))
    out = serve_bench.depth_sweep(server, depths=[16, 900], output_len=128, requests_per_depth=3)
    assert sorted(out) == [16, 900]
    for d in (16, 900):
        assert out[d][f"decode_tok_s.d{{d}}"].unit == "tok/s"
        assert out[d][f"ttft_ms.d{{d}}"].spread["n"] == 3
"""
    )
    pytester.runpytest("--device=cpu").assert_outcomes(passed=1)


def test_live_llamacpp_points_and_rounds_never_resend_cached_prompts(
    pytester: pytest.Pytester, llamacpp_server
) -> None:
    """llama-server keeps every prompt it has seen (its slots and its host prompt cache) and
    serves a repeat without prefill. On the H200 a capacity search re-sent one point's prompts
    at the next and its log showed 1-token prefills on 176 of 224 requests. Here the server's
    own count (usage.prompt_tokens_details.cached_tokens) must show no prompt seen before, in
    every round, every sweep point and every re-measurement of a capacity search."""
    s = llamacpp_server
    pytester.makepyfile(
        SERVER
        + f"""
W = dict(input_len=160, output_len=6)

def test_rounds(serve_bench):
    server = Server({s.base_url!r}, {s.model!r}, Engine("llamacpp"))
    serve_bench(server, num_prompts=4, concurrency=2, rounds=3, **W)

def test_sweep_then_capacity(serve_bench):
    server = Server({s.base_url!r}, {s.model!r}, Engine("llamacpp"))
    sweep = serve_bench.sweep(server, concurrency=[1, 2, 4], prompts_per_user=2,
                              stop_at_saturation=False, **W)
    cap = serve_bench.capacity(server, slo={{"ttft_ms": 1e6}}, max_concurrency=4, remeasure=2,
                               prompts_per_user=2, known=sweep, **W)
    assert cap.max_concurrency == 4 and [p.concurrency for p in cap.points] == [4, 4]
"""
    )
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu", "-W", "error")
    result.assert_outcomes(passed=2)
    data = json.loads((pytester.path / "out.json").read_text())
    by_name = {b["name"]: b["extra_info"] for b in data["benchmarks"]}
    rounds = by_name["test_rounds"]
    rows = rounds["requests"]
    assert len(rows) == 12  # 3 rounds x 4
    prompt = sum(r["input_tokens"] for r in rows)
    cached = sum(r["cached_prompt_tokens"] for r in rows)
    # a BOS and at times a first word the server saw in another prompt: a few tokens of 161;
    # the old rounds re-sent round 1's prompts (two thirds of these tokens)
    assert cached / prompt < 0.05, rows
    assert rounds["metrics"]["cached_prompt_fraction"]["value"] == pytest.approx(cached / prompt)
    entry = by_name["test_sweep_then_capacity"]
    points = entry["sweep"]["points"] + entry["capacity"]["points"]
    assert [p["concurrency"] for p in points] == [1, 2, 4, 4, 4]
    for p in points:  # each point's fraction is the server's count over its requests
        assert p["metrics"]["cached_prompt_fraction"]["value"] < 0.05, p["label"]
        # the server's token counter, read around warm-ups and measured requests, less the
        # warm-ups' own tokens: the measured requests' 6 tokens each
        done = p["metrics"]["completed"]["value"]
        assert p["metrics"]["server_output_tokens"]["value"] == 6 * done, p["label"]
    # each point names its own draw (test key, n-th set of requests, the run's nonce)
    draws = [tuple(p["prompt_draw"]) for p in points]
    assert (
        len(set(draws)) == 5 and len({d[0] for d in draws}) == 1 and len({d[2] for d in draws}) == 1
    )
    assert "prompt_draw" not in entry["serving"]  # per point, not the entry's


def test_live_llamacpp_a_second_run_does_not_meet_the_first_runs_prompts(
    pytester: pytest.Pytester, llamacpp_server
) -> None:
    """The same test run twice against one long-lived server (a user's own llama-server or
    vLLM): the second run's prompts are new to the server (the run's nonce changes their
    text), with the same lengths as the first run's."""
    s = llamacpp_server
    pytester.makepyfile(
        SERVER
        + f"""
def test_again(serve_bench):
    server = Server({s.base_url!r}, {s.model!r}, Engine("llamacpp"))
    serve_bench(server, input_len=150, output_len=4, num_prompts=4, concurrency=2,
                range_ratio=0.3)
"""
    )
    runs = []
    for name in ("one.json", "two.json"):
        pytester.runpytest(f"--benchmark-json={name}", "--device=cpu").assert_outcomes(passed=1)
        runs.append(json.loads((pytester.path / name).read_text())["benchmarks"][0]["extra_info"])
    first, second = (r["requests"] for r in runs)
    lengths = sorted(r["expected_input_tokens"] for r in first)
    assert lengths == sorted(r["expected_input_tokens"] for r in second)
    assert len(set(lengths)) > 1
    # the server may find a prompt's first word or two among the many prompts it has seen (a
    # BOS and a common word); the first run's prompts again would be ~100%
    share = sum(r["cached_prompt_tokens"] for r in second) / sum(r["input_tokens"] for r in second)
    assert share < 0.05, second


def test_live_vllm_reports_its_prefix_cache_and_rounds_miss_it(
    pytester: pytest.Pytester, vllm_server
) -> None:
    """vLLM (prefix caching on by default) started by our launcher reports the prompt tokens
    it took from its cache (--enable-prompt-tokens-details); three rounds of new prompts
    find none there."""
    s = vllm_server
    pytester.makepyfile(
        SERVER
        + f"""
def test_rounds(serve_bench):
    server = Server({s.base_url!r}, {s.model!r}, Engine("vllm"))
    serve_bench(server, input_len=200, output_len=4, num_prompts=3, concurrency=3, rounds=3)
"""
    )
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu", "-W", "error")
    result.assert_outcomes(passed=1)
    extra = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"]
    rows = extra["requests"]
    assert len(rows) == 9 and all(r["cached_prompt_tokens"] is not None for r in rows)
    # vLLM caches whole blocks of 16 tokens: a new 200-token prompt shares none
    assert extra["metrics"]["cached_prompt_fraction"]["value"] < 0.1


def test_live_llamacpp_stalls_are_read_from_its_log_and_gone_with_the_cache_off(
    pytester: pytest.Pytester, tiny_model, llama_server_bin
) -> None:
    """llama-server started by ``llm_server`` in an inner run, with its default host prompt
    cache and with ``cache_ram=0``: the first run's log has the cache's copy lines (the
    format the H200's stalls were read from, in this build), the second has none. On this
    CPU the tiny model's copies take microseconds, so no warning: the H200 excerpt in
    tests/engines/recorded tests the seconds, tests/serving/test_stall_metric.py the warning.
    A sweep records the fraction per point (its points run through the steady path)."""
    gguf, exe = str(tiny_model.gguf_path), str(llama_server_bin)
    pytester.makepyfile(
        f"""
import pytest

def start(llm_server, **extra):
    return llm_server(engine="llamacpp", model={gguf!r}, served_name="tiny-stalls",
                      executable={exe!r},
                      options={{"context": 2048, "parallel": 4, "threads": 1,
                                "no_webui": True, **extra}})

W = dict(input_len=120, output_len=6, range_ratio=0.2)

def test_default_cache(llm_server, serve_bench):
    serve_bench(start(llm_server), num_prompts=8, concurrency=2, **W)

def test_cache_off(llm_server, serve_bench):
    serve_bench(start(llm_server, cache_ram=0), num_prompts=8, concurrency=2, **W)

def test_sweep(llm_server, serve_bench):
    serve_bench.sweep(start(llm_server), concurrency=[1, 2], prompts_per_user=2,
                      stop_at_saturation=False, **W)
"""
    )
    result = pytester.runpytest_subprocess(
        "--benchmark-json=out.json", "--device=cpu", "-W", "error::UserWarning"
    )
    result.assert_outcomes(passed=3)
    data = json.loads((pytester.path / "out.json").read_text())
    by_name = {b["name"]: b["extra_info"] for b in data["benchmarks"]}
    on = by_name["test_default_cache"]["metrics"]["server_stall_fraction"]
    assert on["spread"]["steps"] >= 1, on
    assert 0.0 <= on["value"] < 0.05 and on["spread"]["span_s"] > 0
    off = by_name["test_cache_off"]["metrics"]["server_stall_fraction"]
    assert off["value"] == 0.0 and off["spread"]["steps"] == 0, off
    points = by_name["test_sweep"]["sweep"]["points"]
    assert [p["label"] for p in points] == ["c1", "c2"]
    for p in points:
        assert p["metrics"]["server_stall_fraction"]["spread"]["span_s"] > 0, p["label"]
