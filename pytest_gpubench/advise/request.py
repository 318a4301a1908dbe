"""What ``advise`` is asked: the model, quant and engine, the workload, the SLO, the prices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    model: str
    quant: str
    engine: str
    context: int
    kv_dtype: str | None
    prompt_len: int = 1000
    output_len: int = 300
    slo_ms: Mapping[str, float] = field(default_factory=lambda: {"ttft_ms": 2000, "tpot_ms": 50})
    percentile: int = 90
    device_price: Mapping[str, float] = field(default_factory=dict)
    power_price: float | None = None  # per kWh
    lifetime_years: float | None = None

    @property
    def target(self) -> tuple[str, str, str]:
        return (self.model, self.quant, self.engine)
