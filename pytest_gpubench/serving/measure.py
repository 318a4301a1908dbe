"""Measure: the only part of a serving benchmark under the clock.

The load client for a plan's server, warm-ups, one measured run with the server's own counters
and stalls read around it, a sweep point's steady run (warm-ups leading straight into the
measured requests), and the rounds of a plain ``serve_bench`` call timed by pytest-benchmark.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_gpubench.engines import Engine
from pytest_gpubench.serving.client import IDLE_TIMEOUT_S, StreamingClient
from pytest_gpubench.serving.context import ServeContext
from pytest_gpubench.serving.plan import ServePlan
from pytest_gpubench.serving.run import RunResult, close_loop, run_load, run_warmups
from pytest_gpubench.serving.server_side import scrape, server_deltas
from pytest_gpubench.serving.sources import Sendable
from pytest_gpubench.serving.stalls import log_mark, read_stalls


async def open_client(
    base_url: str,
    model: str,
    engine: Engine | None,
    headers: Mapping[str, str],
    limits: tuple[str, float, float | None],
    concurrency: int | None,
) -> StreamingClient:
    """The load client for one server: its API key, its engine's timings parser;
    ``limits`` is (transport, request timeout, idle timeout); ``concurrency`` sizes its
    connection pool."""
    transport, timeout_s, idle_timeout_s = limits
    kw: dict[str, Any] = {}
    if engine is not None:
        kw["timings"] = engine.response_timings
    return StreamingClient(
        base_url,
        model,
        transport=transport,  # type: ignore[arg-type]
        timeout_s=timeout_s,
        idle_timeout_s=idle_timeout_s,
        connections=max(concurrency or 1024, 1),
        headers=headers,
        **kw,
    )


def client_for(
    plan: ServePlan, loop: asyncio.AbstractEventLoop, concurrency: int | None
) -> StreamingClient:
    """The load client for ``plan``'s server, on ``loop``; ``concurrency`` sizes its pool."""
    limits = (plan.transport, plan.timeout_s, plan.idle_timeout_s)
    return loop.run_until_complete(
        open_client(plan.base_url, plan.model, plan.engine, plan.headers, limits, concurrency)
    )


def depth_client(
    base: tuple[str, str, Engine | None],
    headers: Mapping[str, str],
    loop: asyncio.AbstractEventLoop,
    timeout_s: float,
    idle_timeout_s: float | None = IDLE_TIMEOUT_S,
) -> StreamingClient:
    """One stream's client (``depth_sweep``), over aiohttp."""
    limits = ("aiohttp", timeout_s, idle_timeout_s)
    return loop.run_until_complete(open_client(*base, headers, limits, 1))


def warm_up(plan: ServePlan, loop: asyncio.AbstractEventLoop, client: StreamingClient) -> None:
    """``plan``'s warm-up requests, unmeasured."""
    if plan.warm_specs:
        loop.run_until_complete(run_warmups(client, plan.warm_specs, plan.load.concurrency))


def _count(bar: Any) -> Any:
    return (lambda _r: bar.update(1)) if bar is not None else None


def run_once(
    plan: ServePlan,
    loop: asyncio.AbstractEventLoop,
    client: StreamingClient,
    bar: Any,
    specs: Sequence[Sendable] | None = None,
) -> RunResult:
    """One measured run of ``specs`` (default: ``plan``'s first round), with the server's
    own counters around it."""
    before = scrape(plan.base_url, plan.engine, headers=plan.headers)
    mark = log_mark(plan.server)
    run = loop.run_until_complete(
        run_load(
            client,
            plan.specs if specs is None else specs,
            plan.load,
            adaptive=plan.adaptive,
            on_done=_count(bar),
        )
    )
    run.stalls = read_stalls(plan.server, plan.engine, mark)
    after = scrape(plan.base_url, plan.engine, headers=plan.headers)
    run.server = server_deltas(before, after, plan.engine) if before else {}
    return run


def run_steady(
    plan: ServePlan, loop: asyncio.AbstractEventLoop, client: StreamingClient, bar: Any
) -> RunResult:
    """One sweep or capacity point: the warm-ups lead straight into the measured requests
    (``run_load``'s ``lead``), so the measured ones run at the point's steady load, none in
    the burst of the start. A trace keeps its own clock: warm-ups first, then the trace.

    The server's counters are read around both, so the token counter is corrected by the
    warm-ups' own usage and the histogram means (which would mix the warm-ups in) are left
    out of such a point."""
    if any(getattr(s, "arrival", None) is not None for s in plan.specs):
        warm_up(plan, loop, client)
        return run_once(plan, loop, client, bar)
    before = scrape(plan.base_url, plan.engine, headers=plan.headers)
    mark = log_mark(plan.server)
    run = loop.run_until_complete(
        run_load(client, plan.specs, plan.load, on_done=_count(bar), lead=plan.warm_specs)
    )
    run.stalls = read_stalls(plan.server, plan.engine, mark)
    after = scrape(plan.base_url, plan.engine, headers=plan.headers)
    server = server_deltas(before, after, plan.engine) if before else {}
    run.server = {}
    if "server_output_tokens" in server:
        warm = sum(r.usage_completion_tokens or 0 for r in run.warmups)
        run.server["server_output_tokens"] = server["server_output_tokens"] - warm
    return run


def run_rounds(ctx: ServeContext, plan: ServePlan) -> tuple[list[RunResult], list[float]]:
    """``plan``'s rounds, each one pytest-benchmark round with the warm-ups in its untimed
    setup; the runs and the rounds' times (none under --benchmark-disable)."""
    runs: list[RunResult] = []
    loop = asyncio.new_event_loop()
    client = client_for(plan, loop, plan.load.concurrency)
    every = sum(len(getattr(s, "turns", (s,))) for s in plan.specs)  # a conversation: turns
    total = None if (plan.load.duration_s or plan.adaptive) else every * plan.rounds
    try:
        with ctx.progress(total, plan.label) as bar:

            def setup() -> None:
                warm_up(plan, loop, client)

            def one_round() -> RunResult:
                run = run_once(plan, loop, client, bar, plan.round_specs(len(runs)))
                runs.append(run)
                return run

            times = ctx.time(one_round, plan.rounds, setup if plan.warm_specs else None)
    finally:
        close_loop(loop, client)
    return runs, times
