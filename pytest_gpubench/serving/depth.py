"""``serve_bench.depth_sweep``: single-user decode speed and TTFT as the prompt grows
(llama-bench's ``-d``), one pytest-benchmark round for the whole sweep."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.serving import recording
from pytest_gpubench.serving.client import RequestResult, RequestSpec
from pytest_gpubench.serving.context import ServeContext
from pytest_gpubench.serving.measure import depth_client
from pytest_gpubench.serving.metrics import distribution, error_summary, metric
from pytest_gpubench.serving.options import Limits
from pytest_gpubench.serving.plan import check_server, headers_of, make_tokenizer
from pytest_gpubench.serving.requests import depth_requests
from pytest_gpubench.serving.run import close_loop
from pytest_gpubench.serving.tokens import ServerTokenizer, Tokenizer


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


def depth_metrics(depth: int, results: Sequence[RequestResult]) -> dict[str, Metric]:
    """One depth's prefill tok/s, TTFT and decode tok/s (empty when nothing completed)."""
    ok = [r for r in results if r.ok and r.ttft and r.e2el]
    if not ok:
        return {}
    # decode speed pooled over the requests (tokens after the first / time after the
    # first): a fast server can deliver a request's tokens in one read, where a
    # per-request 1/tpot would be undefined
    decode_s = sum(r.e2el - r.ttft for r in ok)  # type: ignore[operator]
    decode_n = sum(max(r.output_tokens - 1, 0) for r in ok)
    prefill = [(r.usage_prompt_tokens or r.spec.input_tokens or 0) / r.ttft for r in ok]  # type: ignore[operator]
    ttft = distribution([r.ttft for r in ok])  # type: ignore[misc]
    found = {
        f"prefill_tok_s.d{depth}": _named(
            "prefill_tok_s", depth, sum(prefill) / len(prefill), {"n": len(ok)}
        ),
        f"ttft_ms.d{depth}": _named("ttft_ms", depth, ttft.pop("mean"), ttft),
    }
    if decode_s > 0 and decode_n > 0:
        found[f"decode_tok_s.d{depth}"] = _named(
            "decode_tok_s", depth, decode_n / decode_s, {"n": len(ok), "tokens": decode_n}
        )
    return found


def run_depth_sweep(
    ctx: ServeContext,
    server: object,
    depths: Sequence[int],
    shape: tuple[int, int, str, int],
    tokenizer: Tokenizer | str | Path | None,
    limits: Limits,
) -> dict[int, dict[str, Metric]]:
    """``shape``: (output_len, requests_per_depth, endpoint, seed); ``limits``: the request
    and idle timeouts and the allowed error rate."""
    output_len, per_depth, endpoint, seed = shape
    base = check_server(server)
    headers = headers_of(server)
    if not depths or any(int(d) < 0 for d in depths):
        raise GpubenchError(f"depths must be non-negative token counts, got {list(depths)}")
    tok = make_tokenizer(tokenizer, base, headers)
    try:
        by_depth = depth_requests(
            tok, depths, output_len, per_depth + 1, seed, endpoint,  # type: ignore[arg-type]
            draw=ctx.next_draw(), nonce=ctx.nonce,
        )  # fmt: skip
    finally:
        if isinstance(tok, ServerTokenizer):
            tok.close()
    results = _send_depths(ctx, base, headers, by_depth, limits)
    out: dict[int, dict[str, Metric]] = {}
    for d, rs in results[0].items():
        found = depth_metrics(d, rs)
        if found:
            out[d] = found
            if results[1]:
                recording.write_metrics(ctx.gpubench, found)
    every = [r for rs in results[0].values() for r in rs]
    given = limits.max_error_rate
    allowed = ctx.max_error_rate if given is None else given
    failed = [r for r in every if not r.ok]
    if every and len(failed) / len(every) > allowed:
        pytest.fail(
            f"serve_bench.depth_sweep: {len(failed)} of {len(every)} requests failed: "
            f"{error_summary(every)}",
            pytrace=False,
        )
    return out


def _send_depths(
    ctx: ServeContext,
    base: tuple[str, str, object],
    headers: Mapping[str, str],
    by_depth: Mapping[int, list[RequestSpec]],
    limits: Limits,
) -> tuple[dict[int, list[RequestResult]], list[float]]:
    """Per depth a warm-up with its own prompt (a repeated one would be cached), then the
    measured requests one at a time; timed as the test's one round."""
    loop = asyncio.new_event_loop()
    client = depth_client(base, headers, loop, limits.timeout_s, limits.idle_timeout_s)  # type: ignore[arg-type]
    results: dict[int, list[RequestResult]] = {}

    def sweep() -> None:
        for d, specs in by_depth.items():
            loop.run_until_complete(client.send(specs[0]))
            results[d] = [loop.run_until_complete(client.send(s)) for s in specs[1:]]

    try:
        times = ctx.time(sweep)
    finally:
        close_loop(loop, client)
    return results, times
