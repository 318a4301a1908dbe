"""Plan: one ``serve_bench`` measurement decided before any clock starts.

From the server and the options (``serving/options.py``) to a ``ServePlan``: the server's
address, engine and headers, the load, every request of every round and the warm-ups (each
round a draw of its own from the request source, ``serving/sources.py``), the limits, and the
facts recorded as ``extra_info["serving"]``. Nothing here sends a measured request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pytest_gpubench.engines import Engine, find_engine
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.serving.client import IDLE_TIMEOUT_S
from pytest_gpubench.serving.context import ServeContext
from pytest_gpubench.serving.datasets import check_replay, data_info, pytest_timeout_of
from pytest_gpubench.serving.metrics import check_slo
from pytest_gpubench.serving.options import ServeOptions
from pytest_gpubench.serving.requests import Workload
from pytest_gpubench.serving.run import Adaptive
from pytest_gpubench.serving.schedule import LoadSpec
from pytest_gpubench.serving.sources import Draw, RequestSource, Sendable, source_for
from pytest_gpubench.serving.tokens import LocalTokenizer, ServerTokenizer, Tokenizer
from pytest_gpubench.serving.warn import ServingWarning, warn_at_caller


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


def engine_label(server: Any) -> str | None:
    engine = getattr(server, "engine", None)
    name = getattr(engine, "name", engine if isinstance(engine, str) else None)
    return str(name) if name else None


def headers_of(server: Any) -> dict[str, str]:
    """The headers every request to this server needs (``Server.headers``: its API key)."""
    headers = getattr(server, "headers", None)
    return dict(headers) if isinstance(headers, Mapping) else {}


def check_server(server: Any) -> tuple[str, str, Engine | None]:
    """The server's base URL (no trailing slash), model and engine; a usage error naming
    what is missing."""
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


def make_tokenizer(
    tokenizer: Tokenizer | str | Path | None,
    server: tuple[str, str, Engine | None],
    headers: Mapping[str, str] | None = None,
) -> Tokenizer:
    """The tokenizer that sizes prompts: given, a local one by name or path, else the
    server's own (``server``: base URL, model, engine)."""
    if tokenizer is None:
        return ServerTokenizer(*server, headers)
    if isinstance(tokenizer, str | Path):
        return LocalTokenizer(tokenizer)
    return tokenizer


@dataclass
class ServePlan:
    """One ``serve_bench`` call, decided: the server, the load and every request, built
    before any clock starts."""

    base_url: str
    model: str
    engine: Engine | None
    headers: dict[str, str]
    load: LoadSpec
    specs: list[Sendable]  # the first (or only) round's
    warm_specs: list[Sendable]
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
    later_specs: list[list[Sendable]] = field(default_factory=list, repr=False)

    def round_specs(self, i: int) -> list[Sendable]:
        """The requests of round ``i`` (0-based)."""
        return self.specs if i == 0 else self.later_specs[i - 1]

    @property
    def label(self) -> str:
        """The progress line's name of this plan's server."""
        return f"{self.info['engine'] or 'server'} {self.model}"


def _check_plan(options: ServeOptions, max_error_rate: float) -> None:
    """What the options allow only together."""
    load = options.load
    if not 0 <= max_error_rate <= 1:
        raise GpubenchError(f"max_error_rate must be from 0 to 1, got {max_error_rate}")
    if load.precision is not None and load.rounds != 1:
        raise GpubenchError("precision (adaptive mode) runs one round; drop rounds")
    if options.client.transport not in ("aiohttp", "httpx"):
        raise GpubenchError(
            f"transport must be 'aiohttp' or 'httpx', got {options.client.transport!r}"
        )


def build_plan(ctx: ServeContext, server: Any, options: ServeOptions) -> ServePlan:
    """The plan of one measurement: checked server, every request drawn (``ctx`` numbers the
    draws), the facts to record."""
    base_url, model, engine = check_server(server)
    load, limits = options.load, options.limits
    given = limits.max_error_rate
    max_error_rate = ctx.max_error_rate if given is None else float(given)
    _check_plan(options, max_error_rate)
    workload = options.requests.workload()
    source = source_for(workload, options.requests.source)
    spec = load.spec(workload.seed)
    headers = headers_of(server)
    adaptive = None
    if load.precision is not None:
        adaptive = Adaptive(load.precision, load.max_requests, block=max(spec.concurrency or 1, 5))
        pool = load.max_requests
    elif spec.duration_s is not None:
        pool = min(load.max_requests, 1000)
    else:
        pool = int(spec.num_requests or 1)
    tok = None
    if source.needs_tokenizer(workload):
        tok = make_tokenizer(options.client.tokenizer, (base_url, model, engine), headers)
    try:
        rounds = draw_rounds(ctx, source, workload, tok, (pool, load.warmups, load.rounds))
    finally:
        if isinstance(tok, ServerTokenizer):
            tok.close()
    specs, warm, later, draw = rounds
    if workload.trace_file is not None:  # a replay past the test's timeout: said before it runs
        timeout = {"the test's timeout": pytest_timeout_of(getattr(ctx.request, "node", None))}
        scale, rows = workload.trace_time_scale, len(specs)
        note = check_replay(workload.trace_file, scale, rows, load.rounds, timeout)
        if note:
            warn_at_caller(ServingWarning(note))
    label = engine.name if engine is not None else engine_label(server)
    info = serving_info(label, model, options, workload, [*draw, ctx.nonce])
    if options.requests.source is not None:  # a source chosen by name or object
        info["source"] = source.name
    return ServePlan(
        base_url=base_url,
        model=model,
        engine=engine,
        headers=headers,
        load=spec,
        specs=specs,
        warm_specs=warm,
        adaptive=adaptive,
        rounds=load.rounds,
        slo_ms=check_slo(limits.slo),
        max_error_rate=max_error_rate,
        ignore_eos=bool(workload.ignore_eos),
        timeout_s=limits.timeout_s,
        transport=options.client.transport,
        info=info,
        idle_timeout_s=limits.idle_timeout_s,
        server=server,
        later_specs=later,
    )


def draw_rounds(
    ctx: ServeContext,
    source: RequestSource,
    workload: Workload,
    tok: Tokenizer | None,
    sizes: tuple[int, int, int],
) -> tuple[list[Sendable], list[Sendable], list[list[Sendable]], tuple[int, int]]:
    """The measured requests of each round and the warm-ups (``sizes``: requests per round,
    warm-ups, rounds), each round a draw of its own; a dataset's rows continue after those
    earlier draws of this test took. Also returns the first draw's key."""
    pool, warmups, rounds = sizes

    def take(stream: int, n: int, key: tuple[int, int]) -> list[Sendable]:
        d = Draw(workload, tok, n, stream, key, ctx.nonce, ctx.dataset_taken)
        return list(source.draw(d))

    first = ctx.next_draw()
    specs = take(0, pool, first)
    warm = take(1, warmups, first) if warmups else []
    later = []
    for _ in range(rounds - 1):
        ctx.take_rows(pool)
        later.append(take(0, pool, ctx.next_draw()))
    ctx.take_rows(pool)
    return specs, warm, later, first


def serving_info(
    engine: str | None,
    model: str,
    options: ServeOptions,
    workload: Workload,
    prompt_draw: list[Any],
) -> dict[str, Any]:
    """``extra_info["serving"]``: what was asked, in the stored format's keys and order."""
    load = options.load
    return {
        "engine": engine,
        "model": model,
        "endpoint": workload.endpoint,
        "input_len": workload.input_len,
        "output_len": workload.output_len,
        "range_ratio": workload.range_ratio,
        "prefix_len": workload.prefix_len,
        "images": workload.images,
        "preset": workload.preset,
        "prompts_file": str(workload.prompts_file) if workload.prompts_file else None,
        "num_prompts": load.num_prompts,
        "concurrency": load.concurrency,
        "warmups": load.warmups,
        "request_rate": None if math.isinf(load.request_rate) else float(load.request_rate),
        "arrival": load.arrival,
        "burstiness": load.burstiness,
        "duration_s": load.duration_s,
        "rounds": load.rounds,
        "precision": load.precision,
        "ignore_eos": workload.ignore_eos,
        "seed": workload.seed,
        "prompt_draw": prompt_draw,
        **data_info(workload),
    }
