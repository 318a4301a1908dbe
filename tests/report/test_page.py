"""The HTML comparison page: self-contained, and in headless Chromium sortable (numbers as
numbers, missing cells last), filterable (text and metric), with the charts drawn inline."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_gpubench.report.compare import compare_files, shared_rows, to_html
from pytest_gpubench.report.page import linkify

from plumbing.ci import require_module, unavailable

KEYS = [f"benchmarks/test_serving.py::test_decode[model-{i}]" for i in range(4)]
# the values sort differently as text ("10" < "1,234.5" < "9.5") and as numbers
H200 = [9.5, 1234.5, 10.0, 100.0]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        unavailable("Debian's chromium is not installed (.ci/provision installs it)")
    return path


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def files(write_baseline) -> list[Path]:
    h200 = write_baseline(
        "h200.json",
        "h200",
        "measured",
        {
            k: {
                "output_tok_s": (v, "tok/s", True, v * 0.9, v * 1.1),
                "ttft_ms": (50.0 + i, "ms", False),
            }
            for i, (k, v) in enumerate(zip(KEYS, H200, strict=True))
        },
    )
    rtx = write_baseline(
        "rtx4090.json",
        "rtx4090",
        "published",
        {
            KEYS[0]: {"output_tok_s": (19.0, "tok/s", True), "ttft_ms": (80.0, "ms", False)},
            KEYS[1]: {"output_tok_s": (617.25, "tok/s", True), "ttft_ms": (60.0, "ms", False)},
        },
        skipped={
            KEYS[2]: {"reason": "did not fit: needs 64.8 GiB, has 24 GiB", "did_not_fit": True}
        },
        source="owner/results@0123456789abcdef0123456789abcdef01234567:runs/rtx4090.csv (row 3)"
        " and https://example.org/rtx4090-post",
    )
    return [h200, rtx]


def cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("pytest-gpubench")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, check=False)


@pytest.fixture
def page(files: list[Path], tmp_path: Path) -> Path:
    out = tmp_path / "report" / "cmp.html"
    result = cli("compare", *map(str, files), "--all", "--html", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_page_is_self_contained_with_intervals_and_sources(page: Path) -> None:
    text = page.read_text()
    # nothing is fetched: no external script, style, image or font
    assert not re.search(r"<(script|img|link|iframe)[^>]*\s(src|href)=", text)
    assert "@import" not in text and "url(http" not in text
    assert text.count("<svg") == 2  # output_tok_s and ttft_ms, inline
    assert "<script>" in text and "<style>" in text
    # interval columns: h200 stores its 95% interval
    assert "8.55 – 10.45" in text
    # each value links to a numbered source; a published citation links to the commit's file
    sources = dict(re.findall(r'<li id="(src-\d+)">(.*?)</li>', text, re.S))
    for ref in set(re.findall(r'href="#(src-\d+)"', text)):
        assert ref in sources
    rtx = next(s for s in sources.values() if "rtx4090 (published)" in s)
    assert (
        'href="https://github.com/owner/results/blob/0123456789abcdef0123456789abcdef01234567/'
        'runs/rtx4090.csv"' in rtx
    )
    assert 'href="https://example.org/rtx4090-post"' in rtx
    h200 = next(s for s in sources.values() if "<b>h200</b>" in s)
    assert 'href="../h200.json"' in h200 and "H200, driver 580.1" in h200  # the file, relative
    assert 'title="did not fit: needs 64.8 GiB, has 24 GiB"' in text


def test_linkify() -> None:
    text = "a/b@abcdef1:x/y.md (s) see https://e.org/p. and shared/seeds/1.txt"
    out = linkify(text)
    assert '<a href="https://github.com/a/b/blob/abcdef1/x/y.md">a/b@abcdef1:x/y.md</a>' in out
    assert '<a href="https://e.org/p">https://e.org/p</a>.' in out
    assert "shared/seeds/1.txt" in out and out.count("<a ") == 2
    assert linkify("<b>") == "&lt;b&gt;"


def test_python_api_page_without_detail_columns(files: list[Path]) -> None:
    """to_html works on the plain DataFrame too (no intervals known then)."""
    text = to_html(shared_rows(compare_files(files)))
    assert '<table id="cmp">' in text and "8.55 – 10.45" not in text


HARNESS = """
<script>
(function () {
  const out = {};
  const body = document.querySelector('#cmp tbody');
  const shown = () => Array.from(body.rows).filter(r => !r.hidden);
  const column = (col) => shown().map(r => r.cells[col].textContent.replace(/\\s*\\[\\d+\\]$/, ''));
  const header = (col) => document.querySelector('#cmp tr:nth-child(2) th[data-col="' + col + '"]')
    || document.querySelector('#cmp th[data-col="' + col + '"]');
  out.initial = column(0);
  header(3).click();
  out.h200_asc = column(3);
  out.h200_asc_metric = column(1);
  out.aria = header(3).getAttribute('aria-sort');
  header(3).click();
  out.h200_desc = column(3);
  header(5).click();
  out.rtx_asc = column(5);
  header(7).click();
  out.ratio_asc = column(7);
  header(0).click();
  out.key_asc = column(0);
  const filter = document.getElementById('filter');
  filter.value = 'model-1';
  filter.dispatchEvent(new Event('input'));
  out.filtered = column(0);
  out.count = document.getElementById('count').textContent;
  filter.value = '';
  filter.dispatchEvent(new Event('input'));
  const metric = document.getElementById('metric');
  metric.value = 'ttft_ms';
  metric.dispatchEvent(new Event('change'));
  out.metric_rows = column(1);
  out.charts_shown = Array.from(document.querySelectorAll('#charts figure'))
    .filter(f => !f.hidden).map(f => f.dataset.metric);
  const align = (el) => getComputedStyle(el).textAlign;
  out.align = {
    benchmark_th: align(header(0)), value_th: align(header(3)),
    benchmark_td: align(body.rows[0].cells[0]), value_td: align(body.rows[0].cells[3])
  };
  const pre = document.createElement('pre');
  pre.id = 'harness';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""


def test_sorting_and_filtering_in_chromium(page: Path, tmp_path: Path) -> None:
    harness = page.with_name("harness.html")
    harness.write_text(page.read_text().replace("</body>", HARNESS + "</body>"))
    result = run_chromium(tmp_path, "--dump-dom", harness.as_uri())
    found = re.search(r'<pre id="harness">(.*?)</pre>', result.stdout, re.S)
    assert found, f"no harness output; stderr: {result.stderr[-2000:]}"
    out = json.loads(html.unescape(found.group(1)))
    numbers = lambda cells: [float(c.replace(",", "")) for c in cells if c[0].isdigit()]  # noqa: E731
    n_rows = 2 * len(KEYS)
    assert len(out["initial"]) == n_rows
    # column 3 is h200's value: numeric-aware, 9.5 < 10 < 100 < 1,234.5, ttft_ms rows in between
    asc = numbers(out["h200_asc"])
    assert asc == sorted(asc) and len(asc) == n_rows
    assert out["aria"] == "ascending"
    assert out["h200_asc"] != out["initial"]  # the order changed
    assert numbers(out["h200_desc"]) == sorted(asc, reverse=True)
    output_rows = [
        v
        for v, m in zip(out["h200_asc"], out["h200_asc_metric"], strict=True)
        if m == "output_tok_s"
    ]
    assert output_rows == ["9.5", "10", "100.0", "1,234.5"]
    # rtx4090's column: missing cells ('did not fit', 'not run') last, values ascending
    rtx = out["rtx_asc"]
    values = numbers(rtx)
    assert values == sorted(values) and rtx[: len(values)] == [c for c in rtx if c[0].isdigit()]
    assert set(rtx[len(values) :]) == {"did not fit", "not run"}
    # ratio column: by how much better ("0.5x slower" < "same" < "2x faster"), blanks last
    ratios = [c for c in out["ratio_asc"] if c]
    assert ratios[0].endswith("slower") and ratios[-1].endswith(("faster", "better"))
    assert out["ratio_asc"][len(ratios) :] == [""] * (n_rows - len(ratios))
    assert out["key_asc"] == sorted(out["key_asc"])
    # filtering hides rows; the metric selector hides rows and the other chart
    assert out["filtered"] == [KEYS[1]] * 2 and out["count"] == f"2 of {n_rows} rows"
    assert out["metric_rows"] == ["ttft_ms"] * len(KEYS)
    assert out["charts_shown"] == ["ttft_ms"]
    assert out["align"] == {
        "benchmark_th": "left",
        "value_th": "right",
        "benchmark_td": "left",
        "value_td": "right",
    }


def test_screenshot_shows_table_and_charts(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri())
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    require_module("matplotlib", "PNG charts need the report extra")
    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1280)
    assert pixels.std() > 0.05  # not blank
    # the inline SVG charts were drawn: bars in the first two device colours (tab10)
    rgb = (pixels * 255).round().astype(int)
    for colour in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)):
        assert (np.abs(rgb - colour).sum(axis=2) < 12).sum() > 2000, colour
