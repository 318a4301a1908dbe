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
    assert "<b>capacity 8 users</b>" in text and "<b>capacity 4 users</b>" in text
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


# p90 TTFT / TPOT (ms) per concurrency as the H200's llama.cpp Q4_K_M sweep recorded them
H200_P90 = {1: (270, 4.7), 2: (282, 7.0), 4: (512, 14.0), 8: (854, 24.1), 16: (1965, 68.3)}


def sweep_without_slo(write, name: str, p90: dict, *, drop_percentiles_at=None) -> Path:
    """A sweep recorded without an SLO: its points carry TTFT/TPOT means and percentiles."""
    path = write(f"{name}.json", name, "measured", {KEY: {"output_tok_s.c1": (1.0, "tok/s", True)}})
    doc = json.loads(path.read_text())
    points = []
    for c, (ttft, tpot) in p90.items():
        point = sweep_point(c, 1000 / (tpot * 0.7), 100.0 * c)
        for metric, value in (("ttft_ms", ttft), ("tpot_ms", tpot)):
            spread = {} if c == drop_percentiles_at else {"p50": value * 0.6, "p90": value}
            point["metrics"][metric] = {
                "value": value * 0.7, "unit": "ms", "higher_is_better": False, "spread": spread
            }  # fmt: skip
        points.append(point)
    doc["benchmarks"][0]["extra_info"]["sweep"] = {"axis": "concurrency", "points": points}
    path.write_text(json.dumps(doc))
    return path


def test_slo_judges_a_sweep_recorded_without_one(tmp_path: Path, write_baseline, capsys) -> None:
    pytest.importorskip("matplotlib")
    w = write_baseline
    files = [sweep_without_slo(w, "h200", H200_P90), device_file(w, "rtx4090", 90.0, 4)]
    page = tmp_path / "p.html"
    code = main(
        ["pareto", *map(str, files), "--slo", "tpot_ms=50,ttft_ms=2000", "--html", str(page)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    # p90 TPOT 68.3 ms at 16 users misses 50 ms; 8 users (24.1 ms, TTFT 854 ms) meet both
    assert "h200: 5 points, capacity 8 users on the swept grid, c16 misses" in out, out
    assert "(SLO tpot_ms <= 50, ttft_ms <= 2000 at p90)" in out
    # a curve with a capacity search of its own keeps its SLO and its searched capacity
    assert "rtx4090: 6 points, capacity 4 users (SLO ttft_ms <= 500, tpot_ms <= 22.2" in out
    assert "<b>capacity 8 users on the swept grid, c16 misses</b>" in page.read_text()

    curves = pareto.load_curves([files[0]])
    pareto.apply_slo(curves, {"ttft_ms": 800}, 50)  # judged at p50: 0.6 x the p90 above
    assert (curves[0].capacity, curves[0].capacity_upper) == (8, 16)  # p50 TTFT 512 / 1179
    curves = pareto.load_curves([files[0]])
    pareto.apply_slo(curves, {"ttft_ms": 500}, 90)  # c4 misses (512): every lower one counts
    assert (curves[0].capacity, curves[0].capacity_upper) == (2, 4)
    curves = pareto.load_curves([files[0]])
    pareto.apply_slo(curves, {"ttft_ms": 100}, 90)  # not even one user
    assert (curves[0].capacity, curves[0].capacity_upper) == (0, 1)
    curves = pareto.load_curves([files[0]])
    pareto.apply_slo(curves, {"ttft_ms": 5000}, 90)  # every swept point meets it
    assert (curves[0].capacity, curves[0].capacity_upper) == (16, None)
    # the sweep ended before any point missed: the limit lies above 16, which is said
    assert pareto.capacity_text(curves[0]) == (
        "capacity at least 16 users on the swept grid, no swept point misses"
    )
    # 2 users miss (a noisy point) and 4 meet: the grid capacity stops at the first miss
    bumpy = sweep_without_slo(w, "bumpy", {1: (100, 5.0), 2: (100, 30.0), 4: (100, 8.0)})
    curves = pareto.load_curves([bumpy])
    pareto.apply_slo(curves, {"tpot_ms": 10}, 90)
    assert (curves[0].capacity, curves[0].capacity_upper) == (1, 2)
    # a point without percentiles: the line is drawn but no capacity is claimed
    gap = sweep_without_slo(w, "gap", H200_P90, drop_percentiles_at=4)
    curves = pareto.load_curves([gap])
    pareto.apply_slo(curves, {"tpot_ms": 50}, 90)
    assert curves[0].capacity is None and curves[0].slo_ms == {"tpot_ms": 50}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slo", "tpot=50"], "--slo 'tpot=50': each limit is NAME=MILLISECONDS"),
        (["--slo", "tpot_ms=fast"], "ttft_ms, tpot_ms, e2el_ms and a number > 0"),
        (["--slo", "tpot_ms=-5"], "e.g. --slo tpot_ms=50,ttft_ms=2000"),
        (["--slo", ","], "--slo names no limit"),
        (["--slo", "tpot_ms=50", "--percentile", "80"], "percentile must be one of 50, 90"),
    ],
)
def test_slo_mistakes_are_one_message(write_baseline, capsys, args, message) -> None:
    h200 = sweep_without_slo(write_baseline, "h200", H200_P90)
    assert main(["pareto", str(h200), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_a_reader_that_leaves_early_gets_no_traceback(write_baseline) -> None:
    """``pytest-gpubench pareto ... | head``: the pipe closes before the rows are written."""
    import subprocess
    import sys

    h200 = sweep_without_slo(write_baseline, "h200", H200_P90)
    cli = [sys.executable, "-c", "import sys; from pytest_gpubench.cli.main import main; "
           "sys.exit(main())", "pareto", str(h200)]  # fmt: skip
    proc = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # gone before the child (still starting Python) writes a line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
