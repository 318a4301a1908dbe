"""A sweep or capacity point whose requests fail is a failed point (issue 26, items 1 and 8).

Real pytest runs against the stub server (pytest_gpubench/testing/stub_server.py, a stub
because a real engine cannot be told to answer HTTP 429 or to die between two points):
``--reject-above 2`` answers 429 to a request that arrives while two others stream, so one
and two users are served and four are not. The search stops at the failed point, the test
fails with the point's failed requests counted by kind, and nothing is recorded or saved. A
server that dies mid-search is said to be dead.
"""

from __future__ import annotations

import json

from plumbing.servers import SERVER_CLASSES

INNER = (
    """
import pytest
"""
    + SERVER_CLASSES
    + """
URL = {url!r}
WORKLOAD = dict(input_len=16, output_len=8, prompts_per_user=2, min_prompts=2)
"""
)

REJECTING = (
    INNER
    + """
def test_sweep(serve_bench):
    serve_bench.sweep(Server(URL), concurrency=[1, 4, 8], **WORKLOAD)

def test_capacity(serve_bench):
    serve_bench.capacity(Server(URL), slo={{"ttft_ms": 10000}}, max_concurrency=8, **WORKLOAD)
"""
)


def test_a_point_of_429s_fails_the_sweep_and_the_search_and_saves_nothing(
    pytester, start_stub
) -> None:
    stub = start_stub("--reject-above", "2", "--ttft-ms", "20", "--tokens-per-s", "200")
    pytester.makepyfile(REJECTING.format(url=stub.base_url))
    result = pytester.runpytest(
        "--benchmark-json=out.json", "--device=cpu", "--gpubench-save-baseline=base.json"
    )
    out = result.stdout.str()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*serve_bench.sweep: point c4 failed: * of * requests failed (error rate *% > "
            "allowed 0.0%): * x HTTP 429; first: HTTP 429: *stub: too many requests*; the "
            "sweep stopped there and recorded nothing (measured: c1, c4)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*serve_bench.capacity: point c4 failed: * x HTTP 429; first: HTTP 429*; the "
            "search stopped there and recorded nothing (measured: c1, c2, c4)",
        ]
    )
    # the point lines name the failed requests; the served points have none
    result.stdout.fnmatch_lines(["*gpubench: sweep c4: * requests failed (* x HTTP 429)*"])
    assert "gpubench: sweep c8" not in out  # the sweep did not go on after the failed point
    assert "gpubench: capacity c8" not in out
    for line in out.splitlines():
        if line.startswith(("gpubench: sweep c1:", "gpubench: capacity c2:")):
            assert "failed" not in line, line
    benches = json.loads((pytester.path / "out.json").read_text())["benchmarks"]
    for bench in benches:
        extra = bench["extra_info"]
        assert "sweep" not in extra and "capacity" not in extra, extra.keys()
        assert "capacity_users" not in extra.get("metrics", {})
    result.stdout.fnmatch_lines(["*not saved: this run failed: *test_sweep*"])
    saved = (
        json.loads((pytester.path / "base.json").read_text())
        if (pytester.path / "base.json").exists()
        else {"benchmarks": []}
    )
    assert saved["benchmarks"] == []


# the server dies after the first point: a serving-metrics hook (called once per measured
# point) stops it, then waits until its port refuses connections. These runs are subprocesses,
# as a user's are: an in-process run drops the HTTP library's modules imported inside it, and
# the next run's connection errors then escape the library's own exception mapping
KILLER = """
import os
import signal
import socket
import time

def pytest_gpubench_serving_metrics(results, duration_s):
    pid = int(os.environ["STUB_PID"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    port = int(os.environ["STUB_PORT"])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
        except OSError:
            return None
        time.sleep(0.05)
    return None
"""

DYING = (
    INNER
    + """
def test_sweep(serve_bench):
    serve_bench.sweep(Server(URL), concurrency=[1, 2], **WORKLOAD)
"""
)


def test_a_server_that_dies_mid_sweep_is_said_to_be_dead(pytester, start_stub, monkeypatch) -> None:
    """The sweep's requests were all built before its clock started, so the second point
    sends to a dead server: its requests fail as connection errors, and the line says the
    server is dead, not that it misses an SLO or lacks an endpoint."""
    stub = start_stub("--ttft-ms", "5")
    monkeypatch.setenv("STUB_PID", str(stub.process.pid))
    monkeypatch.setenv("STUB_PORT", stub.base_url.rsplit(":", 1)[1])
    pytester.makeconftest(KILLER)
    pytester.makepyfile(DYING.format(url=stub.base_url))
    result = pytester.runpytest_subprocess("--device=cpu")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*serve_bench.sweep: point c2 failed: * of * requests failed (error rate 100.0% "
            "> allowed 0.0%): * x connection; first: *; the server at http://127.0.0.1:* is "
            "dead (Connection refused): it stopped answering; the sweep stopped there*"
        ]
    )
    assert "/tokenize" not in result.stdout.str()


DYING_SEARCH = (
    INNER
    + """
def test_capacity(serve_bench):
    serve_bench.capacity(Server(URL), slo={{"ttft_ms": 10000}}, max_concurrency=4, **WORKLOAD)
"""
)


def test_a_server_that_dies_mid_search_is_said_to_be_dead(
    pytester, start_stub, monkeypatch
) -> None:
    """A capacity search builds each point's requests when it gets there: the next point's
    prompts cannot be sized by a dead server's /tokenize, and the line says it is dead."""
    stub = start_stub("--ttft-ms", "5")
    monkeypatch.setenv("STUB_PID", str(stub.process.pid))
    monkeypatch.setenv("STUB_PORT", stub.base_url.rsplit(":", 1)[1])
    pytester.makeconftest(KILLER)
    pytester.makepyfile(DYING_SEARCH.format(url=stub.base_url))
    result = pytester.runpytest_subprocess("--device=cpu")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "serve_bench.capacity: the server at http://127.0.0.1:* is not answering "
            "(ConnectError: *Connection refused): it has died or was stopped; see its log"
        ]
    )
    assert "no usable /tokenize" not in result.stdout.str()


def test_error_kinds_read_the_clients_own_error_lines() -> None:
    """The kinds of the error lines serving/client.py writes (its ``send``)."""
    from pytest_gpubench.serving.client import RequestResult, RequestSpec
    from pytest_gpubench.serving.failures import error_kind, kinds_text

    lines = {
        'HTTP 429: {"error": "slow down"}': "HTTP 429",
        "HTTP 503: ": "HTTP 503",
        "timed out after 30 s": "timeout",
        "stream stalled: no data for 120 s": "stall",
        "ClientConnectorError: Cannot connect to host 127.0.0.1:9 [Connect call failed]": (
            "connection"
        ),
        "ServerDisconnectedError: Server disconnected": "connection",
        "ClientOSError: [Errno 104] Connection reset by peer": "connection",
        "ConnectError: [Errno 111] Connection refused": "connection",
        "malformed SSE event: 'x'": "other",
        "server error in stream: out of memory": "other",
    }
    assert {line: error_kind(line) for line in lines} == lines
    spec = RequestSpec("completions", {"prompt": "x"}, 4, 1)
    results = [RequestResult(spec, ok=False, error=e) for e in ("HTTP 429: a", "HTTP 429: b")]
    results += [RequestResult(spec, ok=False, error="timed out after 1 s")]
    results += [RequestResult(spec, ok=True)]
    assert kinds_text(results) == "2 x HTTP 429, 1 x timeout"
