"""Benchmark: how many streamed tokens per second the client absorbs on one core.

Against the stub server in its own process, streaming as fast as its socket takes them, so
the client is the bottleneck (the recorded ``client_cpu_fraction`` near 1.0 shows it: the
client's process used a whole core for the whole round). Any real server slower than this
ceiling is measured, not the client. Both transports are measured; docs/measurements.md
quotes the numbers and client.py says why aiohttp is the default.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from pytest_gpubench.serving.client import RequestSpec, StreamingClient

from plumbing.servers import SERVER_CLASSES

REQUESTS, CONCURRENCY, TOKENS = 32, 8, 2000


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_client_ceiling(gpubench, stub_server, transport) -> None:
    spec = RequestSpec("completions", {"prompt": "w1 w2 w3"}, TOKENS)
    cpu: list[float] = []
    received: list[int] = []

    def round_() -> None:
        async def go() -> None:
            client = StreamingClient(stub_server.base_url, stub_server.model, transport=transport)
            sem = asyncio.Semaphore(CONCURRENCY)

            async def one():
                async with sem:
                    return await client.send(spec)

            c0, w0 = time.process_time(), time.perf_counter()
            results = await asyncio.gather(*(one() for _ in range(REQUESTS)))
            cpu.append((time.process_time() - c0) / (time.perf_counter() - w0))
            await client.aclose()
            assert all(r.ok for r in results), results[0].error
            received.append(sum(r.client_output_chunks for r in results))

        asyncio.run(go())

    gpubench(round_, work=REQUESTS * TOKENS, unit="tokens", rounds=3, warmup_rounds=1)
    assert set(received) == {REQUESTS * TOKENS}
    if cpu:
        gpubench.metric(
            "client_cpu_fraction",
            sum(cpu) / len(cpu),
            "cores",
            higher_is_better=False,
            description="client process CPU time / wall time while streaming",
        )


def test_concurrency_sweep_to_256_loses_no_request(start_stub) -> None:
    """Against the pre-encoded stub (``--burst``: token events written 64 at a time, a source
    that costs ~1% of a core at the client's ceiling), every request sent at every
    concurrency up to 256 comes back completed or failed: none is lost, none fails."""
    from pytest_gpubench.serving.metrics import peak_in_flight
    from pytest_gpubench.serving.run import run_load
    from pytest_gpubench.serving.schedule import LoadSpec

    stub = start_stub("--burst", "64")
    spec = RequestSpec("completions", {"prompt": "w1 w2 w3"}, 64)

    async def point(concurrency: int, n: int):
        client = StreamingClient(stub.base_url, stub.model, connections=concurrency)
        try:
            return await run_load(client, [spec], LoadSpec(concurrency=concurrency, num_requests=n))
        finally:
            await client.aclose()

    for concurrency in (1, 16, 64, 256):
        n = max(2 * concurrency, 32)
        run = asyncio.run(point(concurrency, n))
        completed = sum(r.ok for r in run.results)
        failed = sum(not r.ok for r in run.results)
        assert completed + failed == n, concurrency  # sent = completed + failed
        assert failed == 0, [r.error for r in run.results if not r.ok][:3]
        assert all(r.output_tokens == 64 for r in run.results)
        assert peak_in_flight(run.results) > concurrency // 2, concurrency


SWEEP_256 = (
    """
"""
    + SERVER_CLASSES
    + """
def test_sweep(serve_bench):
    r = serve_bench.sweep(Server({url!r}), concurrency=[1, 16, 64, 256], input_len=8,
                          output_len=64, prompts_per_user=2, stop_at_saturation=False)
    assert [p.concurrency for p in r.points] == [1, 16, 64, 256]
"""
)


def test_serve_bench_sweep_to_256_loses_no_request(pytester, start_stub) -> None:
    """The same through ``serve_bench.sweep`` and its records: at every point the requests it
    planned (``num_prompts``, 2 per stream, at least 8) all come back completed, none failed."""
    import json

    stub = start_stub("--burst", "64")
    pytester.makepyfile(SWEEP_256.format(url=stub.base_url))
    result = pytester.runpytest("--device=cpu", "--benchmark-json=out.json")
    result.assert_outcomes(passed=1)
    sweep = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"][
        "sweep"
    ]
    for point in sweep["points"]:
        m = point["metrics"]
        sent = point["num_prompts"]
        assert sent == max(2 * point["concurrency"], 8)
        assert m["completed"]["value"] + m["failed"]["value"] == sent, point["label"]
        assert m["failed"]["value"] == 0, point["label"]
