"""The run loop: warm-ups, then measured requests on a schedule, until a count, a duration,
or (adaptive mode) a precision target is reached.

Adaptive mode (``precision=0.02``) keeps the loop running and, every ``block`` completions,
computes the 95% interval of output tok/s by batch means (see
``metrics.serving.batch_means_ci``); it stops dispatching once the half-width is within
``precision`` of the mean (and at least ``min_blocks`` blocks are in) or the request cap is
hit. Requests in flight at that moment finish and count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pytest_gpubench.engines.stalls import StallReport
from pytest_gpubench.serving.client import RequestResult, RequestSpec, StreamingClient
from pytest_gpubench.serving.metrics import batch_means_ci
from pytest_gpubench.serving.requests import ConversationSpec
from pytest_gpubench.serving.schedule import LoadSpec, arrival_offsets


@dataclass(frozen=True)
class Adaptive:
    precision: float  # relative half-width of the 95% interval, e.g. 0.02
    max_requests: int
    block: int
    min_blocks: int = 5


@dataclass
class RunResult:
    results: list[RequestResult]
    warmups: list[RequestResult]  # only warm-ups that led into the run (``run_load``'s lead)
    start: float
    end: float
    stopped_by: str  # "count", "duration", "precision", "cap"
    throughput_ci: tuple[float, float] | None = None
    ci_blocks: int = 0
    server: dict[str, float] = field(default_factory=dict)
    turns_not_sent: int = 0  # multi-turn: turns left unsent after an earlier turn failed
    stalls: StallReport | None = None  # the server's own stalls meanwhile (serving/stalls.py)

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def output_tok_s(self) -> float:
        tokens = sum(r.output_tokens for r in self.results if r.ok)
        return tokens / self.duration if self.duration > 0 else 0.0


Sendable = RequestSpec | ConversationSpec


async def run_conversation(
    client: StreamingClient,
    conv: ConversationSpec,
    scheduled: float | None,
    on_result: Callable[[RequestResult], None],
) -> int:
    """Send a conversation's turns one after another, each with the whole history so far (the
    replies are the ones the server generated); a failed turn ends the conversation. Returns
    the number of turns left unsent."""
    history: list[dict] = [{"role": "system", "content": conv.system}] if conv.system else []
    for turn in range(1, len(conv.turns) + 1):
        spec = conv.turn_spec(turn, history)
        res = await client.send(spec, scheduled=scheduled if turn == 1 else None)
        on_result(res)
        if not res.ok:
            return len(conv.turns) - turn
        history = [*spec.body["messages"], {"role": "assistant", "content": res.text}]
    return 0


async def run_warmups(
    client: StreamingClient, specs: Sequence[Sendable], concurrency: int | None
) -> list[RequestResult]:
    """Warm-ups; a conversation warms up with all its turns."""
    if not specs:
        return []
    sem = asyncio.Semaphore(min(concurrency or len(specs), len(specs)))
    out: list[RequestResult] = []

    async def one(spec: Sendable) -> None:
        async with sem:
            if isinstance(spec, ConversationSpec):
                await run_conversation(client, spec, None, out.append)
            else:
                out.append(await client.send(spec))

    await asyncio.gather(*(one(s) for s in specs))
    return out


async def run_load(
    client: StreamingClient,
    specs: Sequence[Sendable],
    load: LoadSpec,
    *,
    adaptive: Adaptive | None = None,
    on_done: Callable[[RequestResult], None] | None = None,
    lead: Sequence[Sendable] = (),
) -> RunResult:
    """Send ``specs`` (cycled when a duration or the adaptive cap asks for more) per ``load``.

    A spec with an ``arrival`` (trace replay) is due at that time after the start and is sent
    once (the run ends after the last); a ``ConversationSpec`` holds its concurrency slot for
    all its turns (concurrency counts users) and is due, as a whole, on the schedule.

    ``lead``: warm-ups sent first on the same schedule, with no pause before ``specs``: each
    stream goes on to its measured requests when its warm-up ends, so the measured requests
    arrive staggered, as users do, and none of them is in the burst of the start (``concurrency``
    prompts at once, whose last waits for all the others' prefill; on the H200 that burst alone
    put a 12-user point's p90 TTFT at 2.8 s with a median of 0.33 s). Their results go to
    ``RunResult.warmups``; the run's ``start`` is the first measured request's send time."""
    if lead and (adaptive is not None or load.duration_s is not None):
        raise ValueError("lead warm-ups go with a request count, not a duration or precision")
    results: list[RequestResult] = []
    warm_results: list[RequestResult] = []
    sem = asyncio.Semaphore(load.concurrency) if load.concurrency else None
    stop = asyncio.Event()
    tasks: list[asyncio.Task] = []
    state = {"stopped_by": "count", "ci": None, "blocks": 0, "unsent": 0}
    limit = adaptive.max_requests if adaptive else load.num_requests
    if limit is not None:
        limit += len(lead)
    clock = time.perf_counter
    start = clock()
    measured_start = start if not lead else None

    def check_precision() -> None:
        assert adaptive is not None
        done = len(results)
        if done % adaptive.block or done < adaptive.block * adaptive.min_blocks:
            return
        ci = batch_means_ci(results, start, adaptive.block)
        if ci is None:
            return
        low, high, blocks = ci
        mid = (low + high) / 2
        state["ci"], state["blocks"] = (low, high), blocks
        if mid > 0 and (high - low) / 2 <= adaptive.precision * mid:
            state["stopped_by"] = "precision"
            stop.set()

    def done(res: RequestResult) -> None:
        results.append(res)
        if on_done is not None:
            on_done(res)
        if adaptive is not None and not stop.is_set():
            check_precision()

    async def one(spec: Sendable, due: float, warm: bool = False) -> None:
        finish = warm_results.append if warm else done
        try:
            if isinstance(spec, ConversationSpec):
                state["unsent"] += await run_conversation(client, spec, due, finish)  # type: ignore[operator]
                return
            res = await client.send(spec, scheduled=due)
        finally:
            if sem is not None:
                sem.release()
        finish(res)

    offsets = arrival_offsets(load)
    i = 0
    while not stop.is_set():
        if limit is not None and i >= limit:
            state["stopped_by"] = "cap" if adaptive else "count"
            break
        if load.duration_s is not None and clock() - start >= load.duration_s:
            state["stopped_by"] = "duration"
            break
        warm = i < len(lead)
        spec = lead[i] if warm else specs[(i - len(lead)) % len(specs)]
        arrival = None if warm else getattr(spec, "arrival", None)
        if arrival is not None and i - len(lead) >= len(specs):
            state["stopped_by"] = "trace"  # every row of the trace is sent
            break
        due = start + (arrival if arrival is not None else next(offsets))
        if load.duration_s is not None and due >= start + load.duration_s:
            due = start + load.duration_s  # due after the end (a trace row): wait for the end
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(due - clock(), 0))
            if not stop.is_set():
                state["stopped_by"] = "duration"
            break
        delay = due - clock()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                break
            except asyncio.TimeoutError:
                pass
        if sem is not None:
            await sem.acquire()
            if stop.is_set() or (
                load.duration_s is not None and clock() - start >= load.duration_s
            ):
                sem.release()
                if not stop.is_set():
                    state["stopped_by"] = "duration"
                break
        if not warm and measured_start is None:
            measured_start = clock()
        tasks.append(asyncio.ensure_future(one(spec, due, warm)))
        i += 1
    if tasks:
        await asyncio.gather(*tasks)
    end = clock()
    start = start if measured_start is None else measured_start
    ci = state["ci"]
    blocks = int(state["blocks"])  # type: ignore[arg-type]
    if ci is None:
        block = max(load.concurrency or 1, 5)
        found = batch_means_ci(results, start, block)
        if found is not None:
            ci, blocks = (found[0], found[1]), found[2]
    run = RunResult(results, warm_results, start, end, str(state["stopped_by"]), ci, blocks)  # type: ignore[arg-type]
    run.turns_not_sent = int(state["unsent"])  # type: ignore[call-overload]
    return run


def close_loop(loop: asyncio.AbstractEventLoop, client: StreamingClient | None) -> None:
    """Close a load loop, interrupted or not: cancel what still runs (a Ctrl-C stops
    ``run_until_complete`` with requests in flight, and closing the loop over them printed a
    "Task was destroyed but it is pending!" for each), let them finish cancelling, close the
    client's connections, then the loop."""
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        if client is not None:
            loop.run_until_complete(client.aclose())
    finally:
        loop.close()
