"""The decode batch a serving run actually ran, for its roofline.

A server at concurrency 10 is not judged against the batch-1 bound (it reads the weights once
per step for all ten sequences) nor against a batch-10 bound when, with ramp-up, drain and
prefill gaps, six sequences were decoding on average. The batch is measured from the requests
themselves: between its first generated token and its last, a request is decoding; the mean
number decoding, weighted by time over the time at least one decodes, is the batch the bound
uses, and the decode rate is the tokens generated after the first over that same time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_gpubench.serving.client import RequestResult


@dataclass(frozen=True)
class DecodeBatch:
    batch: float  # mean sequences decoding while any decodes
    tokens_per_s: float  # tokens after each request's first, over the decoding time
    context: int  # mean tokens in a sequence's cache halfway through its decode
    decoding_s: float  # wall time with at least one sequence decoding


def decode_batch(results: Sequence[RequestResult]) -> DecodeBatch | None:
    """None when no request decoded more than one token."""
    spans: list[tuple[float, float, int, int]] = []
    for r in results:
        if not r.ok or r.ttft is None or r.end is None or r.output_tokens < 2:
            continue
        first = r.start + r.ttft  # ttft is relative to the request's start
        if r.end <= first:
            continue
        prompt = r.usage_prompt_tokens or r.spec.input_tokens or 0
        spans.append((first, r.end, r.output_tokens - 1, prompt + r.output_tokens // 2))
    if not spans:
        return None
    events = sorted([(a, 1) for a, _, _, _ in spans] + [(b, -1) for _, b, _, _ in spans])
    active, last, busy, weighted = 0, events[0][0], 0.0, 0.0
    for t, step in events:
        if active:
            busy += t - last
            weighted += active * (t - last)
        active += step
        last = t
    if busy <= 0:
        return None
    tokens = sum(n for _, _, n, _ in spans)
    context = round(sum(c for *_, c in spans) / len(spans))
    return DecodeBatch(weighted / busy, tokens / busy, context, busy)
