"""The ``serve_bench`` fixture: benchmark an OpenAI-compatible server as a test.

``serve_bench(server, **workload)`` builds the requests (before any clock starts), then runs
them through ``gpubench.time`` - that is pytest-benchmark's ``benchmark.pedantic`` - so each
round is one fixed workload: pytest-benchmark's time statistics mean "seconds per workload"
and ``--benchmark-compare-fail`` works as users expect. Warm-up requests run in pedantic's
untimed ``setup`` before every round. Every serving metric is recorded with its unit and
direction (``metrics/serving.py``); runs that produced fewer output tokens than asked, or
whose token counts disagree, raise a warning; an error rate above the threshold fails the
test with a summary of the errors.

``server`` is anything with ``base_url`` (``http://host:port``, no ``/v1``) and ``model``,
optionally ``engine.name`` - the ``llm_server`` fixture's servers, or an external one.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pytest

from pytest_gpubench import progress
from pytest_gpubench.bench.gpubench import GpuBench
from pytest_gpubench.engines import Engine, find_engine
from pytest_gpubench.engines.stalls import StallReport
from pytest_gpubench.errors import GpubenchError, usage_errors_fail
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.metrics.stats import mean_ci
from pytest_gpubench.results.record import record_note
from pytest_gpubench.serving.arguments import (
    check_depth_sweep,
    check_serve,
    real,
    whole,
)
from pytest_gpubench.serving.client import (
    IDLE_TIMEOUT_S,
    RequestResult,
    RequestSpec,
    StreamingClient,
)
from pytest_gpubench.serving.datasets import (
    check_replay,
    data_info,
    late_trace_message,
    pytest_timeout_of,
    turn_metrics,
)
from pytest_gpubench.serving.decode_batch import decode_batch
from pytest_gpubench.serving.metrics import (
    SERVING_METRICS,
    check_slo,
    distribution,
    error_summary,
    metric,
    result_rows,
    serving_metrics,
)
from pytest_gpubench.serving.placement import record_placement
from pytest_gpubench.serving.requests import RequestFactory, Workload, depth_requests
from pytest_gpubench.serving.run import Adaptive, RunResult, close_loop, run_load, run_warmups
from pytest_gpubench.serving.schedule import LoadSpec
from pytest_gpubench.serving.server_side import scrape, server_deltas
from pytest_gpubench.serving.stalls import (
    STALL_METRIC,
    log_mark,
    read_stalls,
    stall_message,
    stall_metric,
)
from pytest_gpubench.serving.tokens import LocalTokenizer, ServerTokenizer, Tokenizer
from pytest_gpubench.serving.warn import warn_at_caller

HEADLINE = ("output_tok_s", "ttft_ms", "tpot_ms")


class ServingWarning(UserWarning):
    """A serving run measured something other than what was asked (short outputs, counts)."""


@runtime_checkable
class ServerLike(Protocol):
    base_url: str
    model: str


def engine_of(server: Any) -> Engine | None:
    """The server's ``Engine``: ``llm_server`` servers carry it; an external server may name
    it (``engine="vllm"``) or not (None: its numbers are read with every engine's names)."""
    engine = getattr(server, "engine", None)
    if engine is None or isinstance(engine, str):
        return find_engine(engine) if engine else None
    if isinstance(engine, Engine):  # every member of the protocol present
        return engine
    name = getattr(engine, "name", None)  # something naming an engine: the registered one
    return find_engine(name) if isinstance(name, str) else None


def repeated_prompts_message(cached: Metric | None, workload: Mapping[str, Any]) -> str | None:
    """A warning when the server took more of a random-text workload's prompt tokens from its
    prefix cache than its shared prefix explains (10 points of slack: chat templates and BOS
    tokens are shared too): the prompts had been sent before, so TTFT and throughput are
    those of cached prompts. None when the server reports no cache numbers, or for workloads
    whose prompts repeat by design (a preset, a prompts file, a dataset, a trace's blocks)."""
    if cached is None:
        return None
    if any(workload.get(k) for k in ("preset", "prompts_file", "dataset", "trace_file")):
        return None
    prefix = int(workload.get("prefix_len") or 0)
    shared = prefix / (prefix + int(workload.get("input_len") or 1))
    if cached.value <= shared + 0.1:
        return None
    return (
        f"the server took {cached.value:.0%} of the prompt tokens from its prefix cache "
        f"(its own report; the shared prefix explains {shared:.0%}): these prompts were sent "
        "to it before (another client, or a run of the same seed and nonce), so TTFT and "
        "throughput are those of cached prompts; restart the server or change seed="
    )


def _engine_label(server: Any) -> str | None:
    engine = getattr(server, "engine", None)
    name = getattr(engine, "name", engine if isinstance(engine, str) else None)
    return str(name) if name else None


def _headers(server: Any) -> dict[str, str]:
    """The headers every request to this server needs (``Server.headers``: its API key)."""
    headers = getattr(server, "headers", None)
    return dict(headers) if isinstance(headers, Mapping) else {}


@dataclass
class ServePlan:
    """One ``serve_bench`` call, decided: the server, the load and every request, built
    before any clock starts."""

    base_url: str
    model: str
    engine: Engine | None
    headers: dict[str, str]
    load: LoadSpec
    specs: list[RequestSpec]  # the first (or only) round's
    warm_specs: list[RequestSpec]
    adaptive: Adaptive | None
    rounds: int
    slo_ms: dict[str, float]
    max_error_rate: float
    ignore_eos: bool
    timeout_s: float
    transport: str
    info: dict[str, Any]
    idle_timeout_s: float | None = IDLE_TIMEOUT_S
    server: Any = field(default=None, repr=False)  # the server object, for its placement
    # the requests of rounds 2.. (each its own draw: a round never re-sends a prompt the
    # server has cached from the round before)
    later_specs: list[list[RequestSpec]] = field(default_factory=list, repr=False)

    def round_specs(self, i: int) -> list[RequestSpec]:
        """The requests of round ``i`` (0-based)."""
        return self.specs if i == 0 else self.later_specs[i - 1]


@dataclass
class ServeResult:
    """What ``serve_bench`` measured; metric values by name, plus the raw per-request data."""

    metrics: dict[str, Metric]
    runs: list[RunResult]
    workload: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return self.metrics[name].value

    @property
    def results(self) -> list[RequestResult]:
        return [r for run in self.runs for r in run.results]

    @property
    def completed(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.results)

    @property
    def error_rate(self) -> float:
        n = len(self.results)
        return self.failed / n if n else 0.0

    @property
    def short_outputs(self) -> int:
        m = self.metrics.get("short_outputs")
        return int(m.value) if m else 0

    @property
    def requests_used(self) -> int:
        return len(self.results)

    @property
    def stopped_by(self) -> str:
        return self.runs[-1].stopped_by if self.runs else ""


class ServeBench:
    result_type = ServeResult  # what one run returns (serving/sweep.py builds its points' with it)

    def __init__(
        self,
        gpubench: GpuBench,
        request: pytest.FixtureRequest,
        *,
        max_error_rate: float = 0.0,
        progress_mode: str = "auto",
        nonce: int | None = None,
    ) -> None:
        """``max_error_rate`` and ``progress_mode`` are the run's defaults
        (--gpubench-max-error-rate, --gpubench-progress); each call may override the first.
        ``nonce`` (one per pytest run) changes the random prompts' text, not their lengths,
        so a long-lived server has not cached this run's prompts from an earlier run."""
        self.gpubench = gpubench
        self.request = request
        self.max_error_rate = max_error_rate
        self.progress_mode = progress_mode
        self.nonce = nonce
        node = getattr(request, "node", None)
        self._test_key = zlib.crc32(str(getattr(node, "nodeid", "")).encode())
        self._draws = 0  # sets of requests built by this test so far
        self._dataset_taken = 0  # dataset rows those took (the next set starts after them)
        # every sweep and capacity point's stall reports so far in this test (one entry:
        # a capacity search after a sweep pools both into server_stall_fraction)
        self._point_stalls: list[StallReport | None] = []

    def _next_draw(self) -> tuple[int, int]:
        """The next set of requests of this test: every point, re-measurement and round
        sends prompts of its own (``RequestFactory``), reproducible from the test's id."""
        self._draws += 1
        return self._test_key, self._draws - 1

    # -- helpers ---------------------------------------------------------------------------
    def _check_server(self, server: Any) -> tuple[str, str, Engine | None]:
        base_url = getattr(server, "base_url", None)
        model = getattr(server, "model", None)
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise GpubenchError(
                f"serve_bench(server): server needs base_url 'http://host:port', got {base_url!r}"
            )
        if not isinstance(model, str) or not model:
            raise GpubenchError("serve_bench(server): server needs model, the served model name")
        if base_url.rstrip("/").endswith("/v1"):
            raise GpubenchError(
                f"serve_bench(server): base_url {base_url!r} must not end with /v1 "
                "(give http://host:port)"
            )
        return base_url.rstrip("/"), model, engine_of(server)

    def _tokenizer(
        self,
        tokenizer: Tokenizer | str | Path | None,
        base_url: str,
        model: str,
        engine: Engine | None,
        headers: Mapping[str, str] | None = None,
    ) -> Tokenizer:
        if tokenizer is None:
            return ServerTokenizer(base_url, model, engine, headers)
        if isinstance(tokenizer, str | Path):
            return LocalTokenizer(tokenizer)
        return tokenizer

    @contextlib.contextmanager
    def _progress(self, total: int | None, desc: str) -> Iterator[Any]:
        """Requests done, on the terminal (see pytest_gpubench.progress); ``progress_mode``
        "off" turns this benchmark's line off whatever the run's setting."""
        if self.progress_mode == "off":
            yield None
            return
        with progress.task(desc, total, "req") as bar:
            yield bar

    def _record(self, metrics: Mapping[str, Metric]) -> None:
        for name, m in metrics.items():
            self.gpubench.metric(
                name,
                m.value,
                m.unit,
                m.higher_is_better,
                spread=m.spread,
                headline=name in HEADLINE,
                description=m.description,
            )

    # -- the benchmark ---------------------------------------------------------------------
    @usage_errors_fail("serve_bench")
    def __call__(
        self,
        server: ServerLike,
        *,
        input_len: int = 1000,
        output_len: int = 300,
        num_prompts: int | None = 100,
        concurrency: int | None = 1,
        warmups: int = 0,
        request_rate: float = math.inf,
        arrival: str = "poisson",
        burstiness: float = 1.0,
        duration_s: float | None = None,
        range_ratio: float = 0.0,
        prefix_len: int = 0,
        endpoint: str | None = None,
        images: int = 0,
        image_buckets: Mapping[tuple[int, int], float] | None = None,
        image_format: str = "jpeg",
        prompts_file: str | Path | None = None,
        preset: str | None = None,
        ignore_eos: bool | None = None,
        tokenizer: Tokenizer | str | Path | None = None,
        seed: int = 42,
        rounds: int = 1,
        precision: float | None = None,
        max_requests: int = 1000,
        slo: Mapping[str, float] | None = None,
        max_error_rate: float | None = None,
        timeout_s: float = 3600.0,
        transport: str = "aiohttp",
        extra_body: Mapping[str, Any] | None = None,
        idle_timeout_s: float | None = IDLE_TIMEOUT_S,
        dataset: str | Path | None = None,
        dataset_columns: Mapping[str, str] | None = None,
        dataset_split: str | None = None,
        multi_turn: bool = False,
        max_turns: int | None = None,
        trace_file: str | Path | None = None,
        trace_time_scale: float = 1.0,
    ) -> ServeResult:
        """``timeout_s`` bounds each request; ``idle_timeout_s`` (None: off) ends a stream
        that has started and then sends nothing for that long, as a failed request.
        ``dataset``, ``multi_turn`` and ``trace_file``: workloads from real data
        (serving/datasets.py)."""
        args = dict(locals())
        del args["self"], args["server"]
        check_serve(args)
        plan = self._plan(server, args)
        runs, times = self._run_rounds(plan)
        return self._aggregate(plan, runs, recorded=bool(times))

    def _plan(self, server: ServerLike, a: Mapping[str, Any]) -> ServePlan:
        """The plan of one ``serve_bench`` call from its (checked) arguments, by name."""
        return self._build(
            server,
            num_prompts=a["num_prompts"],
            load=LoadSpec(
                concurrency=a["concurrency"],
                rate=float(a["request_rate"]),
                arrival=a["arrival"],
                burstiness=a["burstiness"],
                num_requests=None if a["duration_s"] is not None else a["num_prompts"],
                duration_s=a["duration_s"],
                warmups=a["warmups"],
                seed=a["seed"],
            ),
            workload=dict(
                input_len=a["input_len"],
                output_len=a["output_len"],
                range_ratio=a["range_ratio"],
                prefix_len=a["prefix_len"],
                endpoint=a["endpoint"],
                images=a["images"],
                image_buckets=a["image_buckets"],
                image_format=a["image_format"],
                prompts_file=a["prompts_file"],
                preset=a["preset"],
                ignore_eos=a["ignore_eos"],
                seed=a["seed"],
                extra=dict(a["extra_body"] or {}),
                dataset=a.get("dataset"),
                dataset_columns=a.get("dataset_columns"),
                dataset_split=a.get("dataset_split"),
                multi_turn=bool(a.get("multi_turn", False)),
                max_turns=a.get("max_turns"),
                trace_file=a.get("trace_file"),
                trace_time_scale=float(a.get("trace_time_scale", 1.0)),
            ),
            tokenizer=a["tokenizer"],
            rounds=a["rounds"],
            precision=a["precision"],
            max_requests=a["max_requests"],
            slo=a["slo"],
            max_error_rate=a["max_error_rate"],
            timeout_s=a["timeout_s"],
            transport=a["transport"],
            idle_timeout_s=a["idle_timeout_s"],
        )

    # -- build: everything decided and every request made before a clock starts ------------
    def _build(
        self,
        server: ServerLike,
        *,
        num_prompts: int | None,
        load: LoadSpec,
        workload: dict[str, Any],
        tokenizer: Tokenizer | str | Path | None,
        rounds: int,
        precision: float | None,
        max_requests: int,
        slo: Mapping[str, float] | None,
        max_error_rate: float | None,
        timeout_s: float,
        transport: str,
        idle_timeout_s: float | None = IDLE_TIMEOUT_S,
    ) -> ServePlan:
        base_url, model, engine = self._check_server(server)
        fixed_text = workload["preset"] is not None or workload["prompts_file"] is not None
        if workload["endpoint"] is None:
            chat = workload["images"] or workload["preset"] or workload.get("dataset")
            workload["endpoint"] = "chat" if chat else "completions"
        if workload["ignore_eos"] is None:
            workload["ignore_eos"] = not fixed_text
        if precision is not None and not 0 < precision < 1:
            raise GpubenchError(f"precision must be a fraction such as 0.02, got {precision}")
        if max_error_rate is None:
            max_error_rate = self.max_error_rate
        if not 0 <= max_error_rate <= 1:
            raise GpubenchError(f"max_error_rate must be from 0 to 1, got {max_error_rate}")
        if rounds < 1:
            raise GpubenchError(f"rounds must be >= 1, got {rounds}")
        if precision is not None and rounds != 1:
            raise GpubenchError("precision (adaptive mode) runs one round; drop rounds")
        if transport not in ("aiohttp", "httpx"):
            raise GpubenchError(f"transport must be 'aiohttp' or 'httpx', got {transport!r}")
        slo_ms = check_slo(slo)
        spec = Workload(**workload)
        headers = _headers(server)
        tok = None
        if spec.needs_tokenizer:
            tok = self._tokenizer(tokenizer, base_url, model, engine, headers)
        adaptive = None
        if precision is not None:
            adaptive = Adaptive(precision, max_requests, block=max(load.concurrency or 1, 5))
            pool = max_requests
        elif load.duration_s is not None:
            pool = min(max_requests, 1000)
        else:
            pool = int(load.num_requests or 1)
        try:
            specs, warm, later, draw = self._draw_requests(spec, tok, pool, load.warmups, rounds)
        finally:
            if isinstance(tok, ServerTokenizer):
                tok.close()
        if spec.trace_file is not None:  # a replay past its budget: say so before it starts
            budget = {"the test's timeout": pytest_timeout_of(self.request.node)}
            note = check_replay(spec.trace_file, spec.trace_time_scale, len(specs), rounds, budget)
            if note:
                warn_at_caller(ServingWarning(note))
        info = {
            "engine": engine.name if engine is not None else _engine_label(server),
            "model": model,
            "endpoint": spec.endpoint,
            "input_len": spec.input_len,
            "output_len": spec.output_len,
            "range_ratio": spec.range_ratio,
            "prefix_len": spec.prefix_len,
            "images": spec.images,
            "preset": spec.preset,
            "prompts_file": str(spec.prompts_file) if spec.prompts_file else None,
            "num_prompts": num_prompts,
            "concurrency": load.concurrency,
            "warmups": load.warmups,
            "request_rate": None if math.isinf(load.rate) else load.rate,
            "arrival": load.arrival,
            "burstiness": load.burstiness,
            "duration_s": load.duration_s,
            "rounds": rounds,
            "precision": precision,
            "ignore_eos": spec.ignore_eos,
            "seed": spec.seed,
            "prompt_draw": [*draw, self.nonce],
            **data_info(spec),
        }
        return ServePlan(
            base_url=base_url,
            model=model,
            engine=engine,
            headers=headers,
            load=load,
            specs=specs,
            warm_specs=warm,
            adaptive=adaptive,
            rounds=rounds,
            slo_ms=slo_ms,
            max_error_rate=max_error_rate,
            ignore_eos=bool(spec.ignore_eos),
            timeout_s=timeout_s,
            transport=transport,
            info=info,
            idle_timeout_s=idle_timeout_s,
            server=server,
            later_specs=later,
        )

    def _draw_requests(
        self, spec: Workload, tok: Any, pool: int, warmups: int, rounds: int
    ) -> tuple[list[RequestSpec], list[RequestSpec], list[list[RequestSpec]], tuple[int, int]]:
        """The measured requests of each round and the warm-ups, each round a draw of its
        own; a dataset's rows continue after those earlier draws of this test took."""

        def take(stream: int, n: int, draw: tuple[int, int]) -> list[RequestSpec]:
            f = RequestFactory(
                spec, tok, stream=stream, draw=draw, nonce=self.nonce, skip=self._dataset_taken
            )
            return f.take(n)

        first = self._next_draw()
        specs = take(0, pool, first)
        warm = take(1, warmups, first) if warmups else []
        later = []
        for _ in range(rounds - 1):
            self._dataset_taken += pool
            later.append(take(0, pool, self._next_draw()))
        self._dataset_taken += pool
        return specs, warm, later, first

    # -- run rounds: the only part under the clock -----------------------------------------
    def _run_rounds(self, plan: ServePlan) -> tuple[list[RunResult], list[float]]:
        runs: list[RunResult] = []
        loop = asyncio.new_event_loop()
        client = self._client(plan, loop, plan.load.concurrency)
        every = sum(len(getattr(s, "turns", (s,))) for s in plan.specs)  # a conversation: turns
        total = None if (plan.load.duration_s or plan.adaptive) else every * plan.rounds
        try:
            with self._progress(total, self._label(plan)) as bar:

                def setup() -> None:
                    self._warm_up(plan, loop, client)

                def one_round() -> RunResult:
                    run = self._run_once(plan, loop, client, bar, plan.round_specs(len(runs)))
                    runs.append(run)
                    return run

                self.gpubench.in_server = True
                _, times = self.gpubench.time(
                    one_round,
                    rounds=plan.rounds,
                    warmup_rounds=0,
                    setup=setup if plan.warm_specs else None,
                )
        finally:
            close_loop(loop, client)
        return runs, times

    @staticmethod
    def _label(plan: ServePlan) -> str:
        return f"{plan.info['engine'] or 'server'} {plan.model}"

    def _client(self, plan: ServePlan, loop: asyncio.AbstractEventLoop, concurrency: int | None):
        """The load client for ``plan``'s server, on ``loop``; ``concurrency`` sizes its pool."""
        return loop.run_until_complete(
            _make_client(
                plan.base_url,
                plan.model,
                plan.engine,
                plan.headers,
                plan.transport,
                plan.timeout_s,
                concurrency,
                plan.idle_timeout_s,
            )
        )

    @staticmethod
    def _warm_up(plan: ServePlan, loop: asyncio.AbstractEventLoop, client: StreamingClient) -> None:
        """``plan``'s warm-up requests, unmeasured."""
        if plan.warm_specs:
            loop.run_until_complete(run_warmups(client, plan.warm_specs, plan.load.concurrency))

    @staticmethod
    def _run_once(
        plan: ServePlan,
        loop: asyncio.AbstractEventLoop,
        client: StreamingClient,
        bar: Any,
        specs: list[RequestSpec] | None = None,
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
                on_done=(lambda _r: bar.update(1)) if bar is not None else None,
            )
        )
        run.stalls = read_stalls(plan.server, plan.engine, mark)
        after = scrape(plan.base_url, plan.engine, headers=plan.headers)
        run.server = server_deltas(before, after, plan.engine) if before else {}
        return run

    @staticmethod
    def _run_steady(
        plan: ServePlan, loop: asyncio.AbstractEventLoop, client: StreamingClient, bar: Any
    ) -> RunResult:
        """One sweep or capacity point: the warm-ups lead straight into the measured requests
        (``run_load``'s ``lead``), so the measured ones run at the point's steady load, none in
        the burst of the start. A trace keeps its own clock: warm-ups first, then the trace.

        The server's counters are read around both, so the token counter is corrected by the
        warm-ups' own usage and the histogram means (which would mix the warm-ups in) are left
        out of such a point."""
        if any(getattr(s, "arrival", None) is not None for s in plan.specs):
            ServeBench._warm_up(plan, loop, client)
            return ServeBench._run_once(plan, loop, client, bar)
        before = scrape(plan.base_url, plan.engine, headers=plan.headers)
        mark = log_mark(plan.server)
        run = loop.run_until_complete(
            run_load(
                client,
                plan.specs,
                plan.load,
                on_done=(lambda _r: bar.update(1)) if bar is not None else None,
                lead=plan.warm_specs,
            )
        )
        run.stalls = read_stalls(plan.server, plan.engine, mark)
        after = scrape(plan.base_url, plan.engine, headers=plan.headers)
        server = server_deltas(before, after, plan.engine) if before else {}
        run.server = {}
        if "server_output_tokens" in server:
            warm = sum(r.usage_completion_tokens or 0 for r in run.warmups)
            run.server["server_output_tokens"] = server["server_output_tokens"] - warm
        return run

    # -- aggregate: metrics, recording, the checks that fail a test ------------------------
    def _aggregate(self, plan: ServePlan, runs: list[RunResult], recorded: bool) -> ServeResult:
        metrics = self._metrics(runs, plan.slo_ms, plan.ignore_eos, plan.adaptive)
        metrics.update(turn_metrics([r for run in runs for r in run.results]))
        metrics.update(self._plugin_metrics(runs, metrics))
        info = {
            **plan.info,
            "requests_used": sum(len(r.results) for r in runs),
            "stopped_by": runs[-1].stopped_by if runs else None,
            "slo_ms": plan.slo_ms or None,
        }
        if plan.info.get("multi_turn"):
            info["turns_not_sent"] = sum(run.turns_not_sent for run in runs)
        result = ServeResult(metrics, runs, info)
        late = late_trace_message(result.results, plan.load.concurrency)
        if late:
            warn_at_caller(ServingWarning(late))
        if recorded:  # not under --benchmark-disable
            self._record(metrics)
            extra = self.gpubench.benchmark.extra_info
            extra["serving"] = info
            extra["requests"] = result_rows(result.results)
            self._record_per_token(result)
            record_placement(self.gpubench, self.request, plan.server, plan.engine)
        self._check(result, plan.max_error_rate, plan.ignore_eos)
        return result

    def _record_per_token(self, result: ServeResult) -> None:
        """Energy per output token over the timed rounds, and the decode roofline at the batch
        the server actually ran (serving/decode_batch.py) when the test names its model."""
        ok = [r for r in result.results if r.ok]
        tokens = sum(r.output_tokens for r in ok)
        energy = self.gpubench.telemetry.get("energy_j")
        if energy and tokens:
            self.gpubench.metric(
                "energy_per_output_token_j",
                energy / tokens,
                "J/tok",
                False,
                headline=True,
                description="NVML energy over the timed rounds / output tokens",
            )
            self.gpubench.metric("output_tokens_per_j", tokens / energy, "tok/J", True)
        measured = decode_batch(ok)
        marker = self.request.node.get_closest_marker("model")
        on_gpu = "gpu_util_pct" in self.gpubench.telemetry  # a CPU run serves a tiny stand-in
        if measured is None or marker is None or not marker.args or not on_gpu:
            return
        self.gpubench.benchmark.extra_info["decode_batch"] = {
            "mean_batch": round(measured.batch, 3),
            "decode_tok_s": measured.tokens_per_s,
            "context": measured.context,
            "decoding_s": measured.decoding_s,
        }
        self.gpubench.roofline_decode(
            measured.tokens_per_s, batch=measured.batch, context=measured.context
        )

    def _metrics(
        self,
        runs: Sequence[RunResult],
        slo_ms: Mapping[str, float],
        ignore_eos: bool,
        adaptive: Adaptive | None,
    ) -> dict[str, Metric]:
        results = [r for run in runs for r in run.results]
        duration = sum(run.duration for run in runs)
        if len(runs) >= 2:
            ci: tuple[float, float] | None = mean_ci([run.output_tok_s for run in runs])
        else:
            ci = runs[0].throughput_ci if runs else None
        server: dict[str, float] = {}
        for run in runs:  # totals add up over rounds; means are averaged
            for k, v in run.server.items():
                server[k] = server.get(k, 0.0) + v
        for k in list(server):
            if k != "server_output_tokens":
                server[k] /= sum(1 for run in runs if k in run.server)
        metrics = serving_metrics(
            results,
            duration,
            slo=slo_ms,
            expect_full_output=ignore_eos,
            throughput_ci=ci,
            server=server,
            lead=[r for run in runs for r in run.warmups],
        )
        stalled = stall_metric([run.stalls for run in runs])
        if stalled is not None:
            metrics[STALL_METRIC] = stalled
        if "output_tok_s" in metrics:
            m = metrics["output_tok_s"]
            spread = dict(m.spread)
            spread["rounds"] = len(runs)
            if len(runs) == 1 and runs[0].ci_blocks:
                spread["ci_blocks"] = runs[0].ci_blocks
            metrics["output_tok_s"] = Metric(
                m.name, m.value, m.unit, m.higher_is_better, spread, m.description
            )
        return metrics

    def _plugin_metrics(
        self, runs: Sequence[RunResult], builtin: Mapping[str, Metric]
    ) -> dict[str, Metric]:
        """What plugins' ``pytest_gpubench_serving_metrics`` add (see hookspec.py)."""
        results = [r for run in runs for r in run.results]
        duration = sum(run.duration for run in runs)
        out: dict[str, Metric] = {}
        for found in self.request.config.hook.pytest_gpubench_serving_metrics(
            results=results, duration_s=duration
        ):
            for name, m in (found or {}).items():
                if not isinstance(m, Metric) or m.name != name:
                    raise GpubenchError(
                        f"pytest_gpubench_serving_metrics returned {name!r}: {m!r}; return "
                        "{name: Metric(name, value, unit, higher_is_better)}"
                    )
                if name in builtin or name in out:
                    raise GpubenchError(
                        f"pytest_gpubench_serving_metrics: metric {name!r} is already recorded; "
                        "give the plugin's metric its own name"
                    )
                out[name] = m
        return out

    def _check(
        self, result: ServeResult, max_error_rate: float, ignore_eos: bool, stalls: bool = True
    ) -> None:
        """The run's warnings and its error-rate failure; a sweep point leaves its stalls to
        the sweep's one warning (``stalls=False``)."""
        m = result.metrics
        short = result.short_outputs
        if short and ignore_eos:
            asked = int(m["short_outputs"].spread["asked_tokens"])
            got = int(m["short_outputs"].spread["got_tokens"])
            warn_at_caller(
                ServingWarning(
                    f"{short} of {result.completed} requests produced fewer output tokens than "
                    f"asked ({got} of {asked} tokens in all): the server ignored ignore_eos/"
                    "max_tokens, so throughput is not for the requested workload"
                ),
            )
        mismatched = int(m["token_count_mismatches"].value) if "token_count_mismatches" in m else 0
        if mismatched:
            warn_at_caller(
                ServingWarning(
                    f"{mismatched} of {result.completed} requests had no usage from the server or "
                    "reported fewer tokens than the text chunks received; their output counts "
                    "are the client's chunk count"
                ),
            )
        cached = repeated_prompts_message(m.get("cached_prompt_fraction"), result.workload)
        if cached:
            warn_at_caller(ServingWarning(cached))
        reports = [run.stalls for run in result.runs]
        stalled = stall_message(m.get(STALL_METRIC), reports) if stalls else None
        if stalled:
            warn_at_caller(ServingWarning(stalled))
        if result.error_rate > max_error_rate:
            pytest.fail(
                f"serve_bench: {result.failed} of {len(result.results)} requests failed "
                f"(error rate {result.error_rate:.1%} > allowed {max_error_rate:.1%}): "
                f"{error_summary(result.results)}",
                pytrace=False,
            )

    # -- sweeps and capacity (serving/sweep.py) -----------------------------------------------
    def _point_args(self, workload: Mapping[str, Any], own: Sequence[str]) -> dict[str, Any]:
        """``serve_bench``'s arguments for every point: its defaults, then ``workload``."""
        from pytest_gpubench.serving.sweep import NOT_PER_POINT

        params = inspect.signature(ServeBench.__call__).parameters
        args = {n: p.default for n, p in params.items() if n not in ("self", "server")}
        for name in workload:
            if name in NOT_PER_POINT or name in own:
                raise GpubenchError(
                    f"{name} is not a sweep argument (each point sets its own number of "
                    "prompts and warm-ups, and runs once; see prompts_per_user)"
                )
            if name not in args:
                raise GpubenchError(f"unknown argument {name!r}; serve_bench's are {sorted(args)}")
        args.update(workload)
        return args

    @usage_errors_fail("serve_bench.sweep")
    def sweep(
        self,
        server: ServerLike,
        *,
        concurrency: int | Sequence[int] | None = 1,
        request_rate: float | Sequence[float] = math.inf,
        shapes: Sequence[tuple[int, int]] | None = None,
        prompts_per_user: int = 4,
        min_prompts: int = 8,
        num_prompts: int | None = None,
        warmups: int | None = None,
        stop_at_saturation: bool = True,
        saturation_tolerance: float = 0.1,
        time_budget_s: float | None = None,
        **workload: Any,
    ) -> Any:
        """One point per concurrency, request rate or ``(input_len, output_len)`` shape (the
        one argument given as a list), each with its own warm-ups (default one per stream)
        and ``prompts_per_user`` requests per stream (or ``num_prompts`` at every point);
        stops after the first point that saturates, or before a point that would take the
        sweep past ``time_budget_s`` seconds (estimated from the points measured; the first
        always runs). ``workload`` is any other ``serve_bench`` argument. Returns a
        ``SweepResult`` whose ``.points`` carry ``.concurrency``, ``.request_rate``,
        ``.input_len``, ``.output_len``, ``.metrics``."""
        from pytest_gpubench.serving import sweep as sw

        whole("prompts_per_user", prompts_per_user, 1)
        whole("min_prompts", min_prompts, 1)
        whole("num_prompts", num_prompts, 1, none="scaled per point")
        whole("warmups", warmups, 0, none="one per stream")
        real("saturation_tolerance", saturation_tolerance, low=0, hint="a fraction such as 0.1")
        budget_s = real("time_budget_s", time_budget_s, low=0, none="no limit", hint="seconds")
        args = self._point_args(workload, ("concurrency", "request_rate", "num_prompts"))
        settings = sw.settings_for(
            concurrency, request_rate, shapes, args["input_len"], args["output_len"]
        )
        axis = settings[0].axis
        pool = max((s.concurrency or 1024) for s in settings)
        points: list[sw.SweepPoint] = []
        stopped = "done"
        with sw.Sweeper(self, server, args, pool) as sweeper:
            plans = [  # every point's requests built before the clock starts
                sweeper.plan(
                    s,
                    num_prompts or sw.prompts_for(s, prompts_per_user, min_prompts),
                    sw.warmups_for(s, warmups),
                )
                for s in settings
            ]
            first = plans[0]
            total = sum(len(p.specs) for p in plans)

            def run() -> None:
                nonlocal stopped
                points.clear()
                budget = sw.Budget(budget_s)
                for s, plan in zip(settings, plans, strict=True):
                    requests = len(plan.specs) + len(plan.warm_specs)
                    cost = sw.point_cost(points, s.concurrency, s.request_rate, requests)
                    if not budget.allows(cost):
                        stopped = "time_budget"
                        progress.say(
                            f"sweep stopped before {s.label}: about {cost:.0f} s more would "
                            f"pass time_budget_s={budget_s:g} ({budget.elapsed():.0f} s spent)"
                        )
                        break
                    point = sweeper.measure(s, plan, bar)
                    points.append(point)
                    if (
                        stop_at_saturation
                        and axis != "shape"
                        and len(points) >= 2
                        and sw.saturated(points[-2].metrics, point.metrics, saturation_tolerance)
                    ):
                        point.saturated = True
                        stopped = "saturation"
                    progress.say(sw.describe_point("sweep", point))
                    if stopped == "saturation":
                        break

            with self._progress(total, f"sweep {self._label(first)}") as bar:
                self.gpubench.in_server = True
                _, times = self.gpubench.time(run, rounds=1, warmup_rounds=0)
        result = sw.SweepResult(points, axis, stopped, sweeper.gpus)
        if times:
            self._record_points(points, headline=True)
            info = {
                "axis": axis,
                "stopped_by": stopped,
                "gpus": sweeper.gpus,
                "slo_ms": first.slo_ms or None,
                "prompts_per_user": prompts_per_user,
                "time_budget_s": budget_s,
                "points": [p.as_dict() for p in points],
            }
            self._record_sweep_info("sweep", info, first)
            if stopped == "time_budget":
                record_note(
                    self.request,
                    f"{self.request.node.name}: sweep stopped by time_budget_s={budget_s:g} "
                    f"after {', '.join(p.label for p in points)}; the settings after those "
                    "were not measured",
                )
        for point in points:
            self._check(point.result, first.max_error_rate, first.ignore_eos, stalls=False)
        self._note_stalls("sweep", points, recorded=bool(times))
        return result

    def _note_stalls(self, kind: str, points: Sequence[Any], recorded: bool) -> None:
        """The server's stalls over this test's sweep and capacity points: one pooled
        ``server_stall_fraction`` for the entry (not per point: it is a condition, and a
        suffixed name would be gated), and one warning for these points, each point's share
        named."""
        own = [run.stalls for p in points for run in _runs_of(p)]
        self._point_stalls += own
        pooled = stall_metric(self._point_stalls)
        if pooled is None:
            return
        if recorded:
            self.gpubench.metric(
                pooled.name, pooled.value, pooled.unit, False, spread=pooled.spread,
                description=pooled.description,
            )  # fmt: skip
        shares = []
        for p in points:
            m = stall_metric([run.stalls for run in _runs_of(p)])
            if m is not None:
                shares.append((p.label, m.value))
        message = stall_message(stall_metric(own), own, per_point=shares)
        if message:
            warn_at_caller(ServingWarning(f"{kind}: {message}"))

    @usage_errors_fail("serve_bench.stored_points")
    def stored_points(self, path: Any, key: str) -> Any:
        """The sweep points stored in ``path`` (a baseline or pytest-benchmark JSON of ours)
        for the benchmark whose key contains ``key``: ``capacity(known=...)`` starts from them
        when the sweep ran before (``serving.sweep.stored_points``)."""
        from pytest_gpubench.serving import sweep as sw

        return sw.stored_points(path, key)

    @usage_errors_fail("serve_bench.capacity")
    def capacity(
        self,
        server: ServerLike,
        slo: Mapping[str, float],
        *,
        percentile: int = 90,
        max_concurrency: int = 64,
        min_concurrency: int = 1,
        remeasure: int = 1,
        prompts_per_user: int = 4,
        min_prompts: int = 8,
        num_prompts: int | None = None,
        warmups: int | None = None,
        time_budget_s: float | None = None,
        known: Any = None,
        **workload: Any,
    ) -> Any:
        """The highest concurrency (from ``min_concurrency`` to ``max_concurrency``) whose
        ``percentile`` of every SLO metric (``ttft_ms``, ``tpot_ms``, ``e2el_ms``) is within
        its limit: bracket by doubling, bisect, re-measure either side of the boundary
        ``remeasure`` more times. With ``time_budget_s`` the search stops before a point that
        would pass it (estimated from the points measured) and answers with what it has:
        ``.stopped_by == "time_budget"``, the capacity the highest concurrency that passed so
        far and ``.upper`` the lowest that failed. ``known`` (a ``serve_bench.sweep`` result
        of the same workload, or its points) starts the search from those points' verdicts
        instead of measuring the bracket again; the boundary is still re-measured. Records
        ``capacity_users``; returns a ``CapacityResult`` (``.max_concurrency``, ``.points``
        in the order measured, the known ones not among them)."""
        from pytest_gpubench.serving import sweep as sw

        slo_ms = check_slo(slo)
        if not slo_ms:
            raise GpubenchError("slo must name at least one limit, e.g. {'ttft_ms': 500}")
        for key, limit in slo_ms.items():
            real(f"slo[{key!r}]", limit, low=0, hint="a limit in milliseconds")
        pct = sw.check_percentile(percentile)
        lowest = int(whole("min_concurrency", min_concurrency, 1) or 1)
        highest = int(whole("max_concurrency", max_concurrency, lowest) or lowest)
        whole("remeasure", remeasure, 0)
        whole("prompts_per_user", prompts_per_user, 1)
        whole("min_prompts", min_prompts, 1)
        whole("num_prompts", num_prompts, 1, none="scaled per point")
        whole("warmups", warmups, 0, none="one per stream")
        budget_s = real("time_budget_s", time_budget_s, low=0, none="no limit", hint="seconds")
        args = self._point_args(workload, ("concurrency", "num_prompts", "slo"))
        args["slo"] = slo_ms
        rate = args["request_rate"]
        rate = None if math.isinf(float(rate)) else float(rate)
        reused = sw.known_points(known, args["input_len"], args["output_len"], rate)
        points: list[sw.SweepPoint] = []
        found: dict[str, Any] = {}
        with sw.Sweeper(self, server, args, highest) as sweeper:

            def passes(c: int) -> bool:
                s = sw.Setting(c, rate, args["input_len"], args["output_len"])
                plan = sweeper.plan(
                    s,
                    num_prompts or sw.prompts_for(s, prompts_per_user, min_prompts),
                    sw.warmups_for(s, warmups),
                )
                found.setdefault("plan", plan)
                requests = len(plan.specs) + len(plan.warm_specs)
                cost = sw.point_cost(points, c, rate, requests)
                if not found["budget"].allows(cost):
                    progress.say(
                        f"capacity search stopped before c{c}: about {cost:.0f} s more would "
                        f"pass time_budget_s={budget_s:g} "
                        f"({found['budget'].elapsed():.0f} s spent)"
                    )
                    raise sw.OutOfTime
                point = sweeper.measure(s, plan, bar)
                point.meets_slo = sw.meets(point.metrics, slo_ms, pct, plan.max_error_rate)
                point.slo_check = sw.slo_check(point.result.results, slo_ms, pct)
                points.append(point)
                progress.say(sw.describe_point("capacity", point, pct))
                return point.meets_slo

            def run() -> None:
                points.clear()
                found["budget"] = sw.Budget(budget_s)
                given = args.get("max_error_rate")
                max_errors = self.max_error_rate if given is None else float(given)
                found["known"] = {
                    p.concurrency: sw.meets(p.metrics, slo_ms, pct, max_errors) for p in reused
                }
                found["answer"] = sw.search_capacity(
                    passes,
                    highest,
                    remeasure=remeasure,
                    min_concurrency=lowest,
                    known=found["known"],
                )

            with self._progress(None, f"capacity {self.request.node.name}") as bar:
                self.gpubench.in_server = True
                after_sweep = self.gpubench.timed_calls > 0
                if after_sweep:
                    # the test's one pytest-benchmark round went to the sweep before it
                    # (``known=sweep``): the search runs untimed by it, into the same entry
                    began = time.monotonic()
                    run()
                    enabled = getattr(self.gpubench.benchmark, "enabled", True)
                    times = [time.monotonic() - began] if enabled else []
                else:
                    _, times = self.gpubench.time(run, rounds=1, warmup_rounds=0)
            if "plan" not in found:  # known verdicts answered it all (remeasure=0)
                s0 = sw.Setting(lowest, rate, args["input_len"], args["output_len"])
                n0 = num_prompts or sw.prompts_for(s0, prompts_per_user, min_prompts)
                found["plan"] = sweeper.plan(s0, n0, sw.warmups_for(s0, warmups))
        answer = found["answer"]
        users, capped = answer.capacity, answer.capped
        result = sw.CapacityResult(
            users, points, slo_ms, pct, capped, answer.upper, answer.stopped_by
        )
        first = found["plan"]
        if times:
            spread = {
                "percentile": float(pct),
                "points": float(len(points)),
                "max_concurrency": float(highest),
                **{f"slo_{k}": v for k, v in slo_ms.items()},
            }
            m = metric("capacity_users", users, spread)
            self.gpubench.metric(
                m.name, m.value, m.unit, True, spread=m.spread, headline=True,
                description=m.description,
            )  # fmt: skip
            if after_sweep:  # the entry's round timed the sweep; the search's own time
                self.gpubench.metric(
                    "capacity_search_s", times[0], "s", False,
                    description="wall time of the capacity search after the test's sweep",
                )  # fmt: skip
            noise = result.within_noise
            info = {
                "max_concurrency": users,
                "capped": capped,
                "within_noise": noise,
                "upper": answer.upper,
                "stopped_by": answer.stopped_by,
                "time_budget_s": budget_s,
                "slo_ms": slo_ms,
                "percentile": pct,
                "search": [min_concurrency, max_concurrency],
                "remeasure": remeasure,
                "known": {f"c{c}": ok for c, ok in sorted(found.get("known", {}).items())},
                "gpus": sweeper.gpus,
                "points": [p.as_dict() for p in points],
            }
            self._record_sweep_info("capacity", info, first)
            if capped:
                record_note(
                    self.request,
                    f"{self.request.node.name}: capacity {users} users is the most the search "
                    f"tried (max_concurrency={highest}) and it met the SLO: the capacity may be "
                    "higher; raise max_concurrency to find it",
                )
            if noise:
                record_note(
                    self.request,
                    f"{self.request.node.name}: capacity {users} users is within the noise at "
                    f"its boundary: {noise}; more requests per point (prompts_per_user="
                    f"{prompts_per_user}) or remeasure= would narrow it",
                )
            if answer.stopped_by == "time_budget":
                upper = (
                    f"c{answer.upper} failed" if answer.upper is not None else "nothing failed yet"
                )
                record_note(
                    self.request,
                    f"{self.request.node.name}: capacity search stopped by time_budget_s="
                    f"{budget_s:g} after {len(points)} point{'s' if len(points) != 1 else ''}: "
                    f"{users} users is what passed so far, a lower bound ({upper})",
                )
        self._note_stalls("capacity search", points, recorded=bool(times))
        if users == 0 and points and points[0].result.error_rate > first.max_error_rate:
            self._check(points[0].result, first.max_error_rate, first.ignore_eos, stalls=False)
        return result

    def _record_points(self, points: Sequence[Any], headline: bool = False) -> None:
        """Each point's main metrics under the point's name (``output_tok_s.c4``)."""
        from pytest_gpubench.serving.sweep import POINT_METRICS, named

        for point in points:
            for name in POINT_METRICS:
                if name in point.metrics:
                    m = named(point.metrics[name], point.label)
                    self.gpubench.metric(
                        m.name,
                        m.value,
                        m.unit,
                        m.higher_is_better,
                        spread=m.spread,
                        headline=headline and name == "output_tok_s",
                        description=m.description,
                    )

    def _record_sweep_info(self, key: str, info: dict[str, Any], first: ServePlan) -> None:
        extra = self.gpubench.benchmark.extra_info
        per_point = (
            "concurrency",
            "num_prompts",
            "warmups",
            "request_rate",
            "requests_used",
            "prompt_draw",
        )
        extra["serving"] = {k: v for k, v in first.info.items() if k not in per_point}
        extra[key] = info
        record_placement(self.gpubench, self.request, first.server, first.engine)

    # -- long context ------------------------------------------------------------------------
    @usage_errors_fail("serve_bench.depth_sweep")
    def depth_sweep(
        self,
        server: ServerLike,
        depths: Sequence[int] = (0, 1024, 4096),
        *,
        output_len: int = 64,
        requests_per_depth: int = 3,
        endpoint: str = "completions",
        tokenizer: Tokenizer | str | Path | None = None,
        seed: int = 42,
        timeout_s: float = 3600.0,
        max_error_rate: float | None = None,
        idle_timeout_s: float | None = IDLE_TIMEOUT_S,
    ) -> dict[int, dict[str, Metric]]:
        """Single-user decode speed and TTFT as the prompt grows (llama-bench's ``-d``).

        Records ``decode_tok_s.d<depth>``, ``prefill_tok_s.d<depth>`` and
        ``ttft_ms.d<depth>`` per depth; one pytest-benchmark round is the whole sweep.
        """
        check_depth_sweep(locals())
        base_url, model, engine = self._check_server(server)
        headers = _headers(server)
        if not depths or any(int(d) < 0 for d in depths):
            raise GpubenchError(f"depths must be non-negative token counts, got {list(depths)}")
        tok = self._tokenizer(tokenizer, base_url, model, engine, headers)
        try:
            by_depth = depth_requests(
                tok,
                depths,
                output_len,
                requests_per_depth + 1,
                seed,
                endpoint,  # type: ignore[arg-type]
                draw=self._next_draw(),
                nonce=self.nonce,
            )
        finally:
            if isinstance(tok, ServerTokenizer):
                tok.close()
        loop = asyncio.new_event_loop()
        client = loop.run_until_complete(
            _make_client(base_url, model, engine, headers, "aiohttp", timeout_s, 1, idle_timeout_s)
        )
        results: dict[int, list[RequestResult]] = {}

        def sweep() -> None:
            for d, specs in by_depth.items():
                # a warm-up at this depth with its own prompt (a repeated one would be cached)
                loop.run_until_complete(client.send(specs[0]))
                results[d] = [loop.run_until_complete(client.send(s)) for s in specs[1:]]

        try:
            self.gpubench.in_server = True
            _, times = self.gpubench.time(sweep, rounds=1, warmup_rounds=0)
        finally:
            close_loop(loop, client)
        out: dict[int, dict[str, Metric]] = {}
        every = [r for rs in results.values() for r in rs]
        for d, rs in results.items():
            ok = [r for r in rs if r.ok and r.ttft and r.e2el]
            if not ok:
                continue
            # decode speed pooled over the requests (tokens after the first / time after the
            # first): a fast server can deliver a request's tokens in one read, where a
            # per-request 1/tpot would be undefined
            decode_s = sum(r.e2el - r.ttft for r in ok)  # type: ignore[operator]
            decode_n = sum(max(r.output_tokens - 1, 0) for r in ok)
            prefill = [(r.usage_prompt_tokens or r.spec.input_tokens or 0) / r.ttft for r in ok]  # type: ignore[operator]
            ttft = distribution([r.ttft for r in ok])  # type: ignore[misc]
            found = {
                f"prefill_tok_s.d{d}": _named(
                    "prefill_tok_s", d, sum(prefill) / len(prefill), {"n": len(ok)}
                ),
                f"ttft_ms.d{d}": _named("ttft_ms", d, ttft.pop("mean"), ttft),
            }
            if decode_s > 0 and decode_n > 0:
                found[f"decode_tok_s.d{d}"] = _named(
                    "decode_tok_s", d, decode_n / decode_s, {"n": len(ok), "tokens": decode_n}
                )
            out[d] = found
            if times:
                self._record(found)
        if max_error_rate is None:
            max_error_rate = self.max_error_rate
        failed = [r for r in every if not r.ok]
        if every and len(failed) / len(every) > max_error_rate:
            pytest.fail(
                f"serve_bench.depth_sweep: {len(failed)} of {len(every)} requests failed: "
                f"{error_summary(every)}",
                pytrace=False,
            )
        return out


def _runs_of(point: Any) -> Sequence[RunResult]:
    """A measured point's runs; none for a point without its result (stored, not measured)."""
    return getattr(getattr(point, "result", None), "runs", None) or ()


def _named(base: str, depth: int, value: float, spread: Mapping[str, float]) -> Metric:
    m = metric(base, value, spread)
    return Metric(
        f"{base}.d{depth}",
        m.value,
        m.unit,
        m.higher_is_better,
        m.spread,
        f"{m.description} (prompt depth {depth} tokens)",
    )


async def _make_client(
    base_url: str,
    model: str,
    engine: Engine | None,
    headers: Mapping[str, str],
    transport: str,
    timeout_s: float,
    concurrency: int | None,
    idle_timeout_s: float | None = IDLE_TIMEOUT_S,
) -> StreamingClient:
    """The load client for one server: its API key, its engine's timings parser."""
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


assert set(HEADLINE) <= set(SERVING_METRICS)
