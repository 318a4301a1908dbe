"""The bound verdict's rules (metrics/bound.py), one case per rule and at each threshold."""

from __future__ import annotations

import pytest

from pytest_gpubench.metrics.bound import BUSY_PCT, Facts, judge


def facts(**kw) -> Facts:
    base = {"gpu_util_pct": 90.0, "span_s": 10.0, "thread_busy": 0.3}
    return Facts(**{**base, **kw})


def test_no_gpu_telemetry_gives_no_verdict() -> None:
    assert judge(Facts(gpu_util_pct=None, span_s=10.0)) is None


def test_a_busy_gpu_is_the_bound_and_needs_no_advice() -> None:
    v = judge(facts(gpu_util_pct=94.0))
    assert v is not None and v.bound == "gpu" and v.advice == ""
    assert "94%" in v.reason


@pytest.mark.parametrize(("util", "expected"), [(BUSY_PCT, "gpu"), (BUSY_PCT - 0.1, "host")])
def test_the_busy_threshold_is_inclusive(util: float, expected: str) -> None:
    assert judge(facts(gpu_util_pct=util)).bound == expected


def test_threshold_sits_between_the_measured_groups() -> None:
    """docs/h100.md and archive/gpu-paths: fed GPUs read 72-100%, harness-bound runs 22-37%."""
    assert 37 < BUSY_PCT < 72


@pytest.mark.parametrize(("span", "expected"), [(0.99, "unknown"), (1.0, "gpu")])
def test_spans_shorter_than_nvml_window_are_unknown(span: float, expected: str) -> None:
    v = judge(facts(span_s=span))
    assert v.bound == expected
    if expected == "unknown":
        assert "0.99 s" in v.reason and "more rounds" in v.advice


def test_offload_wins_over_everything_even_a_busy_gpu() -> None:
    v = judge(facts(gpu_util_pct=99.0, offload="44 of 48 layers on the GPU, 4 on the CPU"))
    assert v.bound == "offload"
    assert "44 of 48 layers" in v.reason and "n_gpu_layers" in v.advice


def test_offload_is_judged_without_gpu_telemetry_too() -> None:
    assert judge(Facts(gpu_util_pct=None, span_s=5.0, offload="KV cache on the CPU")).bound == (
        "offload"
    )


@pytest.mark.parametrize(("share", "expected"), [(0.25, "data"), (0.24, "host")])
def test_waiting_for_batches_is_data_bound(share: float, expected: str) -> None:
    v = judge(facts(gpu_util_pct=24.0, data_wait_share=share))
    assert v.bound == expected
    if expected == "data":
        assert "waited 25%" in v.reason and "pre-process" in v.advice


@pytest.mark.parametrize(("busy", "expected"), [(0.9, "launch"), (0.89, "host")])
def test_a_saturated_issuing_thread_is_launch_bound(busy: float, expected: str) -> None:
    v = judge(facts(gpu_util_pct=27.0, thread_busy=busy))
    assert v.bound == expected
    if expected == "launch":
        assert "CUDA graph" in v.advice


def test_a_server_is_host_bound_and_a_saturated_client_is_named() -> None:
    engine = judge(facts(gpu_util_pct=40.0, thread_busy=0.2, server=True))
    assert engine.bound == "host" and "server's host side" in engine.reason
    client = judge(facts(gpu_util_pct=40.0, thread_busy=0.95, server=True))
    assert client.bound == "host" and "client" in client.reason and "taskset" in client.advice


def test_other_processes_are_named_when_they_used_half_a_core() -> None:
    assert (
        "other processes used 1.5 cores"
        in judge(facts(gpu_util_pct=30, host_busy_cores=1.5)).reason
    )
    assert "cores" not in judge(facts(gpu_util_pct=30, host_busy_cores=0.4)).reason


def test_warning_line_names_test_bound_reason_and_fix() -> None:
    v = judge(facts(gpu_util_pct=27.0, thread_busy=1.0))
    line = v.warning("bench.py::test_x")
    assert line.startswith("bench.py::test_x: launch-bound: GPU busy 27% (< 60%)")
    assert line.endswith(v.advice)


def test_a_server_stall_in_its_own_log_is_named_from_five_percent() -> None:
    """The H200's default llama-server: GPU busy 47%, its log stalled 59% of the run."""
    stalled = judge(Facts(gpu_util_pct=47.0, span_s=350.0, server=True, server_stall=0.59))
    assert stalled is not None and stalled.bound == "host"
    assert "stalled 59% of the time" in stalled.reason and "ServingWarning" in stalled.advice
    below = judge(Facts(gpu_util_pct=47.0, span_s=350.0, server=True, server_stall=0.049))
    assert below is not None and "HTTP, scheduling" in below.reason
    busy = judge(Facts(gpu_util_pct=68.0, span_s=95.0, server=True, server_stall=0.59))
    assert busy is not None and busy.bound == "gpu"  # a busy GPU is the bound all the same
