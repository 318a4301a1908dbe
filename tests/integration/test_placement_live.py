"""Placement truth from a live llama-server (CPU build, the tiny GGUF) started by ``llm_server``
in an inner pytest run: ``extra_info["placement"]`` reaches the saved results, with the fit
estimate (the ``model`` marker on the GGUF) beside the engine's own memory figure."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(
    "log_dir",
    [[], ["-p", "no:cacheprovider"]],
    ids=["log-file", "no-log-file"],
)
def test_llamacpp_placement_lands_in_saved_results(
    pytester: pytest.Pytester, tiny_model, llama_server_bin, log_dir: list[str]
) -> None:
    """With a log file (the pytest cache's folder) and without one (no cache, no
    --gpubench-log-dir: the H200 run that found this had neither), the placement is read."""
    gguf = str(tiny_model.gguf_path)
    pytester.makepyfile(
        f"""
import pytest

@pytest.mark.model({gguf!r})
def test_placement(llm_server, serve_bench):
    server = llm_server(engine="llamacpp", model={gguf!r}, served_name="tiny-placement",
                        executable={str(llama_server_bin)!r},
                        options={{"context": 2048, "parallel": 2, "threads": 1, "no_webui": True}})
    r = serve_bench(server, input_len=16, output_len=8, num_prompts=4, concurrency=2)
    assert r.failed == 0
"""
    )
    result = pytester.runpytest_subprocess("--benchmark-json=out.json", "--device=cpu", *log_dir)
    result.assert_outcomes(passed=1)
    if log_dir:
        result.stdout.fnmatch_lines(["*no log file (give --gpubench-log-dir to keep one)*"])
    data = json.loads((pytester.path / "out.json").read_text())
    placement = data["benchmarks"][0]["extra_info"]["placement"]
    assert placement["source"] == "llama.cpp log"
    assert placement["offloaded"] is False and placement["gpu_used"] is False
    assert (placement["gpu_layers"], placement["total_layers"]) == (0, 3)
    assert placement["cpu_model_mib"] > 0 and placement["cpu_kv_mib"] > 0
    # no GPU here: the engine's own buffer total stands in for NVML, and says so
    assert placement["measured_source"] == "engine"
    assert 0 < placement["measured_gib"] < 0.1
    # the GGUF's estimate: file size + llama.cpp's 1 GiB overhead (a GPU figure), so the
    # tiny model's estimate is far above what it used, and the signed error says so
    assert placement["estimate_gib"] > 1.0
    assert placement["estimate_error_pct"] > 1000
    assert "overhead" in placement["estimate_source"]
    assert placement["describe"] == "CPU only (no GPU used)"


def test_offloaded_run_warns_and_notes_with_the_layer_counts(
    pytester: pytest.Pytester, llamacpp_server
) -> None:
    """The live server answers the requests; its placement is read from a log written from
    llama.cpp's CUDA source lines (20 of 33 layers on the GPU: no CUDA build runs here), given
    as the server's ``log_path``, so the offload warning and note are the real code path."""
    from pathlib import Path

    log = Path(__file__).parents[1] / "engines/recorded/llamacpp_from_source_cuda_ngl20.log"
    s = llamacpp_server
    pytester.makepyfile(
        f"""
from dataclasses import dataclass
from pathlib import Path

@dataclass(frozen=True)
class Server:
    base_url: str
    model: str
    engine: str
    log_path: Path

def test_offloaded(serve_bench):
    server = Server({s.base_url!r}, {s.model!r}, "llamacpp", Path({str(log)!r}))
    r = serve_bench(server, input_len=16, output_len=8, num_prompts=2, concurrency=1)
    assert r.failed == 0
"""
    )
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*PlacementWarning: llamacpp ran * offloaded: 20 of 33 layers on the GPU, 13 on the "
         "CPU; KV cache partly on the CPU; *raise --n-gpu-layers*"]
    )  # fmt: skip
    assert result.stdout.str().count("20 of 33 layers on the GPU") >= 2  # warning and the note
    # the note is the placement's own, not dressed as the telemetry-off note
    result.stdout.no_fnmatch_line("note: llamacpp ran*host memory recorded instead")
    data = json.loads((pytester.path / "out.json").read_text())
    placement = data["benchmarks"][0]["extra_info"]["placement"]
    assert placement["offloaded"] is True
    assert (placement["gpu_layers"], placement["cpu_layers"]) == (20, 13)
    assert placement["measured_source"] == "engine"  # no NVML here
    bound = data["benchmarks"][0]["extra_info"]["bound"]
    assert bound["bound"] == "offload" and "20 of 33 layers" in bound["reason"]
    result.stdout.fnmatch_lines(["bound: *::test_offloaded: offload-bound: *20 of 33 layers*"])
