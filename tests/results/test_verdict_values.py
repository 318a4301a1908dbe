"""compare_metrics' verdicts at and around their thresholds, with the noise worked out by hand.

The noise a comparison allows is two standard errors of the difference: each side's standard
error is its 95% interval's half-width / Student's t (t tables: 4.302653 for 2 degrees of
freedom, 1.96 where the sample count is unknown), relative to its value.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.results.baseline import (
    Finding,
    compare_metrics,
    from_document,
    merge,
    noise_between,
    standard_error,
)

T2 = 4.302652729749464  # t(0.975, 2 degrees of freedom), from a t table


def m(value, higher=True, unit="tok/s", name="output_tok_s", **spread) -> Metric:
    return Metric(name, value, unit, higher, spread)


def verdict(cur: Metric, base: Metric, tol: float = 0.1) -> str:
    [f] = compare_metrics({cur.name: cur}, {base.name: base}, {}, tol)
    return f.verdict


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (80.0, "suspect"),  # 20% fewer tok/s, tolerance 10%, no spread known
        (89.0, "suspect"),
        (90.0, "ok"),  # exactly at the tolerance: not beyond it
        (95.0, "ok"),
        (100.0, "ok"),
        (110.0, "ok"),  # exactly at the tolerance the other way
        (111.0, "improvement"),
        (150.0, "improvement"),
    ],
)
def test_higher_is_better(current: float, expected: str) -> None:
    assert verdict(m(current), m(100.0)) == expected


@pytest.mark.parametrize(
    ("current", "expected"),
    [(120.0, "suspect"), (110.0, "ok"), (90.0, "ok"), (89.0, "improvement"), (50.0, "improvement")],
)
def test_lower_is_better(current: float, expected: str) -> None:
    cur, base = m(current, False, "ms", "ttft_ms"), m(100.0, False, "ms", "ttft_ms")
    assert verdict(cur, base) == expected


def test_change_is_relative_to_the_baselines_magnitude() -> None:
    # a value that can be negative: -100 -> -80 is up by 20% of 100
    [f] = compare_metrics({"x": m(-80.0, name="x")}, {"x": m(-100.0, name="x")}, {}, 0.1)
    assert f.change == pytest.approx(0.2)
    assert f.verdict == "improvement"


def test_finding_fields() -> None:
    [f] = compare_metrics(
        {"ttft_ms": m(120.0, False, "ms", "ttft_ms")},
        {"ttft_ms": m(100.0, False, "ms", "ttft_ms")},
        {},
        0.1,
    )
    assert (f.metric, f.current, f.baseline, f.tolerance, f.unit) == (
        "ttft_ms",
        120.0,
        100.0,
        0.1,
        "ms",
    )
    assert f.change == pytest.approx(0.2)
    assert f.worse == pytest.approx(0.2)
    assert f.higher_is_better is False
    assert f.noise == 0.0
    assert f.message == "ttft_ms 120 vs baseline 100 ms (+20.0%, tolerance 10%)"
    better = Finding("output_tok_s", 120.0, 100.0, 0.2, 0.1, "improvement", "tok/s")
    assert better.worse == pytest.approx(-0.2)


def test_messages_for_noise_and_notes() -> None:
    f = Finding("x", 94.0, 100.0, -0.06, 0.05, "noise", "tok/s", noise=0.0679)
    assert f.message == (
        "x 94 vs baseline 100 tok/s (-6.0%, tolerance 5%, within noise: the runs' spreads "
        "explain 7%)"
    )
    f = Finding("x", 80.0, 100.0, -0.2, 0.1, "regression", "tok/s", note="confirmed by 1 re-run")
    assert f.message == "x 80 vs baseline 100 tok/s (-20.0%, tolerance 10%, confirmed by 1 re-run)"
    f = Finding("x", 80.0, 100.0, -0.2, 0.1, "noise", "tok/s", noise=0.3, note="not confirmed")
    assert f.message == "x 80 vs baseline 100 tok/s (-20.0%, tolerance 10%, not confirmed)"


def test_per_metric_tolerance_overrides_the_default() -> None:
    cur = {"output_tok_s": m(80.0), "ttft_ms": m(125.0, False, "ms", "ttft_ms")}
    base = {"output_tok_s": m(100.0), "ttft_ms": m(100.0, False, "ms", "ttft_ms")}
    found = {f.metric: f for f in compare_metrics(cur, base, {"output_tok_s": 0.25}, 0.1)}
    assert found["output_tok_s"].verdict == "ok"
    assert found["output_tok_s"].tolerance == 0.25
    assert found["ttft_ms"].verdict == "suspect"
    assert found["ttft_ms"].tolerance == 0.1


def test_metrics_without_a_usable_baseline_are_not_compared() -> None:
    cur = {"a": m(1.0, name="a"), "b": m(1.0, name="b"), "c": m(5.0, name="c")}
    base = {"a": m(0.0, name="a"), "c": m(5.0, name="c")}  # a is zero, b is missing
    assert [f.metric for f in compare_metrics(cur, base, {}, 0.1)] == ["c"]


def test_harness_metrics_are_gated_only_when_named() -> None:
    cur = {"avg_power_w": m(300.0, False, "W", "avg_power_w")}
    base = {"avg_power_w": m(200.0, False, "W", "avg_power_w")}
    assert compare_metrics(cur, base, {}, 0.1) == []
    [f] = compare_metrics(cur, base, {"avg_power_w": 0.2}, 0.1)
    assert f.verdict == "suspect"


@pytest.mark.parametrize("name", ["host_thread_busy_pct", "data_wait_pct"])
def test_the_bound_verdicts_inputs_are_not_gated(name: str) -> None:
    """They say why a result is what it is; a busier host thread is not a slower benchmark."""
    cur, base = {name: m(90.0, False, "%", name)}, {name: m(30.0, False, "%", name)}
    assert compare_metrics(cur, base, {}, 0.1) == []


def test_two_rounds_use_the_t_value_of_one_degree_of_freedom() -> None:
    se = standard_error(m(100.0, ci95_low=90.0, ci95_high=110.0, rounds=2))
    assert se == pytest.approx(10 / 12.706204736174707 / 100)


def test_an_interval_of_blocks_uses_the_t_value_of_its_blocks() -> None:
    """A serving run's output tok/s interval is built from ``ci_blocks`` blocks of one round
    (serving/throughput.py): its standard error divides by t(ci_blocks - 1), not by the
    1.96 a single round would take. t(0.975, 4) = 2.7764451051977987 (scipy, any table)."""
    one_round = m(100.0, ci95_low=90.0, ci95_high=110.0, rounds=1, n=40, ci_blocks=5)
    assert standard_error(one_round) == pytest.approx(10 / 2.7764451051977987 / 100)
    pooled = m(100.0, ci95_low=90.0, ci95_high=110.0, rounds=2, n=80, ci_blocks=2)
    assert standard_error(pooled) == pytest.approx(10 / 12.706204736174707 / 100)


def test_worse_exactly_at_the_noise_is_noise() -> None:
    # one side's interval 50 -/+ 24.5, n unknown: se = 24.5 / 1.96 / 50 = 0.25, noise 0.5,
    # and 50 against 100 is exactly 50% worse
    cur = m(50.0, ci95_low=25.5, ci95_high=74.5)
    assert noise_between(cur, m(100.0)) == 0.5
    assert verdict(cur, m(100.0)) == "noise"


def test_a_skipped_harness_metric_does_not_stop_the_comparison() -> None:
    cur = {"avg_power_w": m(300.0, False, "W", "avg_power_w"), "x": m(50.0, name="x")}
    base = {"avg_power_w": m(200.0, False, "W", "avg_power_w"), "x": m(100.0, name="x")}
    assert [f.metric for f in compare_metrics(cur, base, {}, 0.1)] == ["x"]


def test_standard_error_from_the_interval() -> None:
    # half-width 10 / t(2 dof) / value 100
    assert standard_error(m(100.0, ci95_low=90.0, ci95_high=110.0, rounds=3)) == pytest.approx(
        10 / T2 / 100
    )
    # "n" is the sample count where there is no "rounds"
    assert standard_error(m(100.0, ci95_low=90.0, ci95_high=110.0, n=3)) == pytest.approx(
        10 / T2 / 100
    )
    # one sample or none known: the normal 1.96
    for spread in ({}, {"rounds": 1}, {"n": 1}):
        se = standard_error(m(100.0, ci95_low=90.0, ci95_high=110.0, **spread))
        assert se == pytest.approx(10 / 1.96 / 100)
    # relative to the value's magnitude
    assert standard_error(m(-100.0, ci95_low=-110.0, ci95_high=-90.0, rounds=3)) == pytest.approx(
        10 / T2 / 100
    )
    assert standard_error(m(100.0)) is None
    assert standard_error(m(100.0, ci95_low=90.0)) is None
    assert standard_error(m(100.0, ci95_high=110.0)) is None
    assert standard_error(m(0.0, ci95_low=-1.0, ci95_high=1.0, rounds=3)) is None


def test_noise_is_two_standard_errors_of_the_difference() -> None:
    base = m(100.0, ci95_low=90.0, ci95_high=110.0, rounds=3)
    cur = m(94.0, ci95_low=84.0, ci95_high=104.0, rounds=3)
    se_b, se_c = 10 / T2 / 100, 10 / T2 / 94
    expected = 2 * math.sqrt(se_b**2 + se_c**2)  # ~0.0679
    assert noise_between(cur, base) == pytest.approx(expected)
    assert noise_between(cur, m(100.0)) == pytest.approx(2 * se_c)  # one side known
    assert noise_between(m(94.0), m(100.0)) == 0.0


def test_worse_than_tolerance_but_within_noise_is_noise() -> None:
    base = m(100.0, ci95_low=90.0, ci95_high=110.0, rounds=3)
    # 6% worse, tolerance 5%, noise ~6.8%: noise
    [f] = compare_metrics(
        {"output_tok_s": m(94.0, ci95_low=84.0, ci95_high=104.0, rounds=3)},
        {"output_tok_s": base},
        {},
        0.05,
    )
    assert f.verdict == "noise"
    assert f.noise == pytest.approx(2 * math.sqrt((10 / T2 / 100) ** 2 + (10 / T2 / 94) ** 2))
    # 10% worse with the same spreads: beyond the noise (~7%): suspect
    cur = m(90.0, ci95_low=80.0, ci95_high=100.0, rounds=3)
    assert verdict(cur, base, 0.05) == "suspect"


def _doc(*keys: str, skipped: dict | None = None) -> dict:
    return {
        "benchmarks": [
            {"fullname": f"tests/t.py::{k}", "extra_info": {"gpubench": {"key": k}, "metrics": {}}}
            for k in keys
        ],
        "gpubench": {"schema": 1, "kind": "measured", "device": {"profile": "cpu"},
                     "skipped": skipped or {}},
    }  # fmt: skip


def test_merge_replaces_same_keys_and_keeps_the_rest() -> None:
    old = _doc("a", "b", skipped={"c": {"reason": "did not fit"}, "d": {"reason": "x"}})
    old["benchmarks"].append({"fullname": "plain", "extra_info": {}})  # no gpubench key
    old["benchmarks"].append({"fullname": "c"})  # plain pytest-benchmark entry keyed c
    old["benchmarks"].append({"fullname": "d", "extra_info": {"gpubench": {}}})
    new = _doc("b", "c", skipped={"e": {"reason": "y"}})
    new["benchmarks"][0]["marker"] = "new b"
    merged = merge(old, new)
    names = [b["fullname"] for b in merged["benchmarks"]]
    # old b (same key) and old c (its fullname is the key) are replaced
    assert names == ["tests/t.py::a", "plain", "d", "tests/t.py::b", "tests/t.py::c"]
    assert merged["benchmarks"][3]["marker"] == "new b"
    # c ran this time: no longer skipped; d kept; e added
    assert merged["gpubench"]["skipped"] == {"d": {"reason": "x"}, "e": {"reason": "y"}}
    assert merge(None, new) is new
    assert old["gpubench"]["skipped"] == {"c": {"reason": "did not fit"}, "d": {"reason": "x"}}
    # a baseline loads back with the entries merged
    b = from_document(Path("cpu.json"), merged)
    assert sorted(b.entries) == ["a", "b", "c", "d", "plain"]


# Equivalent mutants (scripts/mutation.py lists them):
# - standard_error: `... or m.spread.get("n") or 0` -> `or 1`: 0 and 1 both take the 1.96
#   branch (n < 2).
# - noise_between: `if errors else 0.0` -> `if errors or True`: with no errors the sum is 0
#   and 2 * sqrt(0) is the same 0.0.
