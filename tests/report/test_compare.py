"""Cross-device comparison: the console script, its file formats and the end-of-run table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_gpubench.report.compare import compare_files, ratio_text

from plumbing.ci import require_module, unavailable

KEY = "benchmarks/test_llm.py::test_decode[gpt-oss-20b]"
BIG = "benchmarks/test_llm.py::test_decode[gpt-oss-120b]"


def make_doc(profile: str, kind: str, results: dict, skipped: dict | None = None) -> dict:
    """A baseline document in the documented schema (version 1)."""
    return {
        "machine_info": {},
        "commit_info": {},
        "datetime": "2026-11-23T12:00:00+00:00",
        "version": "5.3.1",
        "benchmarks": [
            {
                "name": key.split("::")[-1],
                "fullname": key,
                "extra_info": {
                    "metrics": {
                        name: {"value": v, "unit": u, "higher_is_better": h, "spread": {}}
                        for name, (v, u, h) in metrics.items()
                    },
                    "gpubench": {"key": key, "source": f"{profile} source"},
                },
            }
            for key, metrics in results.items()
        ],
        "gpubench": {
            "schema": 1,
            "kind": kind,
            "device": {"profile": profile, "gpu": profile.upper()},
            "skipped": skipped or {},
        },
    }


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    docs = {
        "rtx4090.json": make_doc(
            "rtx4090",
            "published",
            {KEY: {"output_tok_s": (147.0, "tok/s", True), "ttft_ms": (40.0, "ms", False)}},
            {
                BIG: {
                    "reason": "did not fit: needs 64.8 GiB, rtx4090 has 24.0 GiB",
                    "did_not_fit": True,
                }
            },
        ),
        "spark.json": make_doc(
            "spark",
            "published",
            {
                KEY: {"output_tok_s": (35.0, "tok/s", True), "ttft_ms": (140.0, "ms", False)},
                BIG: {"output_tok_s": (22.8, "tok/s", True)},
            },
        ),
        "h100.json": make_doc("h100", "measured", {KEY: {"output_tok_s": (294.0, "tok/s", True)}}),
    }
    paths = []
    for name, doc in docs.items():
        path = tmp_path / name
        path.write_text(json.dumps(doc))
        paths.append(path)
    return paths


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("pytest-gpubench")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, check=False)


def test_ratio_text_is_direction_aware() -> None:
    assert ratio_text(35.0, 147.0, True, "tok/s") == "4.20x slower"
    assert ratio_text(147.0, 35.0, True, "tok/s") == "4.20x faster"
    assert ratio_text(140.0, 40.0, False, "ms") == "3.50x slower"  # latency went up
    assert ratio_text(20.0, 40.0, False, "GiB") == "2.00x better"
    assert ratio_text(float("nan"), 1.0, True, "tok/s") == ""


def test_cli_table_has_values_ratios_and_missing_cells(files: list[Path]) -> None:
    result = cli("compare", *map(str, files))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[0].split()
    assert header[:3] == ["benchmark", "metric", "unit"]
    assert (
        "rtx4090 (published)" in lines[0]
        and "spark (published) compared with rtx4090 (published)" in lines[0]
    )
    row = next(line for line in lines if line.startswith(KEY) and "output_tok_s" in line)
    assert "147.0" in row and "35" in row and "294.0" in row
    assert "4.20x slower" in row and "2.00x faster" in row
    ttft = next(line for line in lines if "ttft_ms" in line)
    assert "3.50x slower" in ttft and "not run" in ttft  # h100 has no ttft_ms
    big = next(line for line in lines if line.startswith(BIG))
    assert "did not fit" in big and "22.8" in big and "not run" in big


def test_python_api_returns_long_dataframe(files: list[Path]) -> None:
    frame = compare_files(files)
    assert list(frame.columns[:4]) == ["device", "kind", "key", "metric"]
    row = frame[
        (frame.device == "spark (published)")
        & (frame.key == KEY)
        & (frame.metric == "output_tok_s")
    ]
    assert row["value"].item() == 35.0 and row["unit"].item() == "tok/s"
    missing = frame[(frame.device == "rtx4090 (published)") & (frame.key == BIG)]
    assert missing["status"].item() == "did not fit"


def test_markdown_and_csv(files: list[Path], tmp_path: Path) -> None:
    md, csv = tmp_path / "cmp.md", tmp_path / "cmp.csv"
    assert (
        cli("compare", *map(str, files), "--markdown", str(md), "--csv", str(csv)).returncode == 0
    )
    text = md.read_text().splitlines()
    assert text[0].startswith("| benchmark | metric | unit | rtx4090 (published) |")
    assert text[1].startswith("|---|")
    assert any("4.20x slower" in line for line in text)
    import pandas as pd

    back = pd.read_csv(csv)
    assert set(back["device"]) == {"rtx4090 (published)", "spark (published)", "h100"}
    assert len(back) == len(compare_files(files))


def test_png_charts_are_real_images(files: list[Path], tmp_path: Path) -> None:
    require_module("matplotlib", "PNG charts need the report extra")
    out = tmp_path / "charts"
    result = cli("compare", *map(str, files), "--png", str(out))
    assert result.returncode == 0, result.stderr
    charts = sorted(p.name for p in out.iterdir())
    assert charts == ["output_tok_s.png", "ttft_ms.png"]
    import matplotlib.image as mpimg

    pixels = mpimg.imread(out / "output_tok_s.png")
    assert (out / "output_tok_s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 0.01  # not a blank canvas


def test_html_renders_in_headless_chromium(files: list[Path], tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        unavailable("Debian's chromium is not installed (.ci/provision installs it)")
    page = tmp_path / "cmp.html"
    assert cli("compare", *map(str, files), "--html", str(page)).returncode == 0
    html_text = page.read_text()
    assert '<td class="down">4.20x slower</td>' in html_text
    assert "did not fit" in html_text and "spark source" in html_text
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1400,600",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (600, 1400)
    assert pixels.std() > 0.01  # the table drew something


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "*bad.json: top level: not a pytest-benchmark or gpubench JSON file*"),
        ('{"benchmarks": [], "gpubench": {"schema": 2}}', "*bad.json: gpubench.schema: *"),
    ],
)
def test_bad_file_is_one_line_error(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = cli("compare", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith("pytest-gpubench: error: ")
    assert "Traceback" not in result.stderr
    import fnmatch

    assert fnmatch.fnmatch(result.stderr.strip(), "pytest-gpubench: error: " + message)


def test_compare_to_at_end_of_run(pytester: pytest.Pytester, files: list[Path]) -> None:
    refdir = pytester.path / "baselines" / "reference"
    refdir.mkdir(parents=True)
    shutil.copy(files[1], refdir / "spark.json")
    pytester.makepyfile(
        test_llm="""
        def test_decode(gpubench):
            gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
            gpubench.metric("output_tok_s", 70.0, "tok/s", True)
        """
    )
    result = pytester.runpytest("--device=cpu", "--gpubench-compare-to=spark")
    result.assert_outcomes(passed=1)
    # rows this run shares with the reference only, as `pytest-gpubench compare` shows: the
    # reference has no test_decode, so none (not one "not run" row per reference entry)
    result.stdout.fnmatch_lines(
        ["*= gpubench comparison =*", "no benchmark of this run is in the compared files"]
    )
    shared = make_doc(
        "spark", "published", {"test_llm.py::test_decode": {"output_tok_s": (35.0, "tok/s", True)}}
    )
    (refdir / "spark.json").write_text(json.dumps(shared))
    result = pytester.runpytest("--device=cpu", "--gpubench-compare-to=spark")
    result.stdout.fnmatch_lines(
        [
            "*= gpubench comparison =*",
            "benchmark * metric * unit * this run (cpu) * spark (published) *compared with*",
            "test_llm.py::test_decode * output_tok_s * tok/s * 70 * 35 * 2.00x slower",
        ]
    )
    bad = pytester.runpytest("--device=cpu", "--gpubench-compare-to=jetson-thor")
    bad.stderr.fnmatch_lines(
        ["ERROR: --gpubench-compare-to: no baseline or reference for 'jetson-thor'*"]
    )


def test_rows_only_one_file_has_are_hidden_unless_all(files: list[Path], tmp_path: Path) -> None:
    solo = tmp_path / "solo.json"
    solo.write_text(
        json.dumps(make_doc("h200", "measured", {"only/here": {"x_s": (1.0, "s", False)}}))
    )
    shared = cli("compare", str(files[1]), str(solo))
    assert shared.returncode == 2 and "nothing to compare" in shared.stderr
    everything = cli("compare", str(files[1]), str(solo), "--all")
    assert everything.returncode == 0 and "only/here" in everything.stdout
