"""``pytest-gpubench advise``: one row per device, every cell sourced, predictions calibrated.

Expected values come from the stored files read here with ``json`` (not through the plugin), and
from the device profiles' bandwidths (a prediction from one device to another of the same model
at the same context scales with bandwidth alone).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_gpubench.advise import validate
from pytest_gpubench.advise.sources import read
from pytest_gpubench.cli.main import main
from pytest_gpubench.devices import load_profiles

ROOT = Path(__file__).resolve().parents[2]
STORED = sorted(str(p) for p in (ROOT / "baselines").glob("*.json"))
REFERENCES = sorted(str(p) for p in (ROOT / "baselines" / "reference").glob("*.json"))
TARGET = ["advise", "meta-llama/Llama-3.1-8B-Instruct", "--quant", "q4_k_m", "--engine", "llamacpp"]
DEVICES = ["--devices", "rtx4090,spark,h100,h200"]
COLUMNS = ("fits", "decode", "ttft", "users", "per_gpu", "energy")


def _entry(path: str, key_part: str) -> dict:
    doc = json.loads(Path(path).read_text())
    return next(b for b in doc["benchmarks"] if key_part in b["fullname"])


def _json(capsys, *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_target_command_fills_or_marks_every_cell_with_a_source(capsys) -> None:
    out = _json(capsys, *TARGET, *DEVICES, "--baselines", *STORED, *REFERENCES)
    assert [r["device"] for r in out["rows"]] == ["rtx4090", "spark", "h100", "h200"]
    for row in out["rows"]:
        for col in COLUMNS:
            cell = row[col]
            assert cell["text"] and cell["source"], (row["device"], col)
            assert cell["kind"] in (
                "measured",
                "reference",
                "predicted",
                "derived",
                "estimate",
                "none",
            )
            if cell["kind"] == "none":
                assert cell["value"] is None  # nothing invented where nothing can be said
    h100, h200 = out["rows"][2], out["rows"][3]
    single = _entry(STORED[0], "single_stream")["extra_info"]["metrics"]
    assert h100["decode"]["value"] == pytest.approx(single["decode_tok_s"]["value"])
    assert (
        h100["decode"]["kind"] == "measured"
        and "h100.json (2026-11-23, h100)" in h100["decode"]["source"]
    )
    capacity = _entry(STORED[1], "test_llama8b_capacity[q4_k_m]")["extra_info"]["capacity"]
    assert h200["users"]["value"] == capacity["max_concurrency"]
    assert h200["users"]["kind"] == "measured"
    # the H100 has no sweep: its users come from the H200's, scaled, and say so
    assert h100["users"]["kind"] == "predicted" and "h200's sweep" in h100["users"]["source"]
    for row in out["rows"][:2]:  # no Llama-3.1-8B figure of the 4090 or the Spark is stored
        assert row["decode"]["kind"] == "predicted"
        assert "error band" in row["decode"]["source"] or "no error band" in row["decode"]["source"]


def test_text_and_markdown_carry_the_same_rows(tmp_path: Path, capsys) -> None:
    files = ["--baselines", *STORED, *REFERENCES]
    data = _json(capsys, *TARGET, *DEVICES, *files)
    md = tmp_path / "advise.md"
    assert main([*TARGET, *DEVICES, *files, "--markdown", str(md)]) == 0
    text = capsys.readouterr().out
    table = md.read_text()
    for row in data["rows"]:
        line = next(x for x in text.splitlines() if x.startswith(row["device"] + " "))
        assert row["decode"]["text"] in line
        assert f"| {row['device']} |" in table
        for col in COLUMNS:
            assert f"{row['device']} {col}: {row[col]['source']}" in text


def _reference(path: Path, device: str, model: str, quant: str, decode: float) -> str:
    doc = {
        "benchmarks": [
            {
                "name": "x",
                "fullname": f"published/test/{model}",
                "extra_info": {
                    "metrics": {
                        "output_tok_s": {"value": decode, "unit": "tok/s", "higher_is_better": True}
                    },
                    "gpubench": {
                        "key": f"published/test/{model}",
                        "date": "2026-01-02",
                        "source": "a test",
                        "conditions": {
                            "engine": "llama.cpp (llama-server)",
                            "model": model,
                            "quant": quant,
                            "concurrency": 1,
                        },
                    },
                },
            }
        ],
        "datetime": "2026-01-02",
        "gpubench": {"schema": 1, "kind": "published", "device": {"profile": device}},
    }
    path.write_text(json.dumps(doc))
    return str(path)


def test_a_prediction_scales_another_devices_efficiency_by_bandwidth(tmp_path, capsys) -> None:
    """One figure on the 4090; the H100 predicted from it: same model, same context, so the
    roofline ratio is the bandwidth ratio of the two profiles."""
    ref = _reference(tmp_path / "rtx4090.json", "rtx4090", "llama-3.1-8b", "Q4_K_M", 120.0)
    out = _json(capsys, *TARGET, "--devices", "rtx4090,h100", "--baselines", ref)
    rtx, h100 = out["rows"]
    assert rtx["decode"]["kind"] == "reference" and rtx["decode"]["value"] == 120.0
    profiles = load_profiles(None)
    ratio = profiles.get("h100").bandwidth_gbs / profiles.get("rtx4090").bandwidth_gbs
    # the reference ran at REFERENCE_CONTEXT and advise predicts at 1000 + 300/2 tokens: the KV
    # read differs by a fraction of a percent of the weights
    assert h100["decode"]["value"] == pytest.approx(120.0 * ratio, rel=0.01)
    assert "same-model" in h100["decode"]["source"]
    assert "no error band" in h100["decode"]["source"]  # one point validates nothing
    assert h100["users"]["text"] == "no sweep" and h100["users"]["value"] is None


def test_no_calibration_point_is_said_plainly(tmp_path, capsys) -> None:
    ref = _reference(tmp_path / "spark.json", "spark", "llama-3.1-8b", "Q8_0", 30.0)
    out = _json(capsys, *TARGET, "--devices", "h100", "--baselines", ref)
    cell = out["rows"][0]["decode"]
    assert cell["text"] == "no calibration point" and cell["value"] is None
    assert "4-bit" in cell["source"]  # a Q8_0 figure does not calibrate a Q4_K_M prediction


def test_every_stored_figure_is_predicted_from_the_others() -> None:
    """The leave-one-out rows: every llama.cpp decode figure of a device whose profile has a
    bandwidth is predicted from the other devices, the error is predicted/stored - 1."""
    profiles = load_profiles(None)
    lib = read([*STORED, *REFERENCES])
    rows = validate.rows(lib, profiles)
    h100 = [
        r
        for r in rows
        if r.point.figure.device == "h100"
        and r.point.figure.engine == "llamacpp"
        and r.point.figure.quantity == "decode"
        and r.method == "other-devices"
    ]
    assert len(h100) == 1
    row = h100[0]
    single = _entry(STORED[0], "single_stream")["extra_info"]["metrics"]["decode_tok_s"]["value"]
    assert row.point.figure.value == pytest.approx(single)
    assert row.error == pytest.approx(row.predicted / single - 1)
    spark = {r.point.figure.model for r in rows if r.point.figure.device == "spark"}
    assert "openai/gpt-oss-20b" in spark and "Qwen/Qwen3-VL-8B-Instruct" in spark
    bands = validate.bands(rows)
    errs = [r.error for r in rows if r.point.figure.engine == "llamacpp"
            and r.point.figure.quantity == "decode" and r.method == "other-devices"]  # fmt: skip
    assert bands[("decode", "llamacpp", "other-devices")][:2] == (min(errs), max(errs))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["advise", "llama-3.1-9b"], "unknown model 'llama-3.1-9b'"),
        (["advise", "llama-3.1-8b", "--quant", "q4_k_n"], "unknown quant 'q4_k_n'"),
        (["advise", "llama-3.1-8b", "--devices", "rtx4091"], "rtx4091"),
        (["advise", "llama-3.1-8b", "--devices", "h100", "--slo", "ttft=2"], "ttft"),
        (["advise", "llama-3.1-8b", "--device-price", "h100"], "--device-price 'h100'"),
        (["advise", "flux.2-klein-4b", "--devices", "h100"], "image generation model"),
        (["advise", "llama-3.1-8b", "--engine", "vlm"], "unknown engine 'vlm'"),
        (["advise", "llama-3.1-8b"], "advise needs --devices"),
    ],
)
def test_mistakes_are_one_line(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_a_malformed_file_is_one_line_naming_it(tmp_path, capsys) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{"benchmarks": [')
    assert main(["advise", "llama-3.1-8b", "--devices", "h100", "--baselines", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.json" in err and "not valid JSON" in err


def test_cost_uses_the_given_prices_and_a_measured_power(capsys) -> None:
    """Cost per million tokens at the H200's measured capacity point, by hand from the file."""
    prices = ["--device-price", "h200=30000", "--lifetime", "4", "--power-price", "0.25"]
    out = _json(capsys, *TARGET, "--devices", "h200", "--baselines", STORED[1], *prices)
    row = out["rows"][0]
    doc = json.loads(Path(STORED[1]).read_text())
    watts = max(
        b["extra_info"]["metrics"]["avg_power_w"]["value"]
        for b in doc["benchmarks"]
        if b["extra_info"].get("serving", {}).get("model") == "llama8b-q4_k_m"
        and b["extra_info"].get("bound", {}).get("bound") != "offload"
    )
    per_s = 30000 / (4 * 365 * 24 * 3600) + watts / 1000 / 3600 * 0.25
    assert row["cost"]["value"] == pytest.approx(per_s / row["per_gpu"]["value"] * 1e6)
    assert "30000 over 4 years" in row["cost"]["source"]


def test_the_best_configuration_of_a_device_is_kept() -> None:
    """The H100 ran Llama-3.1-8B in transformers eagerly and compiled at batch 1: the faster
    (compiled) decode is the device's figure, not whichever came first in the file."""
    doc = json.loads(Path(STORED[0]).read_text())
    batch_one = [
        b["extra_info"]["metrics"]["decode_tok_per_s"]["value"]
        for b in doc["benchmarks"]
        if "test_llama_3_1_8b_generate[1-" in b["fullname"]
    ]
    assert len(batch_one) == 2
    lib = read([STORED[0]])
    found = lib.find(
        "decode", device="h100", model="meta-llama/Llama-3.1-8B-Instruct", quant="bf16"
    )
    assert [f.value for f in found] == [pytest.approx(max(batch_one))]


def test_the_method_that_erred_least_is_used() -> None:
    """Of the calibration sets that have figures, the one with the lowest median error in the
    leave-one-out table; without a table, other models on the device come first."""
    from pytest_gpubench.advise.predict import Point, choose
    from pytest_gpubench.advise.sources import Figure

    def point(device: str, model: str) -> Point:
        f = Figure("decode", 1.0, device, model, "q4_k_m", "llamacpp", 1024, "reference", "f",
                   "2026-01-01", "k")  # fmt: skip
        return Point(f, 0.5)

    points = [point("spark", "other/model"), point("h200", "the/model")]
    assert choose(points, "spark", "the/model")[0] == "same-device"
    ranked = {"same-device": 0.21, "same-model": 0.11, "other-devices": 0.6}
    method, used = choose(points, "spark", "the/model", ranked)
    assert method == "same-model" and [p.figure.device for p in used] == ["h200"]


def test_another_slo_is_read_from_the_swept_points(capsys) -> None:
    """An SLO the capacity search did not use: the users are the largest swept concurrency
    whose p99 TPOT (and every lower one's) is within 10 ms, read here from the JSON."""
    extra = _entry(STORED[1], "test_llama8b_capacity[q4_k_m]")["extra_info"]
    points = extra["sweep"]["points"] + extra["capacity"]["points"]
    expected = 0
    for p in sorted(points, key=lambda p: p["concurrency"]):
        if p["metrics"]["tpot_ms"]["spread"]["p99"] > 10:
            break
        expected = p["concurrency"]
    assert expected >= 1
    out = _json(capsys, *TARGET, "--devices", "h200", "--baselines", STORED[1],
                "--slo", "tpot_ms=10", "--percentile", "99")  # fmt: skip
    users = out["rows"][0]["users"]
    assert users["value"] == expected and "swept grid" in users["source"]


def test_an_offloaded_run_says_nothing_of_the_device() -> None:
    """The H200's deliberately offloaded Llama run (13 layers on the CPU) measures the CPU and
    the PCIe bus: none of its figures (energy, power, rates) calibrate or answer anything."""
    doc = json.loads(Path(STORED[1]).read_text())
    offloaded = [
        b for b in doc["benchmarks"] if b["extra_info"].get("bound", {}).get("bound") == "offload"
    ]
    assert len(offloaded) == 1
    keys = {b["extra_info"]["gpubench"]["key"] for b in offloaded}
    lib = read([STORED[1]])
    assert lib.figures and not [f for f in lib.figures if f.key.split(" ")[0] in keys]
