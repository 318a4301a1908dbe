"""``engine_ceiling=True`` where there is no ceiling to measure, and a bad value. The stub
server (the suite's stand-in, described as a llama.cpp engine) is not a llama-server the plugin
started, so the sweep runs and records as without the option, and one line says why; the
measured path runs against a real llama-server in tests/integration/test_engine_ceiling_live.py."""

from __future__ import annotations

import json

import pytest

from plumbing.servers import SERVER_CLASSES

SWEEP = """
def test_sweep(serve_bench):
    serve_bench.sweep(Server({url!r}), concurrency=[1, 2], prompts_per_user=2, input_len=20,
                      output_len=8, stop_at_saturation=False, engine_ceiling={value})
"""


def test_a_server_not_started_here_gets_a_note_not_a_failure(
    pytester: pytest.Pytester, start_stub
) -> None:
    stub = start_stub("--tokens-per-s", "200")
    pytester.makepyfile(SERVER_CLASSES + SWEEP.format(url=stub.base_url, value=True))
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "test_sweep: no engine ceiling: the server was not started here as a process" in out, out
    points = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"][
        "sweep"
    ]["points"]
    assert [p["concurrency"] for p in points] == [1, 2]
    assert not any("engine_ceiling_tok_s" in p["metrics"] for p in points)


def test_a_bad_engine_ceiling_value_is_one_line(pytester: pytest.Pytester, start_stub) -> None:
    stub = start_stub()
    pytester.makepyfile(SERVER_CLASSES + SWEEP.format(url=stub.base_url, value='"yes"'))
    result = pytester.runpytest("--device=cpu")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "engine_ceiling must be True or False, got 'yes'" in out, out
    assert "Traceback" not in out and "sweeper.py" not in out, out
