"""Counted FLOPs, MFU and energy per unit from the real tiny workloads on CPU.

Two child pytest runs of the tiny workloads: one with the stand-in NVML (tests/fakes/nvml: a
GPU drawing a constant 250 W, its energy counter integrating that over the clock) and the H200
profile, one without NVML on the CPU profile. Expected values come from the definitions, not
from the code under test: energy per image is the timed rounds' energy over their number, J per
output token the round energy over batch x output tokens, training energy per image is 250 W
times the time in epochs over the images trained; MFU is images/s x FLOPs per image over the
H200's datasheet 989.4 dense bf16 TFLOP/s. Nothing depends on how fast this machine is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plumbing.ci import require_module

require_module("torch", "the workloads need torch (the test extra installs it)")

FAKE_NVML = Path(__file__).resolve().parents[1] / "fakes" / "nvml"
H200_BF16_TFLOPS = 989.4  # dense bf16, the profile's datasheet figure
WATTS = 250.0  # the stand-in NVML's constant power

WORKLOADS = """
def test_diffusion(gpubench, diffusion_workload):
    diffusion_workload(
        model="black-forest-labs/FLUX.2-klein-4B", size="tiny", images=2, warmups=0,
        height=32, width=32, dtype="bfloat16",
    ).run(gpubench)

def test_detection(gpubench, detection_workload):
    detection_workload(
        size="tiny", images=10, epochs=2, batch_size=4, image_size=64, source_size=(64, 48),
        max_boxes=2, evaluate=False,
    ).run(gpubench)

def test_finetune(gpubench, finetune_workload):
    finetune_workload(
        size="tiny", samples=10, epochs=1, batch_size=4, max_length=32, evaluate=False
    ).run(gpubench)

def test_generate(gpubench, generate_workload):
    generate_workload(size="tiny", batch_size=2, input_len=8, output_len=4, rounds=2).run(gpubench)
"""


def _run(folder: Path, nvml: bool) -> dict:
    (folder / "test_workloads.py").write_text(WORKLOADS)
    env = dict(os.environ)
    if nvml:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FAKE_NVML), env.get("PYTHONPATH")]))
        env["FAKE_NVML_GPUS"] = "NVIDIA H200|143771|9.0"
    else:
        env.pop("FAKE_NVML_GPUS", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"--device={'h200' if nvml else 'cpu'}",
            "--benchmark-json=out.json",
            "test_workloads.py",
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    data = json.loads((folder / "out.json").read_text())
    return {b["name"]: b["extra_info"] for b in data["benchmarks"]}


@pytest.fixture(scope="module")
def with_nvml(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _run(tmp_path_factory.mktemp("nvml"), nvml=True)


@pytest.fixture(scope="module")
def without_nvml(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _run(tmp_path_factory.mktemp("no-nvml"), nvml=False)


def _value(info: dict, name: str, unit: str, higher: bool) -> float:
    m = info["metrics"][name]
    assert (m["unit"], m["higher_is_better"]) == (unit, higher), (name, m)
    return m["value"]


def test_diffusion_flops_per_step_and_image(with_nvml: dict) -> None:
    info = with_nvml["test_diffusion"]
    f = info["workload"]["facts"]["flops"]
    assert f["counter"] == "torch.utils.flop_counter.FlopCounterMode"
    assert f["steps"] == 4  # FLUX.2-klein's card
    assert f["transformer_calls_per_image"] == 4  # guidance 1.0: one pass per step
    assert min(f["per_step"], f["text_encoder_per_image"], f["vae_decode_per_image"]) > 0
    # an image is every step plus the text encoder and the VAE decode, all counted
    assert f["per_image"] == pytest.approx(
        4 * f["per_step"] + f["text_encoder_per_image"] + f["vae_decode_per_image"],
        rel=1e-12,
    )
    assert f["other_per_image"] == 0  # the scheduler has no matmuls


def test_diffusion_mfu_is_images_per_s_times_flops_over_the_peak(with_nvml: dict) -> None:
    info = with_nvml["test_diffusion"]
    spi = _value(info, "seconds_per_image", "s/image", False)
    per_image = info["workload"]["facts"]["flops"]["per_image"]
    achieved = _value(info, "achieved_tflops", "TFLOP/s", True)
    assert achieved == pytest.approx(per_image / spi / 1e12, rel=1e-9)
    mfu = _value(info, "mfu_pct", "%", True)
    assert mfu == pytest.approx(100 * achieved / H200_BF16_TFLOPS, rel=1e-9)


def test_diffusion_energy_per_image(with_nvml: dict) -> None:
    info = with_nvml["test_diffusion"]
    per_image = _value(info, "energy_per_image_j", "J/image", False)
    # one image per timed round: the two are the same NVML window over the same count
    assert per_image == pytest.approx(_value(info, "energy_per_round_j", "J", False), rel=1e-9)
    assert per_image > 0


def test_detection_flops_and_energy_over_the_timed_epochs(with_nvml: dict) -> None:
    info = with_nvml["test_detection"]
    f = info["workload"]["facts"]["flops"]
    assert f["batch"] == 4
    assert f["forward_per_step"] > 0
    assert f["backward_per_step"] > f["forward_per_step"]  # weight and input gradients
    assert f["per_step"] == f["forward_per_step"] + f["backward_per_step"]
    assert f["per_image"] == pytest.approx(f["per_step"] / 4, rel=1e-12)
    rate = _value(info, "train_images_per_s", "images/s", True)
    achieved = _value(info, "achieved_tflops", "TFLOP/s", True)
    assert achieved == pytest.approx(rate * f["per_image"] / 1e12, rel=1e-9)
    assert "mfu_pct" not in info["metrics"]  # trained in fp32 on CPU: the H200 has no fp32 peak
    # 8 training images per epoch, 2 epochs; energy read at the epochs' own clock reads
    epoch = _value(info, "epoch_time_s", "s", False)
    per_image = _value(info, "energy_per_image_j", "J/image", False)
    assert per_image == pytest.approx(WATTS * 2 * epoch / 16, rel=0.05)


def test_finetune_energy_per_sample_and_token(with_nvml: dict) -> None:
    info = with_nvml["test_finetune"]
    epoch = _value(info, "epoch_time_s", "s", False)
    per_sample = _value(info, "energy_per_sample_j", "J/sample", False)
    assert per_sample == pytest.approx(WATTS * epoch / 8, rel=0.05)  # 8 training samples
    per_token = _value(info, "energy_per_token_j", "J/token", False)
    samples = _value(info, "train_samples_per_s", "samples/s", True)
    tokens = _value(info, "train_tokens_per_s", "tok/s", True)
    # same joules over the same epochs: the ratio is exactly tokens per sample
    assert per_sample / per_token == pytest.approx(tokens / samples, rel=1e-9)


def test_generate_energy_per_output_token(with_nvml: dict) -> None:
    info = with_nvml["test_generate"]
    per_round = _value(info, "energy_per_round_j", "J", False)
    per_token = _value(info, "energy_per_output_token_j", "J/tok", False)
    assert per_token == pytest.approx(per_round / (2 * 4), rel=1e-9)  # batch 2 x 4 tokens
    assert _value(info, "output_tokens_per_j", "tok/J", True) == pytest.approx(
        1 / per_token, rel=1e-9
    )


def test_without_nvml_flops_are_counted_and_no_energy_is_claimed(without_nvml: dict) -> None:
    for name, info in without_nvml.items():
        energy = [m for m in info["metrics"] if m.startswith("energy_") or m.endswith("_per_j")]
        assert energy == [], name
        assert "mfu_pct" not in info["metrics"], name  # the CPU profile has no peak
    for name in ("test_diffusion", "test_detection"):
        info = without_nvml[name]
        assert info["workload"]["facts"]["flops"]["per_image"] > 0
        assert _value(info, "achieved_tflops", "TFLOP/s", True) > 0


def test_counted_flops_do_not_depend_on_the_profile_or_nvml(
    with_nvml: dict, without_nvml: dict
) -> None:
    for name in ("test_diffusion", "test_detection"):
        counted = with_nvml[name]["workload"]["facts"]["flops"]
        assert without_nvml[name]["workload"]["facts"]["flops"] == counted, name
