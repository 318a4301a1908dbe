"""``pytest-gpubench pareto``: frontiers of several devices from stored files on one chart.

The files are small baselines written here: two devices' sweeps (as ``serve_bench.sweep`` /
``.capacity`` record them), a published reference given as per-point metrics, and a
``vllm bench serve --append-result`` file with runs at three concurrencies.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_gpubench.cli.main import main
from pytest_gpubench.report import pareto

KEY = "benchmarks/test_llm_inference.py::test_llm_sweep[llama-8b]"


def sweep_point(c: int, per_user: float, per_gpu: float, e2el: float = 1000.0) -> dict:
    def m(v: float, unit: str = "tok/s", hib: bool = True) -> dict:
        return {"value": v, "unit": unit, "higher_is_better": hib, "spread": {}}

    return {
        "label": f"c{c}",
        "concurrency": c,
        "metrics": {
            "output_tok_s_per_user": m(per_user),
            "output_tok_s_per_gpu": m(per_gpu),
            "output_tok_s": m(per_gpu),
            "e2el_ms": m(e2el, "ms", False),
        },
    }


def device_file(write, profile: str, speed: float, capacity: int) -> Path:
    """A device whose per-user speed falls and per-GPU throughput rises with concurrency."""
    path = write(
        f"{profile}.json",
        profile,
        "measured",
        {
            KEY: {
                "output_tok_s.c1": (speed, "tok/s", True),
                "capacity_users": (capacity, "users", True),
            }
        },
    )
    doc = json.loads(path.read_text())
    conc = [1, 2, 4, 8, 16]
    points = [sweep_point(c, speed / (1 + c / 8), speed * c / (1 + c / 8)) for c in conc]
    points.append(sweep_point(4, speed / 3, speed))  # dominated: off the frontier
    extra = doc["benchmarks"][0]["extra_info"]
    extra["sweep"] = {"axis": "concurrency", "points": points[:5] + points[5:]}
    extra["capacity"] = {
        "max_concurrency": capacity,
        "slo_ms": {"ttft_ms": 500.0, "tpot_ms": 1000.0 / (speed / 2)},
        "percentile": 90,
        "points": [],
    }
    path.write_text(json.dumps(doc))
    return path


def reference_file(write) -> Path:
    metrics = {}
    for c, x, y in ((1, 50.0, 50.0), (8, 30.0, 240.0), (32, 12.0, 380.0)):
        metrics[f"output_tok_s_per_user.c{c}"] = (x, "tok/s", True)
        metrics[f"output_tok_s_per_gpu.c{c}"] = (y, "tok/s", True)
    return write("spark.json", "spark", "published", {KEY: metrics}, source="x")


def vllm_file(tmp_path: Path) -> Path:
    runs = []
    for c, tok_s, tpot in ((1, 90.0, 10.5), (4, 320.0, 11.8), (16, 900.0, 16.0)):
        runs.append(
            {
                "date": "20260101-000000",
                "model_id": "meta-llama/Llama-3.1-8B",
                "max_concurrency": c,
                "duration": 10.0,
                "completed": 40,
                "total_input_tokens": 40 * 200,
                "total_output_tokens": 40 * 64,
                "request_throughput": 4.0,
                "output_throughput": tok_s,
                "mean_tpot_ms": tpot,
                "mean_ttft_ms": 50.0,
            }
        )
    path = tmp_path / "vllm_sweep.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in runs) + "\n")
    return path


def test_curves_from_ours_references_and_peers(tmp_path: Path, write_baseline) -> None:
    h200 = device_file(write_baseline, "h200", 200.0, 8)
    curves = pareto.load_curves([h200, reference_file(write_baseline), vllm_file(tmp_path)])
    ours, ref, peer = curves
    assert ours.device == "h200" and ours.capacity == 8 and ours.percentile == 90
    assert len(ours.points) == 6 and len(ours.frontier) == 5
    assert [p.concurrency for p in ours.frontier] == [16, 8, 4, 2, 1]
    assert ours.capacity_point is not None and ours.capacity_point.concurrency == 8
    assert ref.device == "spark (published)" and len(ref.frontier) == 3
    assert peer.device.startswith("vllm bench serve")
    assert [p.concurrency for p in peer.frontier] == [16, 4, 1]
    assert peer.frontier[-1].per_user == pytest.approx(1000 / 10.5)
    assert pareto.tpot_line(curves) == pytest.approx(100.0)  # 1000 / the tpot limit


def test_pareto_cli_draws_two_devices_on_one_chart(tmp_path: Path, write_baseline, capsys):
    pytest.importorskip("matplotlib")
    w = write_baseline
    files = [device_file(w, "h200", 200.0, 8), device_file(w, "rtx4090", 90.0, 4)]
    files.append(reference_file(w))
    png, page = tmp_path / "out" / "pareto.png", tmp_path / "pareto.html"
    code = main(["pareto", *map(str, files), "--png", str(png), "--html", str(page)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "h200: 6 points, capacity 8 users" in out
    assert "rtx4090: 6 points, capacity 4 users" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    text = page.read_text()
    assert "<svg" in text and "Pareto frontier" in text
    assert "capacity <b>8</b> users" in text and "capacity <b>4</b> users" in text
    assert text.count("<tr>") >= 5 + 5 + 3  # every frontier point in the table


def test_pareto_cli_without_points_is_one_error(write_baseline, capsys) -> None:
    plain = write_baseline("plain.json", "h100", "measured", {KEY: {"x": (1, "s", False)}})
    assert main(["pareto", str(plain)]) == 2
    err = capsys.readouterr().err
    assert "no sweep points in" in err and "serve_bench.sweep" in err


def test_compare_html_carries_the_frontier(tmp_path: Path, write_baseline) -> None:
    pytest.importorskip("matplotlib")
    w = write_baseline
    a, b = device_file(w, "h200", 200.0, 8), device_file(w, "rtx4090", 90.0, 4)
    page = tmp_path / "cmp.html"
    assert main(["compare", str(a), str(b), "--html", str(page)]) == 0
    assert 'id="pareto"' in page.read_text()
