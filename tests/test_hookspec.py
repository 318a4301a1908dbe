"""The extension hooks (pytest_gpubench/hookspec.py), implemented in a real conftest.py."""

from __future__ import annotations

import json

import pytest

PROFILES = """
def pytest_gpubench_add_profiles(config):
    return {"myrig": {"display_name": "My rig", "memory_gib": 48, "source": "our datasheet"},
            "rtx4090": {"memory_gib": 22}}
"""


def test_a_plugin_adds_and_overrides_profiles(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PROFILES)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.needs_vram(40)
        def test_big(): pass
        """
    )
    on_rig = pytester.runpytest("--device=myrig")
    on_rig.assert_outcomes(passed=1)
    on_rig.stdout.fnmatch_lines(["gpubench: device myrig (48.0 GiB*"])
    on_4090 = pytester.runpytest("--device=rtx4090", "-rs")
    on_4090.assert_outcomes(skipped=1)
    on_4090.stdout.fnmatch_lines(["*needs 40.0 GiB, rtx4090 has 22.0 GiB*"])  # overridden


def test_the_users_profile_file_wins_over_a_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PROFILES)
    pytester.makefile(".toml", mine="[profiles.myrig]\nmemory_gib = 16\n")
    result = pytester.runpytest("--device=myrig", "--gpubench-profiles=mine.toml")
    result.stdout.fnmatch_lines(["gpubench: device myrig (16.0 GiB*"])


SERVING = """
from pytest_gpubench.metrics.core import Metric

def pytest_gpubench_serving_metrics(results, duration_s):
    ok = [r for r in results if r.ok]
    return {"{name}": Metric("{name}", len(ok) / duration_s, "req/s", True)}
"""

SERVE = """
from pytest_gpubench.testing.stub_server import start_stub_server

def test_serve(serve_bench):
    with start_stub_server(engine="llamacpp") as server:
        serve_bench(server, input_len=8, output_len=8, num_prompts=6, concurrency=2)
"""


def test_a_plugin_adds_a_serving_metric(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SERVING.replace("{name}", "ok_requests_per_s"))
    pytester.makepyfile(test_serve=SERVE)
    pytester.runpytest("--device=cpu", "--benchmark-json=out.json").assert_outcomes(passed=1)
    doc = json.loads((pytester.path / "out.json").read_text())
    metrics = doc["benchmarks"][0]["extra_info"]["metrics"]
    assert metrics["ok_requests_per_s"]["unit"] == "req/s"
    assert metrics["ok_requests_per_s"]["value"] > 0
    assert "output_tok_s" in metrics  # beside the built-in ones


def test_a_plugin_cannot_redefine_a_builtin_metric(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SERVING.replace("{name}", "output_tok_s"))
    pytester.makepyfile(test_serve=SERVE)
    result = pytester.runpytest("--device=cpu")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*metric 'output_tok_s' is already recorded*"])
