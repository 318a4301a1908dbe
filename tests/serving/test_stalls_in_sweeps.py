"""Server stalls over a sweep and a capacity search: one pooled ``server_stall_fraction`` on
the entry, one warning per call naming each point's share, none per point.

The stub stands in for llama-server on a GPU (``--cache-save-ms``): before each request it
blocks its whole event loop, every stream waiting, and logs the copy in llama-server's format,
as the H200's host prompt cache did; no CPU here makes a real llama-server stall measurably
(the tiny model's KV copies take microseconds). The parsing of the real format is tested on
the H200's own lines (tests/engines/test_stalls.py) and on a live llama-server
(tests/integration/test_serve_llamacpp.py)."""

from __future__ import annotations

import json

import pytest

from plumbing.servers import SERVER_CLASSES

SAVE_MS = 50.0


def logged_server(log) -> str:
    """The inner files' server: the suite's stand-in (a llama.cpp engine) with a log file."""
    return (
        SERVER_CLASSES
        + f"""
from pathlib import Path

@dataclass
class LoggedServer(Server):
    log_path: Path = Path({str(log)!r})
"""
    )


def line_of(source: str, text: str) -> int:
    """The 1-based line of ``source`` (as pytester writes it: dedented, stripped) with ``text``."""
    import textwrap

    lines = textwrap.dedent(source).strip().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_sweep_and_capacity_pool_their_stalls_and_warn_once_each(
    pytester: pytest.Pytester, start_stub, tmp_path
) -> None:
    log = tmp_path / "llama-server.log"
    stub = start_stub(
        "--tokens-per-s", "100", "--cache-save-ms", str(SAVE_MS), "--llamacpp-log", str(log)
    )
    source = (
        logged_server(log)
        + f"""
W = dict(input_len=20, output_len=10, min_prompts=2, prompts_per_user=3)

def test_sweep_then_capacity(serve_bench):
    server = LoggedServer({stub.base_url!r})
    sweep = serve_bench.sweep(server, concurrency=[1, 2], stop_at_saturation=False, **W)
    serve_bench.capacity(server, slo={{"ttft_ms": 1e6}}, known=sweep, max_concurrency=2,
                         remeasure=1, **W)
"""
    )
    pytester.makepyfile(source)
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    entry = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"]
    points = entry["sweep"]["points"] + entry["capacity"]["points"]
    # c1: 3 requests + 1 warm-up; c2: 6 + 2; the search re-measures c2 once: 6 + 2
    requests = sum(p["num_prompts"] + p["warmups"] for p in points)
    assert [p["label"] for p in points] == ["c1", "c2", "c2"] and requests == 20
    pooled = entry["metrics"]["server_stall_fraction"]
    assert pooled["spread"]["steps"] == requests and pooled["spread"]["slow_steps"] == requests
    # each copy slept SAVE_MS: never less; more only by the busy machine's scheduling
    slept = requests * SAVE_MS / 1000
    assert 0.95 * slept <= pooled["spread"]["stalled_s"] <= 2 * slept
    assert 0.1 < pooled["value"] < 0.9
    assert not any(k.startswith("server_stall_fraction.") for k in entry["metrics"])
    for p in points:  # sweep and capacity points alike keep their own share
        assert p["metrics"]["server_stall_fraction"]["spread"]["steps"] > 0, p["label"]
    assert out.count("sweep: the server stalled") == 1, out
    assert out.count("capacity search: the server stalled") == 1, out
    assert "(per point: c1 " in out and "cache_ram" in out
    assert out.count("the server stalled") == 2, out  # no point warned on its own
    # both at the user's calls, not in the plugin's frames
    name = "test_sweep_and_capacity_pool_their_stalls_and_warn_once_each.py"
    for call in ("serve_bench.sweep(", "serve_bench.capacity("):
        line = line_of(source, call)
        assert out.count(f"{name}:{line}: ServingWarning:") == 1, (call, line, out)


def test_a_plain_run_warns_at_the_users_call(pytester: pytest.Pytester, start_stub, tmp_path):
    log = tmp_path / "llama-server.log"
    stub = start_stub("--cache-save-ms", str(SAVE_MS), "--llamacpp-log", str(log))
    source = (
        logged_server(log)
        + f"""
def test_plain(serve_bench):
    serve_bench(LoggedServer({stub.base_url!r}), input_len=20, output_len=4, num_prompts=4,
                concurrency=2)
"""
    )
    pytester.makepyfile(source)
    result = pytester.runpytest("--device=cpu")
    result.assert_outcomes(passed=1)
    line = line_of(source, "serve_bench(LoggedServer")
    name = "test_a_plain_run_warns_at_the_users_call.py"
    result.stdout.fnmatch_lines([f"*{name}:{line}: ServingWarning: the server stalled *"])
    assert "pytest_gpubench" not in result.stdout.str().split("warnings summary")[1]


def test_a_stalled_sweep_on_an_idle_gpu_is_host_bound_by_the_stall(
    pytester: pytest.Pytester, start_stub, fake_nvml, monkeypatch, tmp_path
) -> None:
    """The H200 case end to end: the GPU (a stand-in NVML: no GPU here) reads 40% busy and
    the server's log shows it stalled; the verdict names the stall from the entry's pooled
    metric, not the generic host side."""
    fake_nvml("NVIDIA H200|143771|9.0")
    monkeypatch.setenv("FAKE_NVML_UTIL", "40")
    log = tmp_path / "llama-server.log"
    stub = start_stub(
        "--tokens-per-s", "100", "--cache-save-ms", str(SAVE_MS), "--llamacpp-log", str(log)
    )
    pytester.makepyfile(
        logged_server(log)
        + f"""
def test_sweep(serve_bench):
    serve_bench.sweep(LoggedServer({stub.base_url!r}), concurrency=[1, 2], input_len=20,
                      output_len=10, min_prompts=2, prompts_per_user=3,
                      stop_at_saturation=False)
"""
    )
    result = pytester.runpytest_subprocess("--benchmark-json=out.json")
    result.assert_outcomes(passed=1)
    extra = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"]
    share = extra["metrics"]["server_stall_fraction"]["value"]
    assert extra["bound"]["bound"] == "host", extra["bound"]
    assert f"stalled {share:.0%} of the time" in extra["bound"]["reason"], extra["bound"]
