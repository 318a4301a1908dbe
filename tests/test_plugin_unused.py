"""Free when unused: a pytest run that uses no marker, fixture or option of the plugin loads
none of what its features need (``scripts/plugin_overhead.py`` times it).

Every pytest run of every project in an environment with the plugin installed loads it, so
what it imports there is paid by all of them. Checked against the same run with
``-p no:gpubench``, in a real pytest subprocess: modules another installed plugin loads do not
count against this one.
"""

from __future__ import annotations

import pytest

# what the plugin's features need, and the device probe: none of it in an unused run
HEAVY = (
    "numpy",
    "pandas",
    "scipy",
    "httpx",
    "aiohttp",
    "prometheus_client",
    "psutil",
    "pynvml",
    "torch",
    "pytest_gpubench.engines",
    "pytest_gpubench.serving",
    "pytest_gpubench.results.baseline",
    "pytest_gpubench.selection.markers",
)
REPORT = f"""
import sys

def pytest_unconfigure(config):
    loaded = [m for m in {HEAVY!r} if m in sys.modules]
    print("LOADED:", ",".join(loaded) or "-")
"""


def loaded(pytester: pytest.Pytester, *args: str) -> set[str]:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    line = next(x for x in result.outlines if x.startswith("LOADED: "))
    return set(line.removeprefix("LOADED: ").split(",")) - {"-"}


@pytest.fixture
def plain_run(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(REPORT)
    pytester.makepyfile("def test_plain():\n    assert sum([1, 2]) == 3\n")
    return pytester


def test_an_unused_plugin_loads_nothing_heavy(plain_run: pytest.Pytester) -> None:
    without = loaded(plain_run, "-q", "-p", "no:gpubench")
    assert loaded(plain_run, "-q") - without == set()


def test_the_header_probes_the_device_and_loads_nothing_else(plain_run: pytest.Pytester) -> None:
    """Without -q the header names the device: NVML is asked (pynvml), nothing more."""
    without = loaded(plain_run, "-p", "no:gpubench")
    assert loaded(plain_run) - without <= {"pynvml"}


def _nvml_library_here() -> bool:
    import ctypes

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(_nvml_library_here(), reason="this machine has the NVML library")
def test_without_the_nvml_library_the_header_does_not_import_pynvml(
    plain_run: pytest.Pytester,
) -> None:
    """No NVIDIA driver: the header says so in pynvml's words without importing pynvml."""
    assert "pynvml" not in loaded(plain_run)
    result = plain_run.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        ["gpubench: detected no GPU (NVML unavailable: NVML Shared Library Not Found); host *"]
    )


def test_a_marker_of_the_plugin_loads_what_it_needs(plain_run: pytest.Pytester) -> None:
    """The check above can fail: a test asking for device memory parses its markers."""
    plain_run.makepyfile(
        "import pytest\n\n@pytest.mark.needs_vram(1)\ndef test_plain():\n    pass\n"
    )
    assert "pytest_gpubench.selection.markers" in loaded(plain_run, "-q", "--device=h100")
