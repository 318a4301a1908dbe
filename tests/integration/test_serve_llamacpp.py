"""serve_bench against a live llama-server (the tiny model): every metric, server side too."""

from __future__ import annotations

import json

import pytest

from pytest_gpubench.testing.servers import SERVER_CLASSES

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
