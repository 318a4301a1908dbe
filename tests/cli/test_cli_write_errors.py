"""The console script's report writers on a disk that refuses them: one line, exit 2.

Real files and real write errors: a target below a file (ENOTDIR, which root cannot bypass
as it bypasses a chmod) for every writer, and a full disk as the kernel's file size limit
(``RLIMIT_FSIZE``: EFBIG through the same write path as ENOSPC) in a real subprocess. The
table printed before the writers run is still printed; no file is left half-written.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_gpubench.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "baselines" / "reference"
COMPARE = ["compare", str(REFERENCE / "spark.json"), str(REFERENCE / "rtx4090.json")]
PARETO = ["pareto", str(ROOT / "baselines" / "h200.json")]


@pytest.mark.parametrize(
    ("command", "flag", "name"),
    [
        (COMPARE, "--markdown", "c.md"),
        (COMPARE, "--csv", "c.csv"),
        (COMPARE, "--html", "c.html"),
        (COMPARE, "--png", "charts"),
        (COMPARE, "--svg", "charts"),
        (PARETO, "--png", "p.png"),
        (PARETO, "--html", "p.html"),
    ],
)
def test_a_target_below_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], flag: str, name: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    target = blocker / name
    code = main([*command, flag, str(target)])
    out, err = capsys.readouterr()
    assert code == 2
    [line] = err.splitlines()
    assert line.startswith(f"pytest-gpubench: error: cannot write {target}: Not a directory"), err
    assert out.strip(), "the table is printed before the writers run"
    assert blocker.read_text() == "not a folder\n"


def test_a_full_disk_is_one_line_and_leaves_no_file(tmp_path: Path) -> None:
    page = tmp_path / "out" / "c.html"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # the page is far larger

    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest_gpubench.cli", *COMPARE, "--html", str(page)],
        capture_output=True, text=True, preexec_fn=limit, timeout=300,
        env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"pytest-gpubench: error: cannot write {page}: File too large"
    ]
    assert "spark" in result.stdout  # the comparison table came first
    assert list(page.parent.iterdir()) == []  # neither the page nor a temporary file
