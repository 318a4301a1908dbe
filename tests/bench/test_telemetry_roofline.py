"""Telemetry around every benchmark, and roofline / MFU figures from profile and model."""

from __future__ import annotations

import json

import pytest

from pytest_gpubench.bench.ceilings import measure
from pytest_gpubench.devices import load_profiles
from pytest_gpubench.metrics import roofline
from pytest_gpubench.models.catalog import load_spec

SLEEPY = """
import time

def test_work(gpubench):
    gpubench(time.sleep, 0.3, work=10, unit="samples", rounds=2, warmup_rounds=1)
"""

# The same workload on the test clock (pytest_gpubench/testing/fake_clock.py): each round
# takes exactly 0.3 s of it, whatever else the machine is doing.
ON_TEST_CLOCK = """
from pytest_gpubench.testing import fake_clock

def test_work(gpubench, monkeypatch):
    fake_clock.install(monkeypatch)
    gpubench(fake_clock.advance, 0.3, work=10, unit="samples", rounds=2, warmup_rounds=1)
"""
TEST_TIMER = "--benchmark-timer=pytest_gpubench.testing.fake_clock.now"


def test_gpu_telemetry_gives_power_energy_and_energy_per_unit(pytester, fake_nvml) -> None:
    """NVML is a stand-in here (no GPU): a constant 250 W, an energy counter that integrates
    it over the test clock, 87% utilisation. The sampler must turn those into per-round energy
    and J/sample. Rounds, sample times and the counter all run on the test clock, so a round
    is 0.3 s and 75 J exactly, however loaded the machine is."""
    fake_nvml("NVIDIA H100 80GB HBM3|81559|9.0")
    pytester.makepyfile(ON_TEST_CLOCK)
    result = pytester.runpytest_subprocess("--benchmark-json=out.json", TEST_TIMER)
    result.assert_outcomes(passed=1)
    metrics = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"][
        "metrics"
    ]
    assert metrics["avg_power_w"]["value"] == pytest.approx(250.0)
    assert metrics["gpu_util_pct"]["value"] == pytest.approx(87.0)
    # 250 W x 0.3 s per round (the counter counts whole mJ)
    assert metrics["energy_per_round_j"]["value"] == pytest.approx(75.0, abs=0.01)
    assert metrics["wall_time_s"]["value"] == pytest.approx(0.3, abs=1e-9)
    assert metrics["energy_per_samples_j"]["unit"] == "J/samples"
    assert metrics["energy_per_samples_j"]["value"] == pytest.approx(
        metrics["energy_per_round_j"]["value"] / 10, rel=1e-6
    )
    assert metrics["energy_per_samples_j"]["higher_is_better"] is False
    result.stdout.fnmatch_lines(["*::test_work * energy_per_samples_j * J/samples *lower"])


def test_without_nvml_telemetry_is_off_and_host_memory_recorded(pytester) -> None:
    pytester.makepyfile(SLEEPY.replace("0.3", "0.01"))
    result = pytester.runpytest_subprocess("--benchmark-json=out.json", "--device=cpu")
    bench = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]
    assert bench["extra_info"]["telemetry"].startswith("GPU telemetry off (")
    assert bench["extra_info"]["metrics"]["host_mem_peak_gib"]["value"] > 0.01
    assert "energy_per_round_j" not in bench["extra_info"]["metrics"]
    result.stdout.fnmatch_lines(["note: GPU telemetry off (*); host memory recorded instead"])


def test_decode_bound_of_an_8b_model_on_h100() -> None:
    """Llama-3.1-8B bf16 reads ~15 GB per token (no embedding table): ~220 tok/s at 3.35 TB/s.
    shared/research/verified-here.md measured the same model's plain generate() at 11 tok/s."""
    spec, _ = load_spec("meta-llama/Llama-3.1-8B-Instruct")
    h100 = load_profiles().get("h100")
    bound = roofline.decode_bound(spec, "bf16", h100.bandwidth_gbs)
    assert bound.bytes_per_step == pytest.approx(2 * 7.5049e9, rel=0.001)
    assert bound.tokens_per_s == pytest.approx(223, rel=0.01)
    deep = roofline.decode_bound(spec, "bf16", h100.bandwidth_gbs, context=32768, batch=8)
    # 8 sequences x 32k tokens x 32 layers x 8 KV heads x 128 x 2 (K,V) x 2 bytes = 34.4 GB
    assert deep.bytes_per_step == pytest.approx(2 * 7.5049e9 + 34.36e9, rel=0.001)


def test_moe_decode_reads_only_active_experts() -> None:
    spec, _ = load_spec("openai/gpt-oss-20b")
    active = roofline.active_weight_bytes(spec, "mxfp4")
    # 4 of 32 experts at 4.25 bits (1.27 GB) + attention (1.27 GB) + lm_head (1.16 GB) in bf16
    assert active == pytest.approx(3.72e9, rel=0.01)
    assert active < roofline.active_weight_bytes(spec, "bf16")


def test_flops_and_mfu() -> None:
    spec, _ = load_spec("meta-llama/Llama-3.1-8B-Instruct")
    forward = roofline.flops_per_token(spec, 0)
    assert forward == pytest.approx(2 * spec.active_params)
    assert roofline.flops_per_token(spec, 0, training=True) == pytest.approx(3 * forward)
    assert roofline.flops_per_token(spec, 4096) > forward
    h100 = load_profiles().get("h100")
    assert roofline.mfu(494.7e12, h100, "bf16") == pytest.approx(0.5, rel=1e-3)
    assert roofline.mfu(1e12, h100, "fp4") is None  # no published fp4 peak for Hopper


def test_roofline_and_mfu_are_recorded_from_the_model_marker(pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.model("meta-llama/Llama-3.1-8B-Instruct", quant="bf16")
        def test_decode(gpubench):
            gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
            gpubench.roofline_decode(111.5)
            gpubench.mfu(1000.0, 2 * 7.5e9)
        """
    )
    result = pytester.runpytest("--device=h100", "--benchmark-json=out.json")
    result.assert_outcomes(passed=1)
    metrics = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"][
        "metrics"
    ]
    assert metrics["roofline_pct"]["value"] == pytest.approx(50.0, rel=0.01)
    assert metrics["roofline_bound_tok_s"]["value"] == pytest.approx(223, rel=0.01)
    assert metrics["mfu_pct"]["value"] == pytest.approx(100 * 15e12 / 989.4e12, rel=1e-3)


def test_ceilings_need_a_gpu() -> None:
    assert measure() is None  # no CUDA on this machine: nothing is measured, nothing faked
