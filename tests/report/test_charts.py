"""The comparison charts: sized to their content, nothing cut or overlapping, error bars from the
stored intervals, explicit 'did not fit' / 'skipped' / 'not run' marks, PNG and SVG."""

from __future__ import annotations

import itertools
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from plumbing.ci import require_module

require_module("matplotlib", "charts need the report extra")

from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from pytest_gpubench.report import charts  # noqa: E402
from pytest_gpubench.report.compare import compare_files, shared_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SEED = [ROOT / "baselines/reference/rtx4090.json", ROOT / "baselines/reference/spark.json"]
PREFIX = "benchmarks/test_serving.py::test_decode"


def keys(n: int) -> list[str]:
    return [f"{PREFIX}[model-{i}-with-a-long-parameter-id/conc-{i % 3}]" for i in range(n)]


@pytest.fixture
def three_devices(write_baseline) -> list[Path]:
    """h200 measured (with intervals), a published 4090 with one 'did not fit' and one
    'skipped', and a Spark that ran only the first benchmark."""
    ks = keys(4)
    h200 = write_baseline(
        "h200.json",
        "h200",
        "measured",
        {
            k: {"output_tok_s": (300.0 + i, "tok/s", True, 280.0 + i, 330.0 + i)}
            for i, k in enumerate(ks)
        },
    )
    rtx = write_baseline(
        "rtx4090.json",
        "rtx4090",
        "published",
        {
            ks[0]: {"output_tok_s": (150.0, "tok/s", True)},
            ks[1]: {"output_tok_s": (140.0, "tok/s", True)},
        },
        skipped={
            ks[2]: {
                "reason": "did not fit: needs 64.8 GiB, rtx4090 has 24.0 GiB",
                "did_not_fit": True,
            },
            ks[3]: {"reason": "engine crashed"},
        },
        source="https://example.org/rtx4090-results",
    )
    spark = write_baseline(
        "spark.json", "spark", "published", {ks[0]: {"output_tok_s": (40.0, "tok/s", True)}}
    )
    return [h200, rtx, spark]


def frame_for(paths: list[Path]):
    return shared_rows(compare_files(paths, detail=True))


def drawn(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def visible_texts(fig) -> list[Text]:
    """Every text the figure draws (tick labels only for ticks inside the view)."""
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    ticks = [t.label1 for t in ax.xaxis.get_major_ticks() if low <= t.get_loc() <= high]
    texts = [*fig.texts, *ax.texts, *ax.get_yticklabels(), *ticks, ax.xaxis.label]
    texts += [t for legend in fig.legends for t in legend.get_texts()]
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def test_bars_error_bars_and_missing_marks(three_devices: list[Path]) -> None:
    ((metric, fig),) = charts.figures(frame_for(three_devices))
    assert metric == "output_tok_s"
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    errorbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    # one bar per measured cell: 4 (h200) + 2 (rtx4090) + 1 (spark)
    assert sum(len(c.patches) for c in bars) == 7
    # h200 stores an interval for each of its 4 results: one error bar each, the right width
    assert len(errorbars) == 1
    (segments,) = errorbars[0].lines[2]
    assert len(segments.get_segments()) == 4
    xs = sorted(tuple(sorted(seg[:, 0])) for seg in segments.get_segments())
    assert xs[0] == pytest.approx((280.0, 330.0))
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("✕ did not fit") == 1
    assert texts.count("– skipped") == 1
    assert texts.count("– not run") == 3  # spark never ran benchmarks 2-4
    assert "300.0" in " ".join(texts)  # values are labelled at the bar ends
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [
        "h200",
        "rtx4090 (published)",
        "spark (published)",
        "95% interval",
    ]


def test_nothing_is_cut_or_overlapping(three_devices: list[Path]) -> None:
    ((_, fig),) = charts.figures(frame_for(three_devices))
    renderer = drawn(fig)
    box = fig.bbox
    for text in visible_texts(fig):
        extent = text.get_window_extent(renderer)
        assert extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1, text.get_text()
        assert extent.y0 >= box.y0 - 1 and extent.y1 <= box.y1 + 1, text.get_text()
    # tight layout of everything drawn stays inside the figure: saving needs no cropping
    tight = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
    assert tight.x0 >= -0.01 and tight.y0 >= -0.01
    assert tight.x1 <= box.x1 + 1 and tight.y1 <= box.y1 + 1
    ax = fig.axes[0]
    labels = [t.get_window_extent(renderer) for t in ax.get_yticklabels()]
    for a, b in itertools.pairwise(labels):
        assert not a.overlaps(b), "tick labels overlap"
    legend = fig.legends[0].get_window_extent(renderer)
    axes_box = ax.get_window_extent(renderer)
    assert legend.y0 > axes_box.y1, "the legend sits above the bars, outside the axes"
    title = next(t for t in fig.texts if t.get_text().startswith("output_tok_s"))
    assert not title.get_window_extent(renderer).overlaps(legend)
    # value labels stay inside the plot area, right of their bars
    for text in ax.texts:
        extent = text.get_window_extent(renderer)
        assert extent.x1 <= axes_box.x1 + 1, text.get_text()


def test_size_grows_with_the_number_of_benchmarks(write_baseline, tmp_path: Path) -> None:
    sizes = {}
    for n in (1, 4, 16):
        paths = [
            write_baseline(
                f"{dev}-{n}.json",
                dev,
                "measured",
                {k: {"x_s": (1.0 + i, "s", False)} for i, k in enumerate(keys(n))},
            )
            for dev in ("a", "b")
        ]
        (png,) = charts.write_charts(frame_for(paths), tmp_path / f"out{n}", ("png",))
        import matplotlib.image as mpimg

        height, width = mpimg.imread(png).shape[:2]
        sizes[n] = (width, height)
    pitch = (sizes[16][1] - sizes[4][1]) / 12
    assert pitch == pytest.approx((sizes[4][1] - sizes[1][1]) / 3, abs=1)
    assert 40 <= pitch <= 80  # px per benchmark with two bars: readable, not a 70 px plot
    assert sizes[1][1] >= 200 and sizes[16][1] > 16 * 40
    assert abs(sizes[4][0] - sizes[16][0]) < 30  # labels of the same length: the same width
    assert sizes[16][0] < 1400


def test_long_ids_are_shortened_with_the_full_id_kept(write_baseline, tmp_path: Path) -> None:
    long_key = "benchmarks/test_x.py::test_y[" + "z" * 90 + "]"
    other = "benchmarks/test_x.py::test_w"
    paths = [
        write_baseline(
            f"{d}.json",
            d,
            "measured",
            {long_key: {"x_s": (1.0, "s", False)}, other: {"x_s": (2.0, "s", False)}},
        )
        for d in ("a", "b")
    ]
    prefix, labels, cut = charts.short_labels([long_key, other])
    assert prefix == "benchmarks/test_x.py::"
    assert labels[1] == "test_w" and "…" in labels[0] and len(labels[0]) <= charts.LABEL_LIMIT
    assert cut == {labels[0]: long_key}
    ((_, fig),) = charts.figures(frame_for(paths))
    notes = [t.get_text() for t in fig.texts]
    # the full id is printed under the chart (wrapped, not widening it)
    assert f"{labels[0]}={long_key}" in "".join(notes).replace(" ", "")
    assert max(len(n) for n in notes) <= charts.NOTE_CHARS
    assert any("benchmarks under benchmarks/test_x.py::" in n for n in notes)
    renderer = drawn(fig)
    for text in visible_texts(fig):
        extent = text.get_window_extent(renderer)
        assert extent.x0 >= -1 and extent.x1 <= fig.bbox.x1 + 1, text.get_text()


def test_wrapping_and_common_prefix() -> None:
    assert charts.common_prefix(["a/b/c", "a/b/d"]) == "a/b/"
    assert charts.common_prefix(["a/b", "a/b/c"]) == "a/"  # every key keeps a label
    assert charts.common_prefix(["x::t1", "y::t1"]) == ""
    # a pytest parameter id is never split, even with a '/' inside
    assert charts.common_prefix(["t.py::test[a/b]", "t.py::test[a/c]"]) == "t.py::"
    two = "seed-gpu-benchmarking/vllm/qwen3-vl-30b-a3b-fp8/random-mm-0img-1000-300-c10"
    three = (
        "published/seed-gpu-benchmarking/vllm/nemotron-3-nano-30b-a3b-fp8/"
        "random-1000-300-c10-thinking-on"
    )
    _, labels, cut = charts.short_labels([two, three, "z"], limit=56)
    assert not cut
    assert [label.count("\n") for label in labels] == [1, 2, 0]
    for label, key in zip(labels, [two, three], strict=False):
        assert label.replace("\n", "") == key
        assert max(len(line) for line in label.splitlines()) <= 56


def test_seed_reference_chart_is_readable(tmp_path: Path) -> None:
    """The chart of the issue: output_tok_s over the seed references (was 2100x400 with a
    70 px plot and rotated labels)."""
    frame = frame_for(SEED)
    frame = frame[frame["metric"] == "output_tok_s"]
    png, svg = charts.write_charts(frame, tmp_path, ("png", "svg"))
    import matplotlib.image as mpimg

    pixels = mpimg.imread(png)
    height, width = pixels.shape[:2]
    n = frame["key"].nunique()
    assert n >= 10
    assert width <= 1400 and height >= 50 * n
    assert pixels.std() > 0.05
    ((_, fig),) = charts.figures(frame)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert (
        texts.count("✕ did not fit")
        == ((frame["status"] == "did not fit") & (frame["device"] == "rtx4090 (published)")).sum()
    )
    assert all(t.get_rotation() == 0 for t in fig.axes[0].get_yticklabels())
    # the SVG carries each full test id as a tooltip
    tree = ET.parse(svg)
    titles = {t.text for t in tree.iter("{http://www.w3.org/2000/svg}title")}
    assert set(frame["key"]) <= titles


def test_cli_writes_png_and_svg(three_devices: list[Path], tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("pytest-gpubench")
    out = tmp_path / "charts"
    result = subprocess.run(
        [str(exe), "compare", *map(str, three_devices), "--png", str(out), "--svg", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["output_tok_s.png", "output_tok_s.svg"]
    assert (out / "output_tok_s.svg").read_text().lstrip().startswith("<?xml")
    ((_, fig),) = charts.figures(frame_for(three_devices))
    import matplotlib.image as mpimg

    height, width = mpimg.imread(out / "output_tok_s.png").shape[:2]
    w_in, h_in = fig.get_size_inches()
    assert (width, height) == (round(w_in * charts.DPI), round(h_in * charts.DPI))
