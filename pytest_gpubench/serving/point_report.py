"""A sweep or capacity point's roofline %, energy per token, GPU busy and bound verdict.

Glue between a measured point and ``metrics.point.judge_point``: it reads the point's window
from the telemetry sampler that runs through the sweep (``gpubench.sampler``), the decode
batch the server ran (serving/decode_batch.py), the model's bytes from its
``@pytest.mark.model`` marker, and the server log's stall share. On a run without GPU
telemetry (a CPU stand-in server) or without a model marker there is no roofline, as for a
single serve_bench run (``ServeBench._record_per_token``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pytest_gpubench.engines.stalls import StallReport
from pytest_gpubench.metrics import roofline
from pytest_gpubench.metrics.point import PointFacts, PointReport, judge_point
from pytest_gpubench.selection.markers import model_of
from pytest_gpubench.serving.client import RequestResult
from pytest_gpubench.serving.decode_batch import decode_batch


def model_bytes(gpubench: Any, context: int) -> tuple[float, float] | None:
    """(active weight bytes per step, one sequence's KV bytes at ``context``) of the test's
    marked model; None without a marker."""
    if model_of(gpubench.request.node) is None:  # parsed at collection
        return None
    spec, quant = gpubench.model_spec(None, None)
    return roofline.active_weight_bytes(spec, quant), roofline.kv_read_bytes(spec, context)


def point_report(
    gpubench: Any,
    results: Sequence[RequestResult],
    output_tok_s: float,
    window: tuple[float, float],
    users: float | None,
    *,
    lead: Sequence[RequestResult] = (),
    stalls: StallReport | None = None,
) -> PointReport | None:
    """The point's figures over ``window``: its measured span as the requests' clock has it
    (``RunResult.start`` / ``end``, ``time.perf_counter``), read against the sampler's
    ``time.monotonic`` samples. ``lead``: the warm-ups that led into the window, decoding in
    it too (they count in the decode batch). None where no sampler ran
    (``--benchmark-disable``)."""
    sampler = gpubench.sampler
    if sampler is None:
        return None
    offset = time.monotonic() - time.perf_counter()  # 0 on Linux, where both are one clock
    start, end = window[0] + offset, window[1] + offset
    seen = sampler.telemetry.window(start, end)
    on_gpu = sampler.telemetry.gpu
    decoding = [r for r in (*results, *lead) if r.ok]
    measured = decode_batch(decoding) if on_gpu else None
    sizes = model_bytes(gpubench, measured.context) if measured is not None else None
    stall = stalls.seconds / stalls.span_s if stalls is not None and stalls.span_s > 0 else None
    facts = PointFacts(
        output_tok_s=output_tok_s,
        span_s=end - start,
        users=users,
        weight_bytes=sizes[0] if sizes else 0.0,
        kv_bytes_per_seq=sizes[1] if sizes else 0.0,
        context=measured.context if measured else 0,
        bandwidth_gbs=gpubench.profile.bandwidth_gbs if sizes else None,
        decode_tok_s=measured.tokens_per_s if measured else None,
        decode_batch=measured.batch if measured else None,
        energy_j=seen.get("energy_j") if on_gpu else None,
        gpu_util_pct=seen.get("gpu_util_pct") if on_gpu else None,
        server_stall=min(1.0, stall) if stall is not None else None,
    )
    return judge_point(facts)
