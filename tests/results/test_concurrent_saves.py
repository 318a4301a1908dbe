"""Two pytest runs saving to one baseline at the same moment: both runs' entries land.

Real concurrent pytest runs (subprocesses) in one folder, real files. Each run's test waits
at a barrier (a file per run) until the other run's test has started too, so both runs reach
their save within milliseconds of each other: without the lock around load-merge-write, one
run merged into the file as it was before the other's write and its own write dropped the
other's entry, while both printed "baseline saved" (7 of 10 pairs in the report).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from plumbing.leftovers import inner_pytest_argv

H200 = Path(__file__).resolve().parents[2] / "baselines" / "h200.json"

# a benchmark that finishes only once the other run's benchmark has started too
BARRIER_TEST = """
import time
from pathlib import Path

def test_{name}(gpubench):
    gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
    gpubench.metric("tok_s", {value}, "tok/s", True, headline=True)
    Path("ready-{name}").touch()
    deadline = time.monotonic() + 120
    while not Path("ready-{other}").exists():
        assert time.monotonic() < deadline, "the other run never started its test"
        time.sleep(0.002)
"""

PAIRS = 4


def a_team_baseline(path: Path, copies: int = 25) -> set[str]:
    """A baseline of this machine holding many entries (the H200 file's, copied under other
    names), as a shared team baseline does: loading, merging and writing it takes long enough
    that two saves overlap whenever they are not serialised. Returns its keys."""
    doc = json.loads(H200.read_text())
    doc["gpubench"]["device"] = {"profile": "cpu", "gpu": "none (CPU)"}
    benchmarks = []
    for i in range(copies):
        for bench in doc["benchmarks"]:
            copy = json.loads(json.dumps(bench))
            copy["fullname"] = copy["extra_info"]["gpubench"]["key"] = f"{bench['fullname']}#{i}"
            benchmarks.append(copy)
    doc["benchmarks"] = benchmarks
    path.write_text(json.dumps(doc, indent=2))
    return {b["fullname"] for b in benchmarks}


def start_run(folder: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        inner_pytest_argv("-p", "no:cacheprovider", "--device=cpu",
                          "--gpubench-save-baseline=b.json", "--benchmark-storage=file://pb",
                          "--benchmark-save=pair", f"test_{name}.py"),
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


@pytest.mark.parametrize("pair", range(PAIRS))
def test_two_runs_saving_to_one_baseline_at_once_both_land(tmp_path: Path, pair: int) -> None:
    for name, other, value in (("a", "b", 100.0), ("b", "a", 200.0)):
        (tmp_path / f"test_{name}.py").write_text(
            BARRIER_TEST.format(name=name, other=other, value=value)
        )
    team = a_team_baseline(tmp_path / "b.json")
    runs = [start_run(tmp_path, "a"), start_run(tmp_path, "b")]
    outs = [run.communicate(timeout=300)[0] for run in runs]
    for run, out in zip(runs, outs, strict=True):
        assert run.returncode == 0, out
        assert "Traceback" not in out and "gpubench baseline saved" in out, out
    saved = json.loads((tmp_path / "b.json").read_text())
    names = [b["fullname"] for b in saved["benchmarks"]]
    assert len(names) == len(set(names))
    values = {
        b["fullname"]: b["extra_info"]["metrics"]["tok_s"]["value"]
        for b in saved["benchmarks"]
        if b["fullname"] not in team
    }
    assert values == {
        "test_a.py::test_a": 100.0,
        "test_b.py::test_b": 200.0,
    }
    assert team <= set(names)
    # pytest-benchmark's own storage: two numbered files, one per run, neither overwritten
    stored = sorted((tmp_path / "pb").glob("*/*_pair.json"))
    assert [p.name for p in stored] == ["0001_pair.json", "0002_pair.json"], outs
    names = {json.loads(p.read_text())["benchmarks"][0]["fullname"] for p in stored}
    assert names == {"test_a.py::test_a", "test_b.py::test_b"}
