"""The decode batch a server ran, and the serving roofline and energy per token built on it."""

from __future__ import annotations

import json
import re

import pytest

from pytest_gpubench.serving.client import RequestResult, RequestSpec
from pytest_gpubench.serving.decode_batch import decode_batch

from plumbing.servers import SERVER_CLASSES


def request(start: float, ttft: float, end: float, tokens: int, prompt: int = 100):
    spec = RequestSpec("completions", {}, max_tokens=tokens, input_tokens=prompt)
    return RequestResult(
        spec, start=start, ok=True, ttft=ttft, end=end, usage_completion_tokens=tokens
    )


def test_two_overlapping_requests_are_a_batch_of_one_and_a_half() -> None:
    """A decodes from t=1 to 11 (101 tokens: 100 after its first), B from t=6 to 11 (51 tokens):
    10 s with at least one decoding, 15 sequence-seconds: batch 1.5; 150 tokens / 10 s."""
    got = decode_batch([request(0, 1, 11, 101), request(5, 1, 11, 51, prompt=300)])
    assert got is not None
    assert got.batch == pytest.approx(1.5)
    assert got.tokens_per_s == pytest.approx(15.0)
    assert got.decoding_s == pytest.approx(10.0)
    # mean of (prompt + output / 2): (100 + 50) and (300 + 25)
    assert got.context == round((150 + 325) / 2)


def test_gaps_with_nothing_decoding_do_not_count() -> None:
    """One sequence at a time, with 5 s of nothing between them: batch 1, not less."""
    got = decode_batch([request(0, 0, 5, 11), request(10, 0, 15, 11)])
    assert got.batch == pytest.approx(1.0)
    assert got.decoding_s == pytest.approx(10.0)
    assert got.tokens_per_s == pytest.approx(2.0)


def test_failed_and_single_token_requests_are_left_out() -> None:
    failed = request(0, 1, 11, 101)
    failed.ok = False
    assert decode_batch([failed, request(0, 1, 1.5, 1)]) is None


SERVE = (
    "import pytest\n"
    + SERVER_CLASSES
    + """
@pytest.mark.model("meta-llama/Llama-3.1-8B-Instruct", quant="q4_k_m")
def test_serve(serve_bench):
    r = serve_bench(Server({url!r}), input_len=16, output_len=8, num_prompts=6, concurrency=2)
    assert r.failed == 0
"""
)


def test_a_gpu_serving_result_gets_its_roofline_and_energy_per_token(
    pytester, start_stub, fake_nvml
) -> None:
    """With (stand-in) NVML and a model marker: the roofline at the measured batch, energy
    per output token = the timed rounds' energy / tokens (both from the same result). The
    stub streams 200 tokens/s, so every request spends time decoding."""
    stub = start_stub("--tokens-per-s", "200")
    fake_nvml("NVIDIA H200|143771|9.0")
    pytester.makepyfile(SERVE.format(url=stub.base_url))
    result = pytester.runpytest_subprocess("--benchmark-json=out.json", "--device=h200")
    result.assert_outcomes(passed=1)
    extra = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"]
    metrics = extra["metrics"]
    batch = extra["decode_batch"]["mean_batch"]
    assert 1.0 <= batch <= 2.0  # concurrency 2
    described = re.search(r"batch ([0-9.]+),", metrics["roofline_pct"]["description"])
    assert described and float(described.group(1)) == pytest.approx(batch, abs=0.01)
    tokens = sum(r["output_tokens"] for r in extra["requests"])
    energy = metrics["energy_per_round_j"]["value"]  # one round
    assert metrics["energy_per_output_token_j"]["value"] == pytest.approx(energy / tokens, rel=1e-6)
    assert metrics["output_tokens_per_j"]["value"] == pytest.approx(tokens / energy, rel=1e-6)
    assert extra["bound"]["bound"] in ("gpu", "unknown")  # 87% busy, or under NVML's window


def test_a_cpu_serving_result_has_no_roofline(pytester, stub_server) -> None:
    """On CPU the server is a tiny stand-in for the marked model: no roofline against it."""
    pytester.makepyfile(SERVE.format(url=stub_server.base_url))
    result = pytester.runpytest_subprocess("--benchmark-json=out.json", "--device=cpu")
    result.assert_outcomes(passed=1)
    extra = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"]
    assert "roofline_pct" not in extra["metrics"] and "decode_batch" not in extra
