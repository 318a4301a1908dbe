"""The plugin loads beside another plugin that owns ``--device`` (pytest-playwright does)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

OTHER = """
def pytest_addoption(parser):
    group = parser.getgroup("playwright", "playwright")
    group.addoption("--device", default=None, help="browser device to emulate")
"""

TEST = """
def test_both(request):
    assert request.config.getoption("device") == "iPhone 15"
"""


def installed_plugin(pytester: pytest.Pytester) -> Path:
    """A folder that makes OTHER an installed plugin (a dist-info with a pytest11 entry point)
    for whoever puts it on PYTHONPATH."""
    site = pytester.mkdir("site")
    (site / "other_plugin.py").write_text(OTHER)
    dist = site / "other_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: other-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\nzz_other = other_plugin\n")
    return site


def test_an_earlier_plugin_keeps_its_device_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(other_plugin=OTHER, test_both=TEST)
    result = pytester.runpytest_subprocess(
        "-p", "other_plugin", "--device=iPhone 15", "--gpubench-device=cpu"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "gpubench: --device belongs to the 'playwright' plugin here; choose the benchmark "
            "device with --gpubench-device",
            "gpubench: device cpu * from --device",
        ]
    )


def test_a_later_installed_plugin_keeps_its_device_option(
    pytester: pytest.Pytester, monkeypatch
) -> None:
    """An installed plugin (entry point), loaded by pytest's autoload after this one."""
    site = installed_plugin(pytester)
    monkeypatch.setenv("PYTHONPATH", f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    pytester.makepyfile(test_both=TEST)
    result = pytester.runpytest_subprocess("--device=iPhone 15", "--gpubench-device=cpu")
    result.assert_outcomes(passed=1)
    assert "already added" not in result.stderr.str()


def test_without_another_owner_device_is_ours(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("--device=cpu")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["gpubench: device cpu * from --device"])
    assert "belongs to" not in result.stdout.str()


def test_an_installed_plugin_declaring_device_is_found_before_it_loads(
    pytester: pytest.Pytester, monkeypatch
) -> None:
    """Whichever order pytest loads plugins in, the entry point's source is seen."""
    site = installed_plugin(pytester)
    code = "from pytest_gpubench.settings import plugin_defining as p; print(p('--device'))"
    alone = pytester.run(sys.executable, "-c", code)
    assert alone.outlines[-1] == "None"
    monkeypatch.setenv("PYTHONPATH", str(site))
    found = pytester.run(sys.executable, "-c", code)
    assert found.outlines[-1] == "zz_other"
