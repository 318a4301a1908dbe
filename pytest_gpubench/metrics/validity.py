"""Whether a result measured what it claims: the validity verdict, beside the bound verdict.

The bound verdict says what limited a result; this one says whether the result can be trusted
at all (issue 26). A result is invalid when:

- the load client saturated: its own process was CPU-bound during the timed span (CPU seconds
  over wall seconds at or above ``CLIENT_SATURATED``: the asyncio client runs its event loop
  on one thread, so one core is its ceiling whatever the machine has), and it measured its own
  limit, not the server's;
- client-counted and server-reported output tokens disagree by more than ``TOKEN_MISMATCH``
  (1%): the client lost or invented tokens, or the server counted other work;
- the GPU throttled: NVML's clock event reasons showed thermal, power or sync-boost slowdown
  in at least ``THROTTLE_SHARE`` of the samples over the span (the reasons are instantaneous;
  a single 100 ms sample in a minute-long run moves its throughput by well under 1%);
- another process used the GPU during the span (its compute processes, less the benchmark's
  own: this process tree and the server it measured);
- the prompt cache hit more than the workload declared: the share of prompt tokens served
  from the server's cache exceeds the shared-prefix share the workload asked for by more than
  ``CACHE_SLACK``, so prefills were skipped that the workload meant to measure.

Pure: the facts are read by bench/telemetry.py (NVML) and the serving run (tokens, cache).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: the load client's process CPU seconds per wall second at or above which it saturated
CLIENT_SATURATED = 0.9
#: relative difference of client and server output token counts above which they disagree
TOKEN_MISMATCH = 0.01
#: share of the span's NVML samples with a throttle reason at or above which it throttled
THROTTLE_SHARE = 0.05
#: observed prompt-cache share above the declared one by more than this is a hidden cache hit
CACHE_SLACK = 0.05

#: NVML clock event reason bits that slow the GPU down (nvmlClocksEventReason*): power cap,
#: hardware slowdown, sync boost, software and hardware thermal slowdown, power brake. Idle,
#: application and display clock settings are not slowdowns.
THROTTLE_BITS: dict[int, str] = {
    0x4: "power cap",
    0x8: "hardware slowdown",
    0x10: "sync boost",
    0x20: "thermal (software)",
    0x40: "thermal (hardware)",
    0x80: "power brake",
}


@dataclass(frozen=True)
class ValidityFacts:
    """What was seen over one result's timed span; None where it was not measured."""

    client_cpu_s: float | None = None  # the load client's process CPU seconds in the span
    wall_s: float | None = None  # the span's wall seconds
    client_tokens: float | None = None  # output tokens the client counted
    server_tokens: float | None = None  # output tokens the server's counters say it made
    throttle_share: Mapping[str, float] = field(default_factory=dict)  # reason -> share
    other_gpu_processes: Sequence[str] = ()  # "pid name" of foreign GPU compute processes
    cached_fraction: float | None = None  # prompt tokens served from the server's cache
    declared_cached_fraction: float | None = None  # the workload's shared-prefix share


@dataclass(frozen=True)
class Validity:
    valid: bool
    reasons: tuple[str, ...] = ()  # one line per thing that makes it invalid

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        return data

    @property
    def message(self) -> str:
        return "valid" if self.valid else "invalid: " + "; ".join(self.reasons)


def throttle_shares(reasons: Sequence[int | None]) -> dict[str, float]:
    """Per slowdown reason, the share of NVML samples that showed it (samples without a
    reading are left out); {} where none was read."""
    read = [r for r in reasons if r is not None]
    if not read:
        return {}
    return {
        name: sum(1 for r in read if r & bit) / len(read)
        for bit, name in THROTTLE_BITS.items()
        if any(r & bit for r in read)
    }


def judge_validity(f: ValidityFacts) -> Validity:
    """The verdict: valid unless one of the module docstring's conditions was seen."""
    reasons: list[str] = []
    if f.client_cpu_s is not None and f.wall_s:
        cores = f.client_cpu_s / f.wall_s
        if cores >= CLIENT_SATURATED:
            reasons.append(
                f"the load client was CPU-bound ({cores:.2f} cores of CPU per second of the "
                f"span, >= {CLIENT_SATURATED:g}): it measured itself; use the aiohttp "
                "transport or run the client on cores the server does not use"
            )
    if f.client_tokens is not None and f.server_tokens:
        off = abs(f.client_tokens - f.server_tokens) / f.server_tokens
        if off > TOKEN_MISMATCH:
            reasons.append(
                f"the client counted {f.client_tokens:.0f} output tokens, the server "
                f"{f.server_tokens:.0f} ({off:.1%} apart, > {TOKEN_MISMATCH:.0%})"
            )
    throttled = {k: v for k, v in f.throttle_share.items() if v >= THROTTLE_SHARE}
    if throttled:
        said = ", ".join(f"{k} {v:.0%} of the samples" for k, v in sorted(throttled.items()))
        reasons.append(f"the GPU throttled ({said})")
    if f.other_gpu_processes:
        reasons.append("another process used the GPU: " + ", ".join(f.other_gpu_processes))
    if f.cached_fraction is not None:
        declared = f.declared_cached_fraction or 0.0
        if f.cached_fraction > declared + CACHE_SLACK:
            reasons.append(
                f"the server served {f.cached_fraction:.0%} of prompt tokens from its cache "
                f"where the workload declared {declared:.0%}: prefills were skipped"
            )
    return Validity(not reasons, tuple(reasons))
