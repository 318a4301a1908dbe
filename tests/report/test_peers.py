"""Peers' result files beside ours: real `vllm bench serve --save-result`, `llama-bench -o
json|jsonl` and GuideLLM files (recorded here, see peers/README.md) read into our metric names.

Every expected value is read from the source file in the test itself, by the peer's own field
name, so the loader's mapping (through the definitions table) is checked against the file,
not against itself.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from pytest_gpubench.cli.main import main
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.report import peers
from pytest_gpubench.report.compare import compare_files
from pytest_gpubench.serving.metrics import SERVING_METRICS

HERE = Path(__file__).parent / "peers"
VLLM = HERE / "vllm_bench_serve.json"
VLLM_APPEND = HERE / "vllm_bench_serve_append.json"
LLAMA = HERE / "llama_bench.json"
LLAMA_DEPTH = HERE / "llama_bench_depth.jsonl"
GUIDELLM = HERE / "guidellm.json"
NODE = "benchmarks/test_llm.py::test_tiny_llama_serving"


def raw(path: Path):
    """The file as its producer wrote it: one JSON document, or JSON lines."""
    text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def values(frame, key: str) -> dict[str, float]:
    rows = frame[(frame["key"] == key) & frame["value"].notna()]
    return dict(zip(rows["metric"], rows["value"], strict=True))


def ours_file(tmp_path: Path, metrics: dict[str, tuple[float, str, bool]]) -> Path:
    """A baseline of ours in the documented schema (version 1), one benchmark."""
    doc = {
        "machine_info": {},
        "commit_info": {},
        "datetime": "2026-12-01T10:00:00+00:00",
        "version": "5.3.1",
        "benchmarks": [
            {
                "name": NODE.split("::")[-1],
                "fullname": NODE,
                "extra_info": {
                    "metrics": {
                        n: {"value": v, "unit": u, "higher_is_better": h, "spread": {}}
                        for n, (v, u, h) in metrics.items()
                    },
                    "gpubench": {"key": NODE},
                },
            }
        ],
        "gpubench": {
            "schema": 1,
            "kind": "measured",
            "device": {"profile": "cpu", "gpu": ""},
            "skipped": {},
        },
    }
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps(doc))
    return path


# --- vllm bench serve -----------------------------------------------------------------------


def test_vllm_result_maps_onto_our_metrics() -> None:
    run = raw(VLLM)
    key = (
        f"vllm:tiny-llama@c3/in{round(run['total_input_tokens'] / run['completed'])}"
        f"-out{round(run['total_output_tokens'] / run['completed'])}"
    )
    frame = compare_files([VLLM])
    assert set(frame["device"]) == {"vllm bench serve (vllm_bench_serve.json)"}
    assert set(frame["kind"]) == {"peer"}
    got = values(frame, key)
    assert got == {
        "ttft_ms": run["mean_ttft_ms"],
        "tpot_ms": run["mean_tpot_ms"],
        "itl_ms": run["mean_itl_ms"],
        "e2el_ms": run["mean_e2el_ms"],
        "output_tok_s": run["output_throughput"],
        "total_tok_s": run["total_token_throughput"],
        "requests_per_s": run["request_throughput"],
        "peak_output_tok_s": run["max_output_tokens_per_s"],
        "duration_s": run["duration"],
        "completed": run["completed"],
        "failed": run["failed"],
        "input_tokens": run["total_input_tokens"] / run["completed"],
        "output_tokens": run["total_output_tokens"] / run["completed"],
    }
    # not mapped: goodput is null without --goodput; vLLM's max_concurrent_requests counts
    # the requests active in a 1-s bucket (12 here, with --max-concurrency 3), not ours
    assert run["request_goodput"] is None and run["max_concurrent_requests"] == 12
    units = dict(zip(frame["metric"], frame["unit"], strict=True))
    assert units["ttft_ms"] == "ms" and units["duration_s"] == "s"
    assert units["output_tok_s"] == "tok/s"


def test_vllm_percentiles_become_the_spread() -> None:
    run = raw(VLLM)
    entry = next(iter(peers.load(VLLM).entries.values()))
    ttft = entry.metrics["ttft_ms"]
    assert ttft.spread == {
        "p50": run["median_ttft_ms"],
        "std": run["std_ttft_ms"],
        "p90": run["p90_ttft_ms"],
        "p99": run["p99_ttft_ms"],
        "n": run["completed"],
    }
    assert "vllm bench serve's mean_ttft_ms" in ttft.description
    assert entry.conditions["max_concurrency"] == 3 and entry.conditions["num_prompts"] == 12


def test_vllm_appended_runs_are_one_entry_each_lined_up_by_their_metadata() -> None:
    runs = raw(VLLM_APPEND)
    assert len(runs) == 2  # --append-result: one JSON object a line
    frame = compare_files([VLLM_APPEND])
    for run in runs:
        got = values(frame, run["gpubench_key"])  # --metadata gpubench_key=<our test id>
        assert got["ttft_ms"] == run["mean_ttft_ms"]
        assert got["output_tok_s"] == run["output_throughput"]
        assert "e2el_ms" not in got  # not in the run's --percentile-metrics: left out


# --- llama-bench ----------------------------------------------------------------------------


def test_llama_bench_tests_map_to_prefill_and_decode_speed() -> None:
    tests = raw(LLAMA)
    pp = next(t for t in tests if t["n_prompt"] and not t["n_gen"])
    tg = next(t for t in tests if t["n_gen"] and not t["n_prompt"])
    pg = next(t for t in tests if t["n_gen"] and t["n_prompt"])
    b = peers.load(LLAMA)
    assert b.label == "llama-bench (llama_bench.json)" and b.kind == "peer"
    assert b.device["cpu"] == tg["cpu_info"] and b.device["backends"] == tg["backends"]
    decode = b.entries[f"llama-bench:tiny-llama/tg{tg['n_gen']}"].metrics
    assert decode["decode_tok_s"].value == tg["avg_ts"]
    assert decode["decode_tok_s"].spread == {
        "std": tg["stddev_ts"],
        "n": len(tg["samples_ts"]),
        "min": min(tg["samples_ts"]),
        "max": max(tg["samples_ts"]),
    }
    assert decode["tpot_ms"].value == pytest.approx(tg["avg_ns"] / tg["n_gen"] / 1e6)
    assert decode["tpot_ms"].spread["std"] == pytest.approx(tg["stddev_ns"] / tg["n_gen"] / 1e6)
    prefill = b.entries[f"llama-bench:tiny-llama/pp{pp['n_prompt']}"].metrics
    assert set(prefill) == {"prefill_tok_s"}
    assert prefill["prefill_tok_s"].value == pp["avg_ts"]
    assert prefill["prefill_tok_s"].spread["std"] == pp["stddev_ts"]
    both = b.entries[f"llama-bench:tiny-llama/pp{pg['n_prompt']}+tg{pg['n_gen']}"].metrics
    assert both["total_tok_s"].value == pg["avg_ts"]
    assert both["e2el_ms"].value == pytest.approx(pg["avg_ns"] / 1e6)
    assert both["e2el_ms"].unit == "ms"


def test_llama_bench_depth_sweep_names_metrics_like_our_depth_sweep() -> None:
    tests = raw(LLAMA_DEPTH)
    assert sorted({t["n_depth"] for t in tests}) == [0, 128]
    b = peers.load(LLAMA_DEPTH)
    tg = b.entries["llama-bench:tiny-llama/tg16"]
    for t in tests:
        if t["n_gen"]:
            assert tg.metrics[f"decode_tok_s.d{t['n_depth']}"].value == t["avg_ts"]
        else:
            pp = b.entries["llama-bench:tiny-llama/pp64"].metrics
            assert pp[f"prefill_tok_s.d{t['n_depth']}"].value == t["avg_ts"]
    assert tg.conditions["n_depth"] == [0, 128]


def test_llama_bench_parameters_that_vary_are_in_the_key(tmp_path: Path) -> None:
    tests = raw(LLAMA)
    tg = next(t for t in tests if t["n_gen"] and not t["n_prompt"])
    grid = [dict(tg, n_threads=1), dict(tg, n_threads=2, avg_ts=tg["avg_ts"] / 2)]
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(grid))
    keys = sorted(peers.load(path).entries)
    assert keys == [
        "llama-bench:tiny-llama/tg16 [n_threads=1]",
        "llama-bench:tiny-llama/tg16 [n_threads=2]",
    ]


# --- GuideLLM -------------------------------------------------------------------------------


def test_guidellm_report_maps_each_benchmark_onto_our_metrics() -> None:
    report = raw(GUIDELLM)
    b = peers.load(GUIDELLM)
    assert b.label == "GuideLLM (guidellm.json)"
    assert b.environment["version"] == report["metadata"]["guidellm_version"] == "0.8.1"
    assert len(b.entries) == len(report["benchmarks"]) == 2
    for bench in report["benchmarks"]:
        m = bench["metrics"]
        streams = bench["config"]["strategy"]["streams"]
        key = (
            f"guidellm:tiny-llama@c{streams}/in{round(m['prompt_token_count']['successful']['mean'])}"
            f"-out{round(m['output_token_count']['successful']['mean'])}"
        )
        got = {name: metric.value for name, metric in b.entries[key].metrics.items()}
        ok = "successful"
        assert got == {
            "ttft_ms": m["time_to_first_token_ms"][ok]["mean"],
            "tpot_ms": m["inter_token_latency_ms"][ok]["mean"],
            "e2el_ms": pytest.approx(m["request_latency"][ok]["mean"] * 1000),  # seconds
            "output_tok_s": m["output_tokens_per_second"][ok]["mean"],
            "total_tok_s": m["tokens_per_second"][ok]["mean"],
            "requests_per_s": m["requests_per_second"][ok]["mean"],
            "peak_concurrency": m["request_concurrency"][ok]["max"],
            "duration_s": bench["duration"],
            "completed": m["request_totals"][ok],
            "failed": m["request_totals"]["errored"],
            "input_tokens": m["prompt_token_count"][ok]["mean"],
            "output_tokens": m["output_token_count"][ok]["mean"],
        }
        # GuideLLM's rate mean is our definition: output tokens of completed requests / duration
        tokens = m["output_token_count"][ok]["total_sum"]
        assert got["output_tok_s"] == pytest.approx(tokens / bench["duration"], rel=1e-6)
        assert got["peak_concurrency"] == streams
        e2el = b.entries[key].metrics["e2el_ms"]
        assert e2el.spread["p50"] == pytest.approx(
            m["request_latency"][ok]["percentiles"]["p50"] * 1000
        )


# --- lining up, the command line, errors ----------------------------------------------------


def test_peers_line_up_with_our_benchmark(tmp_path: Path) -> None:
    vllm, tests = raw(VLLM), raw(LLAMA)
    tg = next(t for t in tests if t["n_gen"] and not t["n_prompt"])
    ours = ours_file(
        tmp_path,
        {
            "ttft_ms": (20.0, "ms", False),
            "output_tok_s": (600.0, "tok/s", True),
            "decode_tok_s": (9000.0, "tok/s", True),
        },
    )
    frame = compare_files(
        [ours, VLLM, LLAMA],
        matches={"vllm:tiny-llama@c3/*": NODE, "llama-bench:*/tg16": NODE},
    )
    row = frame[frame["key"] == NODE].pivot_table(
        index="metric", columns="device", values="value", aggfunc="first"
    )
    assert row.loc["ttft_ms", "vllm bench serve (vllm_bench_serve.json)"] == vllm["mean_ttft_ms"]
    assert row.loc["ttft_ms", "cpu"] == 20.0
    assert row.loc["decode_tok_s", "llama-bench (llama_bench.json)"] == tg["avg_ts"]
    # a matched entry no longer has its own row
    assert not frame["key"].str.startswith("vllm:").any()


def test_compare_command_names_the_tool_per_column(tmp_path: Path) -> None:
    ours = ours_file(tmp_path, {"ttft_ms": (20.0, "ms", False)})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["compare", str(ours), str(VLLM), str(GUIDELLM), "--as", "vllm:*", NODE,
                     "--as", "guidellm:*@c3/*", NODE, "--metric", "ttft_ms"])  # fmt: skip
    assert code == 0
    header, _, row = out.getvalue().splitlines()[:3]
    assert "vllm bench serve (vllm_bench_serve.json)" in header
    assert "GuideLLM (guidellm.json)" in header
    c3 = next(b for b in raw(GUIDELLM)["benchmarks"] if b["config"]["strategy"]["streams"] == 3)
    ttft = c3["metrics"]["time_to_first_token_ms"]["successful"]["mean"]
    assert row.split()[:4] == [NODE, "ttft_ms", "ms", "20"]
    assert f"{raw(VLLM)['mean_ttft_ms']:.4g}" in row and f"{ttft:.4g}" in row


def test_compare_without_a_match_says_how_to_line_peers_up(tmp_path: Path, capsys) -> None:
    ours = ours_file(tmp_path, {"ttft_ms": (20.0, "ms", False)})
    assert main(["compare", str(ours), str(VLLM)]) == 2
    err = capsys.readouterr().err
    assert "nothing to compare" in err and "--as PEER_KEY NODEID" in err


def test_a_match_for_no_entry_lists_the_peer_keys(capsys) -> None:
    assert main(["compare", str(VLLM), "--as", "vllm:other*", NODE]) == 2
    err = capsys.readouterr().err
    assert "--as 'vllm:other*' matches no entry" in err and "vllm:tiny-llama@c3/" in err


def test_two_runs_on_one_benchmark_are_refused() -> None:
    with pytest.raises(GpubenchError, match="both line up as 'node' \\(ttft_ms\\)"):
        compare_files([VLLM_APPEND], matches={"vllm:*": "node"})


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('{"foo": 1, "bar": 2}', "found an object with keys foo, bar"),
        ("[1, 2]", "found a list of 2 item(s)"),
        ('{"a": 1}\n{"b": 2}\n', "found a list of 2 item(s), the first an object with keys a"),
    ],
)
def test_an_unknown_shape_is_one_line_naming_file_and_formats(
    tmp_path: Path, text: str, found: str
) -> None:
    path = tmp_path / "mystery.json"
    path.write_text(text)
    with pytest.raises(GpubenchError) as info:
        compare_files([path])
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: top level: ")
    for expected in ("vllm bench serve --save-result", "llama-bench -o json|jsonl", "GuideLLM"):
        assert expected in message
    assert message.endswith(found)


def test_a_known_shape_with_odd_values_is_one_line_too(tmp_path: Path) -> None:
    tests = raw(LLAMA)
    path = tmp_path / "odd.json"
    path.write_text(json.dumps([dict(tests[0], n_prompt="many")]))
    with pytest.raises(GpubenchError, match=r"odd\.json: read as llama-bench output, but a field"):
        compare_files([path])


def test_our_files_and_bad_json_are_still_read_as_before(tmp_path: Path) -> None:
    ours = ours_file(tmp_path, {"ttft_ms": (20.0, "ms", False)})
    assert set(compare_files([ours])["kind"]) == {"measured"}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GpubenchError, match=r"bad\.json: line 1: not valid JSON"):
        compare_files([bad])


# --- the definitions table names the peers' real fields -------------------------------------


def test_every_vllm_field_in_the_table_is_a_key_of_the_real_file() -> None:
    run = raw(VLLM)
    for d in SERVING_METRICS.values():
        if d.vllm_field:
            for part in d.vllm_field[0].split("/"):
                assert part in run, (d.name, part)


def test_every_guidellm_field_in_the_table_resolves_in_the_real_report() -> None:
    bench = raw(GUIDELLM)["benchmarks"][0]
    for d in SERVING_METRICS.values():
        if d.guidellm_field:
            found = bench
            for part in d.guidellm_field[0].split("."):
                found = found[part]
            assert found is not None, d.name


def test_every_llama_bench_field_in_the_table_is_in_the_real_file() -> None:
    tests = raw(LLAMA)
    for d in SERVING_METRICS.values():
        if d.llama_bench_field:
            kind, _, field = d.llama_bench_field[0].partition(".")
            assert kind in ("pp", "tg", "pg") and all(field in t for t in tests), d.name
