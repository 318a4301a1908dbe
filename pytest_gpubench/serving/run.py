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
import math
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
    run = _LoadRun(client, load, adaptive, on_done)
    await run.dispatch(specs, lead)
    return run.finish()


class _LoadRun:
    """One ``run_load``: the requests sent and finished, the stop signal, the precision."""

    def __init__(
        self,
        client: StreamingClient,
        load: LoadSpec,
        adaptive: Adaptive | None,
        on_done: Callable[[RequestResult], None] | None,
    ) -> None:
        self.client = client
        self.load = load
        self.adaptive = adaptive
        self.on_done = on_done
        self.results: list[RequestResult] = []
        self.warm_results: list[RequestResult] = []
        self.sem = asyncio.Semaphore(load.concurrency) if load.concurrency else None
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.stopped_by = "count"
        self.ci: tuple[float, float] | None = None
        self.blocks = 0
        self.unsent = 0
        self.clock = time.perf_counter
        self.start = self.clock()
        self.measured_start: float | None = None

    def check_precision(self) -> None:
        adaptive = self.adaptive
        assert adaptive is not None
        done = len(self.results)
        if done % adaptive.block or done < adaptive.block * adaptive.min_blocks:
            return
        ci = batch_means_ci(self.results, self.start, adaptive.block)
        if ci is None:
            return
        low, high, blocks = ci
        mid = (low + high) / 2
        self.ci, self.blocks = (low, high), blocks
        if mid > 0 and (high - low) / 2 <= adaptive.precision * mid:
            self.stopped_by = "precision"
            self.stop.set()

    def done(self, res: RequestResult) -> None:
        self.results.append(res)
        if self.on_done is not None:
            self.on_done(res)
        if self.adaptive is not None and not self.stop.is_set():
            self.check_precision()

    async def one(self, spec: Sendable, due: float, warm: bool = False) -> None:
        finish = self.warm_results.append if warm else self.done
        try:
            if isinstance(spec, ConversationSpec):
                self.unsent += await run_conversation(self.client, spec, due, finish)
                return
            res = await self.client.send(spec, scheduled=due)
        finally:
            if self.sem is not None:
                self.sem.release()
        finish(res)

    def past_duration(self) -> bool:
        duration = self.load.duration_s
        return duration is not None and self.clock() - self.start >= duration

    async def dispatch(self, specs: Sequence[Sendable], lead: Sequence[Sendable]) -> None:
        """Send on the schedule until the count, the duration, the trace's end or the stop."""
        limit = self.adaptive.max_requests if self.adaptive else self.load.num_requests
        if limit is not None:
            limit += len(lead)
        if not lead:
            self.measured_start = self.start
        offsets = arrival_offsets(self.load)
        i = 0
        while not self.stop.is_set():
            if limit is not None and i >= limit:
                self.stopped_by = "cap" if self.adaptive else "count"
                break
            if self.past_duration():
                self.stopped_by = "duration"
                break
            warm = i < len(lead)
            spec = lead[i] if warm else specs[(i - len(lead)) % len(specs)]
            arrival = None if warm else getattr(spec, "arrival", None)
            if arrival is not None and i - len(lead) >= len(specs):
                self.stopped_by = "trace"  # every row of the trace is sent
                break
            due = self.start + (arrival if arrival is not None else next(offsets))
            if not await self.wait_until(due):
                break
            if not warm and self.measured_start is None:
                self.measured_start = self.clock()
            self.tasks.append(asyncio.ensure_future(self.one(spec, due, warm)))
            i += 1
        if self.tasks:
            await asyncio.gather(*self.tasks)

    async def wait_until(self, due: float) -> bool:
        """Wait for ``due`` and a free slot; False when the run stops meanwhile, or when its
        duration ends before ``due`` (a trace row an hour later: the run waited the hour)."""
        duration = self.load.duration_s
        end = self.start + duration if duration is not None else math.inf
        delay = min(due, end) - self.clock()
        if delay > 0:
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=delay)
                return False
            except asyncio.TimeoutError:
                pass
        if due >= end:  # due after the run's end: not sent (without a cap, it went early)
            self.stopped_by = "duration"
            return False
        if self.sem is not None:
            await self.sem.acquire()
            if self.stop.is_set() or self.past_duration():
                self.sem.release()
                if not self.stop.is_set():
                    self.stopped_by = "duration"
                return False
        return True

    def finish(self) -> RunResult:
        end = self.clock()
        start = self.start if self.measured_start is None else self.measured_start
        ci, blocks = self.ci, self.blocks
        if ci is None:
            block = max(self.load.concurrency or 1, 5)
            found = batch_means_ci(self.results, start, block)
            if found is not None:
                ci, blocks = (found[0], found[1]), found[2]
        run = RunResult(self.results, self.warm_results, start, end, self.stopped_by, ci, blocks)
        run.turns_not_sent = self.unsent
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
