"""``serve_bench.sweep(..., engine_ceiling=True)`` on a llama-server the plugin started: each
point carries the engine's own batched ceiling (llama-batched-bench beside the server) and its
share of it; checked against a run of the tool made here, apart from the plugin's code."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

SHAPE = (100, 64)  # prompt tokens, output tokens


def independent_ceiling(server_bin: Path, gguf: str, parallel: int) -> float:
    """batched-bench's decode tok/s at ``parallel`` sequences of SHAPE, run and read here
    (the same flags the server had: one thread, no GPU layers to give)."""
    tool = server_bin.resolve().parent / "llama-batched-bench"
    argv = [
        str(tool), "-m", gguf, "-c", "2048", "-npp", str(SHAPE[0]), "-ntg", str(SHAPE[1]),
        "-npl", f"{parallel},{parallel}", "--output-format", "jsonl", "--threads", "1",
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    text = out.stdout + out.stderr
    rows = [json.loads(line) for line in text.splitlines() if line.startswith('{"n_kv_max"')]
    return next(r["speed_tg"] for r in rows if r["pl"] == parallel)


def test_live_sweep_points_carry_the_engines_ceiling(
    pytester: pytest.Pytester, tiny_model, llama_server_bin
) -> None:
    gguf, exe = str(tiny_model.gguf_path), str(llama_server_bin)
    pytester.makepyfile(
        f"""
def test_sweep(llm_server, serve_bench):
    server = llm_server(engine="llamacpp", model={gguf!r}, served_name="tiny-ceiling",
                        executable={exe!r},
                        options={{"context": 2048, "parallel": 2, "threads": 1}})
    serve_bench.sweep(server, concurrency=[1, 2], prompts_per_user=2, stop_at_saturation=False,
                      input_len={SHAPE[0]}, output_len={SHAPE[1]}, engine_ceiling=True)
"""
    )
    result = pytester.runpytest_subprocess("--benchmark-json=out.json", "--device=cpu")
    result.assert_outcomes(passed=1)
    assert "no engine ceiling" not in result.stdout.str()
    entry = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"]
    points = entry["sweep"]["points"]
    assert [p["concurrency"] for p in points] == [1, 2]
    for p in points:
        m = p["metrics"]
        ceiling, pct = m["engine_ceiling_tok_s"], m["engine_ceiling_pct"]
        assert ceiling["spread"]["parallel"] == p["concurrency"]
        assert pct["value"] > 0
        expected_pct = 100 * m["output_tok_s"]["value"] / ceiling["value"]
        assert pct["value"] == pytest.approx(expected_pct, rel=1e-9)
        # the tool's decode rate, not its prompt or total rate: within a factor the busy
        # two-core machine's noise allows (runs of the same command here vary ~2x)
        here = independent_ceiling(llama_server_bin, gguf, p["concurrency"])
        assert here / 4 < ceiling["value"] < here * 4, (p["label"], ceiling["value"], here)
    # the per-point figures are not gated metrics of the entry
    assert not any(k.startswith("engine_ceiling") for k in entry["metrics"])
