"""One sweep or capacity point's own figures: roofline %, energy per token, GPU busy, bound.

A sweep's single bound verdict covered all its points, so the H100 sweep read "gpu" (76%
busy) at 8 users where decode ran near an eighth of its bandwidth bound, and no point carried a
roofline % or an energy per token (issue 26). ``judge_point`` gives each point these from what
was measured over that point's window alone:

- roofline %: decode tokens/s over the bandwidth bound at the batch that ran (the mean number
  of sequences decoding at once, serving/decode_batch.py) and the context: every step reads
  the active weights once for the batch plus each sequence's KV (metrics/roofline.py);
- energy per output token: the GPU's energy counter's rise over the window / the output
  tokens the server streamed in it (output tok/s x the window's length, the warm-ups that
  led into the window included, as the energy covers them too);
- GPU busy: NVML's utilisation averaged over the window;
- the bound verdict (metrics/bound.py) from those, the same rules a single run is judged by.

Pure: the caller reads the counters (bench/telemetry.py ``Sampler.mark`` gives a point's
window) and the model's bytes (``roofline.active_weight_bytes`` / ``kv_read_bytes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_gpubench.metrics.bound import Facts, Verdict, judge
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.metrics.roofline import DecodeBound


@dataclass(frozen=True)
class PointFacts:
    """What was measured over one point's window."""

    output_tok_s: float  # the point's output tok/s: tokens streamed in the window / span_s
    span_s: float  # the window's wall seconds, which energy and GPU busy cover
    users: float | None  # the point's concurrency (None for a request-rate point)
    weight_bytes: float  # active weight bytes one decode step reads (roofline.py)
    kv_bytes_per_seq: float  # KV bytes one sequence's step reads at ``context``
    context: int  # tokens in a sequence's cache halfway through its decode
    bandwidth_gbs: float | None  # the device's datasheet bandwidth (None: no roofline)
    decode_tok_s: float | None = None  # tokens after the first over the decoding time
    decode_batch: float | None = None  # mean sequences decoding at once while any decodes
    energy_j: float | None = None  # the energy counter's rise over the window
    gpu_util_pct: float | None = None  # NVML utilisation averaged over the window
    server_stall: float | None = None  # the server log's stalled share of the window
    thread_busy: float | None = None  # the load client's thread CPU time / wall time
    host_busy_cores: float | None = None  # other processes' CPU use (bench/hostload.py)
    offload: str | None = None  # the placement's description when layers sat on the CPU


@dataclass(frozen=True)
class PointReport:
    roofline_pct: float | None
    roofline_bound_tok_s: float | None
    energy_per_output_token_j: float | None
    gpu_util_pct: float | None
    verdict: Verdict | None

    def metrics(self) -> dict[str, Metric]:
        """The figures as metrics under their single-run names (a sweep names them per
        point: ``roofline_pct.c4``); those unknown are left out."""
        found = (
            ("roofline_pct", self.roofline_pct, "%", True),
            ("roofline_bound_tok_s", self.roofline_bound_tok_s, "tok/s", True),
            ("energy_per_output_token_j", self.energy_per_output_token_j, "J/tok", False),
            ("gpu_util_pct", self.gpu_util_pct, "%", True),
        )
        return {
            name: Metric(name, value, unit, higher)
            for name, value, unit, higher in found
            if value is not None
        }

    def as_dict(self) -> dict[str, Any]:
        """For the point's record: its figures and its verdict (``bound``)."""
        out: dict[str, Any] = {k: m.value for k, m in self.metrics().items()}
        if self.verdict is not None:
            out["bound"] = self.verdict.as_dict()
        return out


def decode_roofline(p: PointFacts) -> tuple[float, float] | None:
    """(bound tok/s, % of it) at the batch that ran; None without a bandwidth or weights."""
    if not p.bandwidth_gbs or p.weight_bytes <= 0:
        return None
    batch = p.decode_batch if p.decode_batch is not None else (p.users or 1.0)
    rate = p.decode_tok_s if p.decode_tok_s is not None else p.output_tok_s
    bound = DecodeBound(p.weight_bytes + batch * p.kv_bytes_per_seq, batch, p.bandwidth_gbs)
    return bound.tokens_per_s, 100.0 * rate / bound.tokens_per_s


def judge_point(p: PointFacts) -> PointReport:
    """Roofline %, energy per output token, GPU busy and the bound verdict of one point."""
    roof = decode_roofline(p)
    tokens = p.output_tok_s * p.span_s
    per_token = p.energy_j / tokens if p.energy_j is not None and tokens > 0 else None
    batch = p.decode_batch if p.decode_batch is not None else p.users
    verdict = judge(
        Facts(
            gpu_util_pct=p.gpu_util_pct,
            span_s=p.span_s,
            thread_busy=p.thread_busy,
            offload=p.offload,
            server=True,
            host_busy_cores=p.host_busy_cores,
            server_stall=p.server_stall,
            decode_pct=roof[1] if roof else None,
            decode_batch=batch if roof else None,
            decode_context=p.context if roof else None,
            users=p.users,
        )
    )
    return PointReport(
        roofline_pct=roof[1] if roof else None,
        roofline_bound_tok_s=roof[0] if roof else None,
        energy_per_output_token_j=per_token,
        gpu_util_pct=p.gpu_util_pct,
        verdict=verdict,
    )
