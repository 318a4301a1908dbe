"""The real NVML and CUDA paths, on a GPU machine (the test suite uses a stand-in NVML).

Run there with the plugin from the repository (scripts/gpu/README.md):

    python3 -m pytest -p pytest_gpubench.plugin --device=auto --gpubench-measure-ceilings \
        --gpubench-save-baseline=$OUT/gpu-paths.json scripts/gpu/test_real_gpu_paths.py

Each test asserts what the hardware must show for the plugin's numbers to mean anything:
NVML finds the GPU and its memory, a bf16 matmul loop keeps it busy and draws power that the
energy counter integrates, the measured ceilings are within the device's datasheet figures,
and the MFU of a known FLOP count lands between 0 and 100%.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

N = 8192
FLOPS_PER_MATMUL = 2 * N**3
MATMULS = 200


def test_nvml_detects_the_gpu_and_its_memory(request: pytest.FixtureRequest) -> None:
    from pytest_gpubench.state import state

    run = state(request.config)
    det = run.device.detection
    assert det.gpus, det.summary
    gpu = det.gpus[0]
    assert gpu.name == torch.cuda.get_device_name(0)
    total_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    assert abs(gpu.memory_gib - total_gib) < 1.0, (gpu.memory_gib, total_gib)
    assert det.driver and det.cuda
    assert run.device.chosen_by in ("--device", "default")
    assert run.device.profile.bandwidth_gbs and run.device.profile.tflops.get("bf16")


def test_matmul_telemetry_energy_and_mfu(gpubench) -> None:
    a = torch.randn(N, N, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(N, N, device="cuda", dtype=torch.bfloat16)

    def many() -> None:  # ~0.3 s a round: NVML averages utilisation over 1/6 s or more
        for _ in range(MATMULS):
            a @ b

    gpubench(many, work=MATMULS, unit="matmuls", rounds=5, warmup_rounds=1)
    m = gpubench.metrics
    t = gpubench.telemetry
    assert t.get("gpu_util_pct", 0) > 80, t  # the GPU was the busy part
    assert t.get("avg_power_w", 0) > 200 and t.get("energy_j", 0) > 0, t
    assert m["host_busy_cores"].value < 4  # the 16-core host was not crowded
    pct = gpubench.mfu(m["matmuls_per_s"].value, FLOPS_PER_MATMUL, dtype="bf16")
    assert pct is not None and 20 < pct < 100, pct
    if "mfu_measured_pct" in gpubench.metrics:  # --gpubench-measure-ceilings
        assert 50 < gpubench.metrics["mfu_measured_pct"].value < 110


def test_measured_ceilings_are_within_the_datasheet(request: pytest.FixtureRequest) -> None:
    from pytest_gpubench.state import state

    run = state(request.config)
    ceilings = run.ceilings()
    if ceilings is None:
        pytest.skip("run with --gpubench-measure-ceilings")
    profile = run.device.profile
    assert 0.5 * profile.bandwidth_gbs < ceilings.copy_gbs < 1.1 * 2 * profile.bandwidth_gbs
    assert (
        0.4 * profile.tflops["bf16"] < ceilings.matmul_tflops["bf16"] < 1.1 * profile.tflops["bf16"]
    )
