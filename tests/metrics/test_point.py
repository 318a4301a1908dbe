"""One sweep point's figures (metrics/point.py), against hand arithmetic.

The bound: every decode step reads the active weights once for the whole batch and each
sequence's KV cache, so tok/s <= bandwidth x batch / (weights + batch x KV per sequence).
"""

from __future__ import annotations

import pytest

from pytest_gpubench.metrics.point import PointFacts, judge_point


def facts(**kw) -> PointFacts:
    base = dict(
        output_tok_s=600.0,
        span_s=10.0,
        users=8,
        weight_bytes=4.0e9,  # ~an 8B model in 4 bits
        kv_bytes_per_seq=1.0e8,  # ~760 tokens of its bf16 KV
        context=760,
        bandwidth_gbs=3350.0,  # H100 SXM datasheet
        decode_tok_s=700.0,
        decode_batch=7.5,
        energy_j=3000.0,
        gpu_util_pct=76.0,
    )
    return PointFacts(**{**base, **kw})


def test_roofline_energy_and_busy_by_hand() -> None:
    r = judge_point(facts())
    # step bytes 4e9 + 7.5 x 1e8 = 4.75e9; bound 3350e9 x 7.5 / 4.75e9 = 5,289.47 tok/s
    assert r.roofline_bound_tok_s == pytest.approx(3350e9 * 7.5 / 4.75e9)
    assert r.roofline_pct == pytest.approx(100 * 700 / (3350e9 * 7.5 / 4.75e9))  # 13.2%
    # 3,000 J over the 10 s window in which 600 tok/s streamed 6,000 tokens
    assert r.energy_per_output_token_j == pytest.approx(0.5)
    assert r.gpu_util_pct == 76.0
    # 76% busy, 13% of the bound, batching 7.5 of 8 users: the kernels at that batch
    assert r.verdict is not None and r.verdict.bound == "kernel"
    assert "decode at 13.2% of the bandwidth bound (batch 7.5, context 760)" in r.verdict.reason


def test_a_point_batching_few_of_its_users_is_scheduling_bound() -> None:
    r = judge_point(facts(decode_batch=3.0, decode_tok_s=450.0))
    # bound 3350e9 x 3 / (4e9 + 3e8) = 2,337.2 tok/s; 450 of it is 19.3%
    assert r.roofline_pct == pytest.approx(100 * 450 / (3350e9 * 3 / 4.3e9))
    assert r.verdict.bound == "scheduling"
    assert "3 sequences at once on average for 8 users" in r.verdict.reason


def test_a_point_near_its_bound_is_gpu_bound() -> None:
    r = judge_point(facts(users=1, decode_batch=1.0, decode_tok_s=420.0, gpu_util_pct=95.0))
    # bound 3350e9 / 4.1e9 = 817.1 tok/s; 420 is 51.4%
    assert r.roofline_pct == pytest.approx(100 * 420 * 4.1e9 / 3350e9)
    assert r.verdict.bound == "gpu" and r.verdict.advice == ""


def test_without_a_measured_decode_the_output_rate_and_users_stand_in() -> None:
    r = judge_point(facts(decode_tok_s=None, decode_batch=None, users=4))
    # batch 4: bound 3350e9 x 4 / 4.4e9 = 3,045.5; 600 tok/s is 19.7%
    assert r.roofline_pct == pytest.approx(100 * 600 * 4.4e9 / (3350e9 * 4))
    assert "(batch 4, context 760)" in r.verdict.reason


def test_unknowns_are_left_out() -> None:
    cpu = judge_point(facts(bandwidth_gbs=None, energy_j=None, gpu_util_pct=None))
    assert (cpu.roofline_pct, cpu.energy_per_output_token_j, cpu.verdict) == (None, None, None)
    assert cpu.metrics() == {} and cpu.as_dict() == {}
    no_model = judge_point(facts(weight_bytes=0.0))
    assert no_model.roofline_pct is None
    assert no_model.verdict.bound == "gpu"  # busy, and no roofline to say otherwise
    assert "bandwidth bound" not in no_model.verdict.reason
    assert judge_point(facts(output_tok_s=0.0)).energy_per_output_token_j is None


def test_metrics_and_record_keep_the_single_run_names_and_units() -> None:
    r = judge_point(facts())
    m = r.metrics()
    assert {k: (v.unit, v.higher_is_better) for k, v in m.items()} == {
        "roofline_pct": ("%", True),
        "roofline_bound_tok_s": ("tok/s", True),
        "energy_per_output_token_j": ("J/tok", False),
        "gpu_util_pct": ("%", True),
    }
    d = r.as_dict()
    assert d["energy_per_output_token_j"] == pytest.approx(0.5)
    assert d["bound"]["bound"] == "kernel" and d["bound"]["reason"] == r.verdict.reason


def test_a_stalled_idle_point_is_host_bound_with_its_figure() -> None:
    r = judge_point(facts(gpu_util_pct=40.0, server_stall=0.59))
    assert r.verdict.bound == "host" and "stalled 59% of the time" in r.verdict.reason
    assert "decode at 13.2% of the bandwidth bound" in r.verdict.reason
