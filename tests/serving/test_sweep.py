"""``serve_bench.sweep`` and ``serve_bench.capacity``: the pure parts (saturation, SLO checks,
the capacity search, the Pareto frontier) on hand-made data, and both calls end to end
against the stub with ``--max-streams 3``.

The stub stands in for an engine with K decode slots at a fixed speed, because the expected
answers must be exact (capacity K, throughput flat after K streams) whatever the machine's
load: its pacing is a fixed schedule (20 ms to the first token, then 60 tokens/s per stream),
a request takes ~0.52 s, and a queued one waits a whole request, far beyond the 100 ms margin
the TTFT SLO leaves over the unqueued 20 ms.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.results.baseline import compare_metrics, from_document
from pytest_gpubench.serving import sweep as sw
from pytest_gpubench.serving.metrics import metric

from plumbing.servers import SERVER_CLASSES


def m(name: str, value: float, **spread: float) -> Metric:
    return metric(name, value, spread)


class P:
    """A hand-made point."""

    def __init__(self, name: str, per_user: float, per_gpu: float) -> None:
        self.name = name
        self.metrics = {
            "output_tok_s_per_user": m("output_tok_s_per_user", per_user),
            "output_tok_s_per_gpu": m("output_tok_s_per_gpu", per_gpu),
        }

    def __repr__(self) -> str:
        return self.name


def test_pareto_frontier_keeps_the_points_nothing_beats_on_both_axes() -> None:
    points = [
        P("c1", 60, 60),
        P("c2", 58, 115),
        P("dominated", 50, 100),  # c2 is faster per user and per GPU
        P("c4", 40, 160),
        P("c8", 20, 160),  # as much per GPU as c4, slower per user
        P("c16", 10, 170),
    ]
    front = sw.pareto_frontier(points)
    assert [p.name for p in front] == ["c16", "c4", "c2", "c1"]


def test_pareto_frontier_equal_points_and_missing_numbers() -> None:
    a, b = P("a", 10, 10), P("b", 10, 10)
    lone = P("none", 5, 5)
    del lone.metrics["output_tok_s_per_gpu"]
    assert sw.pareto_frontier([a, b, lone]) == [a]
    assert sw.pareto_frontier([]) == []


def test_saturated_needs_flat_throughput_and_rising_latency() -> None:
    before = {"output_tok_s": m("output_tok_s", 100), "e2el_ms": m("e2el_ms", 500)}
    flat_slow = {"output_tok_s": m("output_tok_s", 104), "e2el_ms": m("e2el_ms", 1000)}
    rising = {"output_tok_s": m("output_tok_s", 190), "e2el_ms": m("e2el_ms", 520)}
    flat_fast = {"output_tok_s": m("output_tok_s", 101), "e2el_ms": m("e2el_ms", 505)}
    # +25% with its own interval +-30%: the data cannot tell, so the sweep goes on (a wide
    # interval once stopped the H200's llama.cpp sweep at 4 users, 364 tok/s, CI 0 .. 765,
    # while 8 users served 361-387 and 10 users 445)
    noisy = {
        "output_tok_s": m("output_tok_s", 125, ci95_low=87.5, ci95_high=162.5),
        "e2el_ms": m("e2el_ms", 900),
    }
    edge = {"output_tok_s": m("output_tok_s", 110.5), "e2el_ms": m("e2el_ms", 600)}
    assert sw.saturated(before, flat_slow)
    assert not sw.saturated(before, rising)
    assert not sw.saturated(before, flat_fast)
    assert not sw.saturated(before, noisy)
    assert not sw.saturated(before, edge)  # +10.5% > the 10% tolerance
    assert sw.saturated(before, edge, tolerance=0.11)
    assert not sw.saturated({}, flat_slow)


def test_meets_reads_the_percentile_and_the_errors() -> None:
    point = {
        "ttft_ms": m("ttft_ms", 80, p50=50, p90=150, p99=400),
        "tpot_ms": m("tpot_ms", 20, p90=25),
        "error_rate": m("error_rate", 0.0),
    }
    assert sw.meets(point, {"ttft_ms": 200, "tpot_ms": 30}, 90)
    assert not sw.meets(point, {"ttft_ms": 200}, 99)
    assert not sw.meets(point, {"ttft_ms": 100}, 90)
    assert not sw.meets(point, {"e2el_ms": 1000}, 90)  # not measured: not met
    failing = {**point, "error_rate": m("error_rate", 0.2)}
    assert not sw.meets(failing, {"ttft_ms": 200}, 90)
    with pytest.raises(GpubenchError, match="percentile must be one of"):
        sw.check_percentile(80)


def _search(capacity: int, max_c: int, flips: dict[int, list[bool]] | None = None, **kw):
    asked: list[int] = []
    flips = {k: list(v) for k, v in (flips or {}).items()}

    def passes(c: int) -> bool:
        asked.append(c)
        if flips.get(c):
            return flips[c].pop(0)
        return c <= capacity

    return sw.search_capacity(passes, max_c, **kw), asked


@pytest.mark.parametrize("capacity", [1, 2, 3, 5, 7, 12, 31, 32])
def test_capacity_search_finds_the_boundary(capacity: int) -> None:
    r, asked = _search(capacity, 32)
    assert r.capacity == capacity and r.stopped_by == "done"
    assert r.capped == (capacity == 32)
    assert r.upper == (None if capacity == 32 else capacity + 1)
    assert asked.count(capacity) == 2  # re-measured
    if capacity < 32:
        assert asked.count(capacity + 1) == 2
    assert len(asked) <= 2 * math.log2(32) + 4


def test_capacity_search_bracket_then_bisect_order() -> None:
    r, asked = _search(5, 64)
    assert r.capacity == 5
    assert asked == [1, 2, 4, 8, 6, 5, 5, 6]


def test_capacity_search_nothing_passes_and_lower_bound() -> None:
    r, asked = _search(0, 16)
    assert (r.capacity, r.capped, r.upper) == (0, False, 1)
    assert asked == [1, 1]  # the failing boundary re-measured
    r, asked = _search(10, 16, min_concurrency=4)
    assert r.capacity == 10 and asked[0] == 4


def test_capacity_search_a_boundary_that_does_not_hold_moves() -> None:
    # 6 passed once by luck; its re-measurements fail, so the answer moves down to 5
    r, asked = _search(5, 8, flips={6: [True, False, False]}, remeasure=2)
    assert r.capacity == 5
    assert asked.count(6) == 3 and asked.count(5) == 3
    # 4 failed once by bad luck, then passes twice: the boundary moves up to the real 6
    r, asked = _search(6, 8, flips={4: [False, True, True]}, remeasure=2)
    assert r.capacity == 6


def test_capacity_search_starts_from_known_verdicts() -> None:
    # a sweep's grid: 1..8 met the SLO, 16 did not (the H200's llama.cpp shape); capacity 12
    grid = {1: True, 2: True, 4: True, 8: True, 16: False}
    r, asked = _search(12, 64, known=grid)
    assert r == sw.Found(12, False, 13, "done")
    assert asked == [12, 14, 13, 12, 13]  # no bracket; the boundary re-measured as always
    # only passes known: the bracket goes on above the highest
    r, asked = _search(20, 64, known={1: True, 8: True})
    assert r.capacity == 20 and asked[0] == 16
    # a known pass that was luck (capacity 5): its re-measurement fails and the search looks lower
    r, asked = _search(5, 64, known={8: True})
    assert r.capacity == 5
    assert asked[:4] == [16, 12, 10, 9] and asked.count(8) == 1
    # known verdicts outside the range are not used
    r, asked = _search(3, 4, known={8: False})
    assert r.capacity == 3 and asked[0] == 1


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        # out of time before the 5th point: 1, 2, 4 passed and 8 failed (capacity 5 really)
        (4, sw.Found(4, False, 8, "time_budget")),
        # before the 3rd: 1 and 2 passed, nothing failed yet
        (2, sw.Found(2, False, None, "time_budget")),
        # before the 1st: nothing measured
        (0, sw.Found(0, False, None, "time_budget")),
        # in the re-measurement: 8, 6 failed, 5 passed once (its verdict so far)
        (6, sw.Found(5, False, 6, "time_budget")),
    ],
)
def test_capacity_search_out_of_time_answers_with_what_it_measured(calls, expected) -> None:
    asked: list[int] = []

    def passes(c: int) -> bool:
        if len(asked) == calls:
            raise sw.OutOfTime
        asked.append(c)
        return c <= 5

    assert sw.search_capacity(passes, 64) == expected
    assert asked == [1, 2, 4, 8, 6, 5][:calls]


def test_capacity_search_out_of_time_counts_no_pass_above_a_failure() -> None:
    # a noisy sweep: 2 users missed, 4 met; out of time before any re-measurement
    def passes(c: int) -> bool:
        raise sw.OutOfTime

    found = sw.search_capacity(passes, 8, known={1: True, 2: False, 4: True})
    assert found == sw.Found(1, False, 2, "time_budget")  # not 4: 2 failed below it


def test_budget_allows_a_point_only_when_its_cost_fits() -> None:
    now = [100.0]
    budget = sw.Budget(10.0, clock=lambda: now[0])
    assert budget.allows(None)  # the first point: its cost is unknown
    now[0] = 104.0
    assert budget.elapsed() == 4.0
    assert budget.allows(6.0) and not budget.allows(6.5)
    assert sw.Budget(None).allows(1e9)


def test_point_cost_scales_the_measured_waves() -> None:
    def point(c, wall, prompts, warmups):
        return sw.SweepPoint(
            c, None, 100, 20, {"e2el_ms": m("e2el_ms", 1000.0)}, label=f"c{c}",
            num_prompts=prompts, warmups=warmups, wall_s=wall,
        )  # fmt: skip

    c2 = point(2, 12.0, 8, 2)  # 10 requests / 2 users = 5 waves of 2.4 s
    c8 = point(8, 40.0, 32, 8)  # 5 waves of 8 s
    assert sw.point_cost([], 4, None, 20) is None
    # at or below a measured concurrency: the nearest one above's wave time
    assert sw.point_cost([c2, c8], 4, None, 20) == pytest.approx(5 * 8.0)
    assert sw.point_cost([c2, c8], 2, None, 10) == pytest.approx(5 * 2.4)
    # above every measured one: the highest one's, scaled by the users (16 / 8)
    assert sw.point_cost([c2, c8], 16, None, 80) == pytest.approx(5 * 8.0 * 2)
    # an open loop: requests / rate, plus one request's latency to drain
    assert sw.point_cost([c8], None, 2.0, 20) == pytest.approx(10 + 1.0)


def test_settings_and_prompts_per_point() -> None:
    s = sw.settings_for([8, 1, 4], math.inf, None, 100, 20)
    assert [x.concurrency for x in s] == [1, 4, 8] and s[0].label == "c1"
    r = sw.settings_for(None, [2.5, 1], None, 100, 20)
    assert [x.label for x in r] == ["r1", "r2.5"]
    shapes = sw.settings_for(4, math.inf, [(1000, 300), (128, 32)], 1, 1)
    assert [x.label for x in shapes] == ["i1000o300", "i128o32"]
    assert sw.prompts_for(s[2], 4, 8) == 32 and sw.prompts_for(s[0], 4, 8) == 8
    assert sw.prompts_for(r[1], 4, 8) == 10
    assert sw.warmups_for(s[2], None) == 8 and sw.warmups_for(s[2], 0) == 0
    with pytest.raises(GpubenchError, match="exactly one list"):
        sw.settings_for([1, 2], [1.0], None, 1, 1)
    with pytest.raises(GpubenchError, match="exactly one list"):
        sw.settings_for(1, math.inf, None, 1, 1)
    with pytest.raises(GpubenchError, match="whole numbers >= 1"):
        sw.settings_for([1, 0], math.inf, None, 1, 1)
    with pytest.raises(GpubenchError, match="pairs"):
        sw.settings_for(1, math.inf, [(10,)], 1, 1)


def test_point_metrics_per_user_and_per_gpu() -> None:
    base = {
        "tpot_ms": m("tpot_ms", 20.0, n=4),
        "output_tok_s": m("output_tok_s", 400.0, ci95_low=380, ci95_high=420),
    }
    out = sw.point_metrics(base, gpus=4)
    assert out["output_tok_s_per_user"].value == pytest.approx(50.0)
    assert out["output_tok_s_per_gpu"].value == pytest.approx(100.0)
    assert out["output_tok_s_per_gpu"].spread["ci95_low"] == pytest.approx(95.0)
    assert sw.named(out["output_tok_s"], "c4").name == "output_tok_s.c4"


# what every inner test file here starts with: the server class, the stub's URL, a workload
INNER = (
    """
import pytest
"""
    + SERVER_CLASSES
    + """
URL = {url!r}
WORKLOAD = dict(input_len=16, output_len=30, prompts_per_user=2, min_prompts=2)
"""
)

SWEEP_FILE = (
    INNER
    + """
def test_sweep(serve_bench):
    r = serve_bench.sweep(Server(URL), concurrency=[1, 2, 3, 6, 12], **WORKLOAD)
    print("SWEEP", [(p.concurrency, round(p["output_tok_s"], 1), round(p["ttft_ms"], 1),
                     round(p["e2el_ms"], 1), p.saturated) for p in r.points])
    assert r.stopped_by == "saturation"

def test_capacity(serve_bench):
    r = serve_bench.capacity(Server(URL), slo={{"ttft_ms": 120}}, percentile=90,
                             max_concurrency=6, **WORKLOAD)
    p90 = [(p.concurrency, round(p.metrics["ttft_ms"].spread["p90"], 1)) for p in r.points]
    print("CAPACITY", r.max_concurrency, p90)
    assert r.max_concurrency == 3
"""
)


def test_sweep_and_capacity_against_k_streams(pytester, start_stub) -> None:
    stub = start_stub("--max-streams", "3", "--ttft-ms", "20", "--tokens-per-s", "60")
    pytester.makepyfile(SWEEP_FILE.format(url=stub.base_url))
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu", "-s")
    out = result.stdout.str()
    result.assert_outcomes(passed=2)
    data = json.loads((pytester.path / "out.json").read_text())
    sweep_entry, capacity_entry = data["benchmarks"]

    # the sweep: tokens/s rises to 3 streams' worth, then stays flat; it stopped at 6
    points = sweep_entry["extra_info"]["sweep"]["points"]
    assert [p["concurrency"] for p in points] == [1, 2, 3, 6], out
    tok = [p["metrics"]["output_tok_s"]["value"] for p in points]
    one_stream = 30 / (0.020 + 29 / 60)  # tokens per request / seconds per request
    assert 0.75 * one_stream < tok[0] < 1.1 * one_stream, out
    assert 1.7 < tok[1] / tok[0] < 2.3, out
    assert 2.5 < tok[2] / tok[0] < 3.4, out
    assert 0.85 < tok[3] / tok[2] < 1.15, out
    assert points[3]["saturated"] and not points[2]["saturated"]
    # queued requests wait: latency doubles from 3 to 6 streams
    e2el = [p["metrics"]["e2el_ms"]["value"] for p in points]
    assert e2el[3] > 1.5 * e2el[2], out
    for p in points:
        per_user = p["metrics"]["output_tok_s_per_user"]["value"]
        assert 50 < per_user < 62, out  # each stream at the stub's 60 tok/s
        per_gpu = p["metrics"]["output_tok_s_per_gpu"]["value"]
        assert per_gpu == pytest.approx(p["metrics"]["output_tok_s"]["value"])  # cpu: one
        assert p["num_prompts"] == max(2, 2 * p["concurrency"])
        assert p["warmups"] == p["concurrency"]
        assert 0 < p["steady"]["full_fraction"] <= 1
    metrics = sweep_entry["extra_info"]["metrics"]
    for label in ("c1", "c2", "c3", "c6"):
        for name in ("output_tok_s", "output_tok_s_per_user", "output_tok_s_per_gpu", "ttft_ms"):
            assert f"{name}.{label}" in metrics
    assert "output_tok_s.c12" not in metrics
    assert sweep_entry["stats"]["rounds"] == 1

    # capacity: 3, bracketed (1, 2, 4), bisected (3), the boundary re-measured (3, 4)
    cap = capacity_entry["extra_info"]["capacity"]
    assert capacity_entry["extra_info"]["metrics"]["capacity_users"]["value"] == 3
    assert capacity_entry["extra_info"]["metrics"]["capacity_users"]["higher_is_better"]
    assert [p["concurrency"] for p in cap["points"]] == [1, 2, 4, 3, 3, 4], out
    assert [p["meets_slo"] for p in cap["points"]] == [True, True, False, True, True, False]
    # 20 ms unqueued against 120 ms: clear. At 4 users on 3 slots only some requests queue
    # (~500 ms): the p90 of 8 requests misses, and its interval (their 5th to 8th) may hold the
    # limit; then the answer says so, in the results and on the point's line
    verdicts = [p["slo_check"]["ttft_ms"]["verdict"] for p in cap["points"]]
    assert verdicts[:2] == ["meets", "meets"] and verdicts[3:5] == ["meets", "meets"], verdicts
    assert verdicts[2] in ("misses", "unsure") and verdicts[5] in ("misses", "unsure")
    if "unsure" in verdicts:
        assert cap["within_noise"].startswith("c4's p90 ttft"), cap["within_noise"]
        assert "capacity 3 users is within the noise at its boundary: c4's p90" in out, out
        assert "misses the SLO (within the noise)" in out
    else:
        assert cap["within_noise"] is None

    # baselines gate each point: the file loads as a baseline, and a slower c3 is a regression
    base = from_document(pytester.path / "out.json", data)
    entry = base.entries[next(k for k in base.entries if k.endswith("test_sweep"))]
    slower = dict(entry.metrics)
    c3 = entry.metrics["output_tok_s.c3"]
    slower["output_tok_s.c3"] = Metric(c3.name, c3.value * 0.5, c3.unit, True)
    findings = {f.metric: f for f in compare_metrics(slower, entry.metrics, {}, 0.1)}
    assert findings["output_tok_s.c3"].verdict == "suspect"
    assert findings["output_tok_s.c1"].verdict == "ok"
    cap_entry = base.entries[next(k for k in base.entries if k.endswith("test_capacity"))]
    fewer = {"capacity_users": Metric("capacity_users", 2, "users", True)}
    (finding,) = compare_metrics(fewer, cap_entry.metrics, {}, 0.1)
    assert finding.verdict == "suspect"


BUDGET_FILE = (
    INNER
    + """
def test_sweep(serve_bench):
    r = serve_bench.sweep(Server(URL), concurrency=[1, 2, 8], time_budget_s=7, **WORKLOAD)
    print("SWEEP", [(p.concurrency, round(p.wall_s, 2)) for p in r.points])
    assert r.stopped_by == "time_budget"

def test_capacity(serve_bench):
    r = serve_bench.capacity(Server(URL), slo={{"ttft_ms": 120}}, max_concurrency=6,
                             time_budget_s=3, **WORKLOAD)
    assert (r.max_concurrency, r.upper, r.stopped_by) == (1, None, "time_budget")
"""
)


def test_time_budget_stops_sweep_and_capacity_with_what_they_measured(pytester, start_stub) -> None:
    """Each point at the stub is 3 waves of one ~0.5 s request (2 per user + 1 warm-up each):
    c1 and c2 ~1.5 s each; c8 is estimated at c2's wave time x 3 waves x 8/2 users ~6 s, so a
    7 s sweep measures c1 and c2 (3 s, and c2 was estimated at 3 s more) and stops before c8;
    a 3 s capacity search stops before c2 (1.5 s spent + 3 s estimated)."""
    stub = start_stub("--max-streams", "3", "--ttft-ms", "20", "--tokens-per-s", "60")
    pytester.makepyfile(BUDGET_FILE.format(url=stub.base_url))
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu")
    out = result.stdout.str()
    result.assert_outcomes(passed=2)
    sweep_entry, capacity_entry = json.loads((pytester.path / "out.json").read_text())["benchmarks"]
    sweep = sweep_entry["extra_info"]["sweep"]
    assert [p["concurrency"] for p in sweep["points"]] == [1, 2], out
    assert sweep["stopped_by"] == "time_budget" and sweep["time_budget_s"] == 7
    assert all(1.2 < p["wall_s"] < 3.0 for p in sweep["points"]), sweep["points"]
    assert "output_tok_s.c2" in sweep_entry["extra_info"]["metrics"]
    cap = capacity_entry["extra_info"]["capacity"]
    assert [p["concurrency"] for p in cap["points"]] == [1]
    assert (cap["max_concurrency"], cap["upper"], cap["stopped_by"]) == (1, None, "time_budget")
    assert capacity_entry["extra_info"]["metrics"]["capacity_users"]["value"] == 1
    # a piped run (no terminal) still shows each finished point and why the work stopped
    assert "gpubench: sweep c1: " in out and "gpubench: sweep c2: " in out, out
    assert "gpubench: sweep stopped before c8: about" in out, out
    assert "gpubench: capacity c1: " in out and "meets the SLO" in out, out
    assert "gpubench: capacity search stopped before c2" in out, out
    # and the results say the capacity is a lower bound
    assert "capacity search stopped by time_budget_s=3 after 1 point: 1 users" in out, out
    assert "sweep stopped by time_budget_s=7 after c1, c2" in out, out


KNOWN_FILE = (
    INNER
    + """
def test_sweep_then_capacity(serve_bench):
    sweep = serve_bench.sweep(Server(URL), concurrency=[1, 2, 4], **WORKLOAD)
    r = serve_bench.capacity(Server(URL), slo={{"ttft_ms": 120}}, max_concurrency=6,
                             known=sweep, **WORKLOAD)
    assert r.max_concurrency == 3
    print("MEASURED", [p.concurrency for p in r.points])

def test_other_workload(serve_bench):
    sweep = serve_bench.sweep(Server(URL), concurrency=[1], **WORKLOAD)
    serve_bench.capacity(Server(URL), slo={{"ttft_ms": 120}}, known=sweep,
                         **dict(WORKLOAD, input_len=32))

def test_known_answers_it_all(serve_bench):
    sweep = serve_bench.sweep(Server(URL), concurrency=[1, 2, 4], **WORKLOAD)
    r = serve_bench.capacity(Server(URL), slo={{"ttft_ms": 120}}, max_concurrency=2,
                             remeasure=0, known=sweep, **WORKLOAD)
    assert (r.max_concurrency, r.capped, r.points) == (2, True, [])

def test_not_points(serve_bench):
    serve_bench.capacity(Server(URL), slo={{"ttft_ms": 120}}, known=[1, 2], **WORKLOAD)
"""
)


def test_capacity_from_a_sweeps_points_measures_only_the_boundary(pytester, start_stub) -> None:
    stub = start_stub("--max-streams", "3", "--ttft-ms", "20", "--tokens-per-s", "60")
    pytester.makepyfile(KNOWN_FILE.format(url=stub.base_url))
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu", "-s")
    out = result.stdout.str()
    result.assert_outcomes(passed=2, failed=2)
    # the sweep measured 1, 2 (pass) and 4 (fails: queued): bisect to 3, re-measure 3 and 4
    assert "MEASURED [3, 3, 4]" in out, out
    # one entry holds both: the round timed the sweep, the search's time is a metric
    (entry,) = [
        b for b in json.loads((pytester.path / "out.json").read_text())["benchmarks"]
        if b["name"] == "test_sweep_then_capacity"
    ]  # fmt: skip
    assert [p["concurrency"] for p in entry["extra_info"]["sweep"]["points"]] == [1, 2, 4]
    metrics = entry["extra_info"]["metrics"]
    assert metrics["capacity_users"]["value"] == 3 and "output_tok_s.c4" in metrics
    # three points of >= 3 waves of one ~0.5 s request each (the stub's fixed pacing)
    assert 4.0 < metrics["capacity_search_s"]["value"] < 30
    cap = entry["extra_info"]["capacity"]
    assert cap["known"] == {"c1": True, "c2": True, "c4": False}
    assert cap["max_concurrency"] == 3
    assert "known point c1 was measured at input_len 16, output_len 30" in out, out
    assert "this capacity search runs 32, 30" in out
    # an answer at max_concurrency is a lower bound, and the results say so
    assert "test_known_answers_it_all: capacity 2 users is the most the search tried" in out, out
    assert "test_sweep_then_capacity: capacity 3 users is the most" not in out
    assert "known must be a serve_bench.sweep (or .capacity) result or its .points, got list" in out
    assert out.count("Traceback") == 0


STORED_FILE = (
    INNER
    + """
def test_sweep(serve_bench):
    serve_bench.sweep(Server(URL), concurrency=[1, 2, 4], **WORKLOAD)

def test_capacity_from_last_week(serve_bench):
    known = serve_bench.stored_points("base.json", "test_sweep")
    r = serve_bench.capacity(Server(URL), slo={{"ttft_ms": 120}}, max_concurrency=6,
                             known=known, **WORKLOAD)
    print("MEASURED", [p.concurrency for p in r.points], r.max_concurrency)

def test_no_such_sweep(serve_bench):
    serve_bench.stored_points("base.json", "test_nothing")
"""
)


def test_capacity_from_a_stored_sweep(pytester, start_stub) -> None:
    """The sweep stored in one session, the capacity search started from it in the next."""
    stub = start_stub("--max-streams", "3", "--ttft-ms", "20", "--tokens-per-s", "60")
    pytester.makepyfile(STORED_FILE.format(url=stub.base_url))
    first = pytester.runpytest(
        "--device=cpu", "-k", "test_sweep", "--gpubench-save-baseline=base.json"
    )
    first.assert_outcomes(passed=1)
    second = pytester.runpytest("--device=cpu", "-s", "-k", "not test_sweep")
    out = second.stdout.str()
    second.assert_outcomes(passed=1, failed=1)
    assert "MEASURED [3, 3, 4] 3" in out, out
    assert (
        "serve_bench.stored_points: base.json: no benchmark with sweep points matches "
        "'test_nothing'; those with points: test_capacity_from_a_stored_sweep.py::test_sweep"
    ) in out, out
    assert "Traceback" not in out


def test_sweep_arguments_fail_with_one_line(pytester, stub_server) -> None:
    pytester.makepyfile(
        SWEEP_FILE.split("WORKLOAD")[0].format(url=stub_server.base_url)
        + """
def test_two_axes(serve_bench):
    serve_bench.sweep(Server(URL), concurrency=[1, 2], request_rate=[1.0])

def test_rounds(serve_bench):
    serve_bench.sweep(Server(URL), concurrency=[1, 2], rounds=3)

def test_no_slo(serve_bench):
    serve_bench.capacity(Server(URL), slo={})
"""
    )
    result = pytester.runpytest("--device=cpu")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*serve_bench.sweep: give exactly one list*",
            "*serve_bench.sweep: rounds is not a sweep argument*",
            "*serve_bench.capacity: slo must name at least one limit*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_point_line_says_when_the_server_served_prompts_from_its_cache() -> None:
    """The permanent line of a point names a cached share worth knowing (the H200's flattered
    sweep points had 50-90% of their prompt tokens cached) and stays quiet about BOS-sized
    shares."""
    base = {"output_tok_s": metric("output_tok_s", 100.0), "ttft_ms": m("ttft_ms", 20.0, p90=30.0)}
    hit = sw.SweepPoint(
        2,
        None,
        100,
        10,
        {**base, "cached_prompt_fraction": m("cached_prompt_fraction", 0.9)},
        label="c2",
    )
    bos = sw.SweepPoint(
        2,
        None,
        100,
        10,
        {**base, "cached_prompt_fraction": m("cached_prompt_fraction", 0.01)},
        label="c2",
    )
    assert "90% of prompt tokens from the server's cache" in sw.describe_point("sweep", hit)
    assert "cache" not in sw.describe_point("sweep", bos)


BURST_FILE = (
    INNER
    + """
def test_plain(serve_bench):
    serve_bench(Server(URL), input_len=16, output_len=30, num_prompts=16, concurrency=8,
                warmups=8)

def test_point(serve_bench):
    serve_bench.sweep(Server(URL), concurrency=[8], **WORKLOAD)
"""
)


def test_sweep_points_measure_steady_load_not_the_burst_of_the_start(pytester, start_stub):
    """A server that computes arriving prompts one at a time (20 ms each) and then streams 30
    tokens at 100 tok/s. Eight users who start together make a burst: the k-th waits for
    k - 1 prefills, so the first wave's TTFTs are 20, 40, ..., 160 ms. A plain serve_bench run
    (warm-ups, a pause, then every user at once, as `vllm bench serve` does) has that wave in
    its measured requests: half of 16, so p90 ~150 ms. A sweep point's warm-ups lead straight
    into its measured requests, which then arrive one per finished warm-up (20 ms apart) and
    wait for no one: p90 ~20 ms plus transport. On the H200 the burst alone put a 12-user
    point's p90 TTFT at 2.8 s, median 0.33 s, and failed a 2 s SLO."""
    stub = start_stub("--prefill-ms", "20", "--tokens-per-s", "100")
    pytester.makepyfile(BURST_FILE.format(url=stub.base_url))
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu")
    result.assert_outcomes(passed=2)
    entries = {
        b["name"]: b["extra_info"]
        for b in json.loads((pytester.path / "out.json").read_text())["benchmarks"]
    }
    plain = entries["test_plain"]["metrics"]
    (point,) = entries["test_point"]["sweep"]["points"]
    assert point["num_prompts"] == 16 and point["warmups"] == 8
    burst_p90 = plain["ttft_ms"]["spread"]["p90"]
    steady_p90 = point["metrics"]["ttft_ms"]["spread"]["p90"]
    assert 110 < burst_p90 < 220, plain["ttft_ms"]
    assert steady_p90 < 70, point["metrics"]["ttft_ms"]
    # the load stayed full from the first measured request (the warm-ups were in flight)
    assert point["steady"]["ramp_s"] < 0.05 and point["steady"]["full_fraction"] > 0.6
    # throughput counts the warm-ups' tokens streamed in the measured window too: what the
    # server did in it; measured tokens + those = output tok/s x duration
    out = point["metrics"]["output_tok_s"]
    lead = out["spread"]["lead_tokens"]
    assert 0 < lead < 8 * 30
    duration = point["metrics"]["duration_s"]["value"]
    assert out["value"] * duration == pytest.approx(16 * 30 + lead, rel=1e-6)


def _exact_ranks(n: int, q: float, confidence: float = 0.95) -> tuple[int, int]:
    """The order-statistic ranks of a percentile's interval from the binomial CDF summed by
    hand (math.comb), independent of scipy: the smallest r with P(B <= r) >= tail, and the
    smallest r with P(B <= r) >= 1 - tail, plus one."""
    tail = (1 - confidence) / 2
    cdf, low, high = 0.0, None, None
    for r in range(n + 1):
        cdf += math.comb(n, r) * q**r * (1 - q) ** (n - r)
        if low is None and cdf >= tail:
            low = r
        if high is None and cdf >= 1 - tail:
            high = r + 1
    return min(max(low, 1), n), min(max(high, 1), n)


@pytest.mark.parametrize(("n", "percentile"), [(100, 90), (36, 90), (24, 90), (200, 99), (30, 50)])
def test_quantile_interval_takes_the_binomial_order_statistics(n, percentile) -> None:
    from pytest_gpubench.metrics.stats import quantile_interval

    values = [float(v) for v in range(n, 0, -1)]  # n .. 1: sorted inside, value = rank
    low, high = quantile_interval(values, percentile)
    assert (low, high) == _exact_ranks(n, percentile / 100)
    assert low <= np.percentile(values, percentile) <= high


def test_slo_check_says_when_the_limit_is_inside_the_noise() -> None:
    """36 requests like the H200's 12-user point (a third slow): its p90 TTFT's interval spans
    the slow ones, so a limit between the fast and the slow group is clear, one among the slow
    is unsure."""
    from pytest_gpubench.serving.client import RequestResult, RequestSpec

    spec = RequestSpec("completions", {"prompt": "x"}, 8, 1, 0)
    ttfts = [0.3] * 24 + [2.0 + 0.1 * i for i in range(12)]  # 2.0 .. 3.1 s
    rs = [RequestResult(spec, start=0.0, ok=True, ttft=t, end=t + 1.0) for t in ttfts]
    clear = sw.slo_check(rs, {"ttft_ms": 1000}, 90)["ttft_ms"]
    assert clear["verdict"] == "misses" and clear["low"] == pytest.approx(2400.0)
    assert clear["high"] == pytest.approx(3100.0)  # the largest: 36 samples reach rank 36
    unsure = sw.slo_check(rs, {"ttft_ms": 2800}, 90)["ttft_ms"]
    assert unsure["verdict"] == "unsure"
    assert sw.slo_check(rs, {"ttft_ms": 5000}, 90)["ttft_ms"]["verdict"] == "meets"
    point = sw.SweepPoint(12, None, 1000, 300, {}, label="c12", slo_check={"ttft_ms": unsure})
    other = sw.SweepPoint(4, None, 1000, 300, {}, label="c4", slo_check={"ttft_ms": unsure})
    text = sw.boundary_noise([point, other], (11, 12), 90)
    # p90 by linear interpolation: rank 0.9 x 35 = 31.5, between 2.7 and 2.8 s
    assert text == "c12's p90 ttft 2,750 ms (95% interval 2,400 .. 3,100) against 2,800"
    assert sw.boundary_noise([point], (4, 5), 90) is None  # not at the boundary
