"""The shipped benchmarks/ suite: it collects cleanly on every profile (no marker or model
mistakes), and on a machine without weights every serving benchmark skips with a reason."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
REASONS = (
    "weights missing",
    "engine missing",
    "needs ",
    " GiB > ",
    "llm_server fixture",
    "runs only on",
)


@pytest.mark.parametrize("device", ["rtx4090", "spark", "h100", "rtx4090+rtx5070ti", "cpu"])
def test_plan_of_the_suite(device: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", f"--device={device}", "--gpubench-plan",
         "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"plan for {device}" in result.stdout
    if device == "rtx4090":
        assert "gpt-oss-120b mxfp4 @32k on llamacpp: weights 60.8" in result.stdout


@pytest.mark.parametrize(("marker", "count"), [("llm_inference", 36), ("vlm_inference", 16)])
def test_suite_skips_every_benchmark_with_a_reason(pytester, monkeypatch, marker, count) -> None:
    monkeypatch.setenv("GPUBENCH_MODELS_DIR", str(pytester.path / "no-models"))
    monkeypatch.setenv("HF_HOME", str(pytester.path / "no-hf"))
    # The serving files only: -m llm_inference also selects the in-process transformers
    # benchmarks, whose CPU-sized variants run here.
    serving = BENCHMARKS / f"test_{marker}.py"
    # the CPU-sized sweep (tiny GGUF on llama-server) runs wherever llama.cpp is: not a skip
    result = pytester.runpytest_subprocess(
        str(serving), "-m", marker, "-k", "not tiny", "--device=rtx4090", "-rs",
        "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(skipped=count)
    lines = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert lines
    for line in lines:
        assert any(reason in line for reason in REASONS), line
    weights = [line for line in lines if "weights missing" in line]
    for line in weights:  # the reason says where it looked and how to get them
        assert re.search(r"hf download \S+", line), line
        assert str(pytester.path / "no-models") in line
