"""Every ``extra_info`` section reads back typed, and writes back in the shape files hold.

``recorded/h200_sections.json`` is three entries of ``baselines/h200.json`` as an H200 run
saved them on 2026-12-01 (before results/sections.py existed; requests and points trimmed to
two each): a fine-tune (workload, bound), a llama-server run with layers on the CPU (serving,
requests, decode_batch, placement, an offload verdict) and a capacity search after a sweep.
The expected values below are read from that file by eye, not computed by the readers.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pytest_gpubench.metrics.bound import Verdict
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.results import sections as s
from pytest_gpubench.results.baseline import load

RECORDED = Path(__file__).parent / "recorded" / "h200_sections.json"
FINETUNE = "benchmarks/test_llm_training.py::test_gemma_3_270m_full_finetune"
OFFLOAD = (
    "scripts/gpu/test_llamacpp_cuda.py::test_llama8b_partial_offload_flagged_with_layer_counts"
)
CAPACITY = "scripts/gpu/test_llamacpp_cuda.py::test_llama8b_capacity[q4_k_m]"


@pytest.fixture(scope="module")
def stored() -> dict[str, dict]:
    doc = json.loads(RECORDED.read_text())
    return {b["fullname"]: b["extra_info"] for b in doc["benchmarks"]}


def test_a_file_saved_before_reads_back_section_by_section(stored: dict[str, dict]) -> None:
    finetune = stored[FINETUNE]
    work = s.read_workload(finetune)
    assert work is not None and (work.workload, work.device, work.dtype) == (
        "finetune",
        "cuda",
        "bfloat16",
    )
    assert work.source["model"] == "google/gemma-3-270m-it"
    assert work.facts["parameters"] == 268098176
    assert s.read_bound(finetune).bound == "host"
    assert s.read_meta(finetune, "ignored").date == "2026-12-01T12:52:06+00:00"

    off = stored[OFFLOAD]
    placement = s.read_placement(off)
    assert placement is not None and placement.offloaded is True
    assert (
        placement.offload == "20 of 33 layers on the GPU, 13 on the CPU; KV cache partly on the CPU"
    )
    assert placement.fields["cpu_layers"] == 13
    assert s.read_bound(off).bound == "offload"
    assert s.read_decode_batch(off) == s.DecodeBatch(1.0, 17.046451192656363, 33, 7.274241341999641)
    serving = s.read_serving(off)
    assert serving["engine"] == "llamacpp" and serving["model"] == "llama8b-q4_k_m"
    assert len(s.read_requests(off)) == 2
    assert s.read_telemetry_note(off) == ""  # this run had GPU telemetry

    cap = stored[CAPACITY]
    sweep, capacity = s.read_sweeps(cap)
    assert (sweep.kind, capacity.kind) == (s.SWEEP, s.CAPACITY)
    assert sweep.slo_ms == {} and sweep.max_concurrency is None  # the sweep had no SLO
    assert capacity.max_concurrency == 4 and capacity.percentile == 90
    assert capacity.slo_ms == {"ttft_ms": 2000.0, "tpot_ms": 50.0}
    assert capacity.fields["known"] == {"c1": True, "c2": True, "c4": True, "c8": False}
    points = s.read_points(cap)
    assert [(p.label, p.concurrency) for p in points] == [
        ("c1", 1),
        ("c2", 2),
        ("c6", 6),
        ("c5", 5),
    ]
    assert points[1].value("output_tok_s_per_gpu") == pytest.approx(261.34662792360166)
    assert all(p.bound is None for p in points)  # written before points carried a verdict


def test_each_section_writes_back_exactly_what_was_stored(stored: dict[str, dict]) -> None:
    """The typed values written again give the stored JSON, key for key: the format holds."""
    for key, extra in stored.items():
        again: dict = {}
        for metric in s.read_metrics(extra).values():
            s.write_metric(again, metric)
        meta = s.read_meta(extra, key)
        s.write_meta(again, meta.key, meta.date)
        s.write_bound(again, s.read_bound(extra))
        if (work := s.read_workload(extra)) is not None:
            s.write_workload(again, work)
        if (batch := s.read_decode_batch(extra)) is not None:
            s.write_decode_batch(again, batch)
        if (placement := s.read_placement(extra)) is not None:
            s.write_placement(again, placement.fields)
        if s.SERVING in extra:
            s.write_serving(again, s.read_serving(extra))
        if s.REQUESTS in extra:
            s.write_requests(again, s.read_requests(extra))
        for record in s.read_sweeps(extra):
            write = s.write_sweep if record.kind == s.SWEEP else s.write_capacity
            write(again, record.fields)
        assert json.dumps(again, sort_keys=True) == json.dumps(extra, sort_keys=True), key


def test_the_baseline_loader_reads_entries_through_the_sections() -> None:
    base = load(RECORDED)
    entry = base.entries[CAPACITY]
    assert entry.date == "2026-12-01T20:27:04+00:00"
    assert entry.metrics["capacity_users"].value == 4
    assert s.read_sweep(entry.extra, s.CAPACITY).max_concurrency == 4  # the whole section kept


def test_a_malformed_metric_names_the_file_and_the_field(tmp_path: Path) -> None:
    doc = json.loads(RECORDED.read_text())
    doc["benchmarks"][1]["extra_info"]["metrics"]["gpu_util_pct"]["unit"] = ""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(s.GpubenchError) as err:
        load(path)
    assert str(err.value) == (
        f"{path}: benchmarks[1].extra_info.metrics.gpu_util_pct: metric 'gpu_util_pct' field "
        "'unit' must be a non-empty string"
    )


def test_a_sweeps_serving_section_leaves_out_what_each_point_records() -> None:
    first = {"engine": "vllm", "input_len": 1000, "concurrency": 4, "num_prompts": 12}
    first.update(warmups=4, request_rate=None, requests_used=12, prompt_draw=[1, 2])
    extra: dict = {}
    s.write_sweep_serving(extra, first)
    assert extra == {"serving": {"engine": "vllm", "input_len": 1000}}


def test_decode_batch_is_stored_to_three_decimals() -> None:
    extra: dict = {}
    s.write_decode_batch(extra, s.DecodeBatch(3.14159, 812.5, 1100, 9.5))
    assert extra == {
        "decode_batch": {
            "mean_batch": 3.142,
            "decode_tok_s": 812.5,
            "context": 1100,
            "decoding_s": 9.5,
        }
    }


def test_readers_take_missing_and_malformed_sections_as_absent() -> None:
    junk = {
        "bound": "gpu",
        "placement": [1],
        "decode_batch": {"mean_batch": "x"},
        "sweep": {"points": [3, {"label": "c2", "concurrency": True, "metrics": []}]},
        "capacity": "none",
        "workload": None,
        "requests": {"a": 1},
        "telemetry": 7,
    }
    assert s.read_bound(junk) is None and s.read_placement(junk) is None
    assert s.read_decode_batch(junk) is None and s.read_workload(junk) is None
    assert s.read_requests(junk) == [] and s.read_telemetry_note(junk) == ""
    (point,) = s.read_points(junk)  # the number is no point; the bool is no concurrency
    assert (point.label, point.concurrency, dict(point.metrics)) == ("c2", None, {})
    assert [r.kind for r in s.read_sweeps(junk)] == [s.SWEEP]
    assert s.extra_in([]) == {} and s.extra_in({"extra_info": 5}) == {}
    assert s.entry_key({"fullname": "t::a", "extra_info": {"gpubench": {"key": "k"}}}) == "k"
    assert s.entry_key({"fullname": "t::a"}) == "t::a"


def test_a_verdict_and_a_metric_survive_the_round_trip() -> None:
    extra: dict = {}
    verdict = Verdict("host", "the calling thread was busy 97% of the timed work", "fewer syncs")
    s.write_bound(extra, verdict)
    s.write_metric(extra, Metric("tok_s", 10.0, "tok/s", True, {"rounds": 3.0}))
    copied = copy.deepcopy(json.loads(json.dumps(extra)))
    assert s.read_bound(copied) == verdict
    assert s.read_metrics(copied)["tok_s"] == Metric("tok_s", 10.0, "tok/s", True, {"rounds": 3.0})


GPUBENCH_RUN = """
from pytest_gpubench.testing import fake_clock

def test_workload(gpubench, monkeypatch):
    fake_clock.install(monkeypatch)
    gpubench(fake_clock.advance, 0.02, work=64, unit="samples", rounds=3, warmup_rounds=0)
"""


def test_what_the_fixture_writes_the_readers_read(pytester: pytest.Pytester) -> None:
    """A real run's --benchmark-json (no GPU here: telemetry is off, so no bound verdict)."""
    pytester.makepyfile(GPUBENCH_RUN)
    result = pytester.runpytest(
        "--benchmark-json=out.json",
        "--device=cpu",
        "--benchmark-timer=pytest_gpubench.testing.fake_clock.now",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=1)
    (bench,) = json.loads((pytester.path / "out.json").read_text())["benchmarks"]
    extra = s.extra_in(bench)
    rate = s.read_metrics(extra)["samples_per_s"]
    assert (rate.value, rate.unit, rate.higher_is_better) == (
        pytest.approx(3200),
        "samples/s",
        True,
    )
    assert "telemetry" in s.read_telemetry_note(extra).lower()
    assert s.read_bound(extra) is None and s.read_placement(extra) is None


def test_a_points_own_bound_verdict_reads_back() -> None:
    """Points written since issue 26 carry their own ``bound`` (``Verdict.as_dict()``); a
    malformed one reads as none rather than failing the file."""
    verdict = Verdict("kernel", "87% busy, decode at 31% of its bandwidth bound", "profile")
    extra: dict = {}
    s.write_sweep(
        extra,
        {
            "points": [
                {"label": "c1", "concurrency": 1, "metrics": {}, "bound": verdict.as_dict()},
                {"label": "c2", "concurrency": 2, "metrics": {}, "bound": "gpu"},
            ]
        },
    )
    one, two = s.read_points(json.loads(json.dumps(extra)))
    assert one.bound == verdict
    assert two.bound is None
