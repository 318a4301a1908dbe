"""``Metric``: the one shape every measured number takes, from any kind of benchmark.

Serving, training and diffusion benchmarks all record ``Metric`` objects, so baselines,
regression checks and cross-device reports treat them alike: each carries its unit and whether
higher is better, which pytest-benchmark's own time statistics cannot express.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from pytest_gpubench.errors import GpubenchError


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str
    higher_is_better: bool
    # How the value is spread over its samples: n, std, median, ci95_low/high, p50... (optional)
    spread: dict[str, float] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace(".", "").isalnum():
            raise GpubenchError(
                f"metric name {self.name!r} must be letters, digits, '_' or '.' (e.g. output_tok_s)"
            )
        if not self.unit:
            raise GpubenchError(f"metric {self.name!r} has no unit; give one, e.g. unit='tok/s'")
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise GpubenchError(f"metric {self.name!r} value must be a number, got {self.value!r}")
        if not math.isfinite(float(self.value)):
            raise GpubenchError(f"metric {self.name!r} value is not finite: {self.value!r}")

    @property
    def direction(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["value"] = float(self.value)
        data["direction"] = self.direction
        del data["name"]
        if not data["description"]:
            del data["description"]
        return data


#: Metrics that describe the harness or the conditions of a run rather than the workload's
#: performance: recorded and shown, but not gated by the baseline check unless a test names
#: them in ``gpubench_tolerance(...)``. The pytest process's own memory (``host_mem_peak_gib``)
#: moved +80% between two runs of unchanged code here; power, utilisation and clocks follow the
#: workload but are not its result; the roofline bound and measured ceilings are the device's.
UNGATED = frozenset(
    {
        "host_mem_peak_gib",
        "host_busy_cores",
        "host_thread_busy_pct",  # the bound verdict's inputs: conditions, not results
        "data_wait_pct",
        "cached_prompt_fraction",  # a condition of the run: prompts the server had seen
        "server_stall_fraction",  # a server setting's cost, said with its fix (a warning)
        "avg_power_w",
        "peak_power_w",
        "gpu_util_pct",
        "sm_clock_mhz",
        "roofline_bound_tok_s",
        "measured_copy_gbs",
        "measured_bf16_tflops",
        "measured_fp16_tflops",
        "measured_fp8_tflops",
        "measured_tf32_tflops",
    }
)

#: ``host_busy_cores`` at or above this: the host spent at least half a core on other work
#: while the benchmark ran, too busy to judge a slowdown (see bench/hostload.py)
HOST_BUSY_CORES = 0.5
