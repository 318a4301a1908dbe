"""Several machines, one suite: each host saves its own device baseline, compare merges them.

Two hosts are simulated by two real pytest runs with different ``--gpubench-device`` on this
machine, each on the test clock (pytest_gpubench/testing/fake_clock.py) so host A's rounds take
0.3 s and host B's 0.6 s exactly; ``pytest-gpubench compare`` then reads the two saved files as
the CI matrix's compare job would (docs/ci-matrix.example.yml, checked here too).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "docs" / "ci-matrix.example.yml"
TEST_TIMER = "--benchmark-timer=pytest_gpubench.testing.fake_clock.now"

SUITE = """
import pytest
from pytest_gpubench.testing import fake_clock

def test_work(gpubench, monkeypatch):
    fake_clock.install(monkeypatch)
    gpubench(fake_clock.advance, {seconds}, work=10, unit="samples", rounds=2, warmup_rounds=0)

@pytest.mark.needs_vram(30)
def test_big(gpubench, monkeypatch):
    fake_clock.install(monkeypatch)
    gpubench(fake_clock.advance, {seconds}, work=10, unit="samples", rounds=2, warmup_rounds=0)
"""


def cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("pytest-gpubench")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, check=False)


def host_run(pytester: pytest.Pytester, device: str, seconds: float, out: Path) -> None:
    pytester.makepyfile(test_suite=SUITE.format(seconds=seconds))
    result = pytester.runpytest_subprocess(
        f"--gpubench-device={device}", f"--gpubench-save-baseline={out}", TEST_TIMER
    )
    assert result.ret == 0, result.stdout.str()[-3000:]


def test_compare_merges_two_hosts_baselines(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """The 24 GiB host skips the 30 GiB benchmark (did not fit), the 128 GiB one runs it; the
    merged table has both hosts' values, the ratio (0.6 s vs 0.3 s rounds: 2x) and the skip."""
    a, b = tmp_path / "rtx4090.json", tmp_path / "spark.json"
    host_run(pytester, "rtx4090", 0.3, a)
    host_run(pytester, "spark", 0.6, b)
    done = cli("compare", str(a), str(b), "--all", "--metric", "samples_per_s")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if "::" in line}
    work = rows["test_suite.py::test_work"]
    assert re.search(r"samples_per_s\s+samples/s\s+33\.33?\s+16\.67?\s+2\.00x slower", work), work
    assert "did not fit" in rows["test_suite.py::test_big"]


def test_two_hosts_with_one_profile_are_told_apart_by_file(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    a, b = tmp_path / "host-a.json", tmp_path / "host-b.json"
    host_run(pytester, "rtx4090", 0.3, a)
    host_run(pytester, "rtx4090", 0.6, b)
    done = cli("compare", str(a), str(b), "--metric", "samples_per_s")
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0]
    assert "rtx4090 [host-a.json]" in header and "rtx4090 [host-b.json]" in header


def test_ci_matrix_example_uses_real_options_and_compares_every_host(
    pytester: pytest.Pytester,
) -> None:
    """The example must not rot: it parses, every --gpubench option it passes exists in this
    plugin, each matrix device is a known profile, and the compare job reads every host's file."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    devices = doc["jobs"]["measure"]["strategy"]["matrix"]["device"]
    text = EXAMPLE.read_text()
    help_text = pytester.runpytest_subprocess("--help").stdout.str()
    used = set(re.findall(r"(--gpubench-[a-z-]+)", text))
    assert used, "the example passes no plugin option"
    for option in used:
        assert option in help_text, f"{option} in {EXAMPLE.name} is not an option of the plugin"
    from pytest_gpubench.devices import load_profiles

    profiles = load_profiles()
    compare = " ".join(s.get("run", "") for s in doc["jobs"]["compare"]["steps"])
    for device in devices:
        assert profiles.get(device) is not None
        assert f"hosts/{device}.json" in compare
