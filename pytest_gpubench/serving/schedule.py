"""When requests are sent: concurrency cap, arrival rate and process, count or duration.

Arrivals follow ``vllm bench serve``: ``rate=inf`` sends as fast as the concurrency cap allows
(a closed loop); a finite rate draws gaps from a gamma distribution with shape
``burstiness`` and mean ``1/rate`` (burstiness 1 is a Poisson process; below 1 is burstier,
above 1 is smoother) or uses constant gaps. Seeded, so a schedule is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pytest_gpubench.errors import GpubenchError

Arrival = Literal["constant", "poisson", "gamma"]


@dataclass(frozen=True)
class LoadSpec:
    concurrency: int | None = 1  # most requests in flight; None: no cap
    rate: float = math.inf  # requests per second
    arrival: Arrival = "poisson"
    burstiness: float = 1.0
    num_requests: int | None = 100
    duration_s: float | None = None
    warmups: int = 0
    seed: int = 42

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise GpubenchError(f"concurrency must be >= 1 or None, got {self.concurrency}")
        if not self.rate > 0:
            raise GpubenchError(
                f"request_rate must be > 0 (inf for as fast as possible), got {self.rate}"
            )
        if self.arrival not in ("constant", "poisson", "gamma"):
            raise GpubenchError(
                f"arrival must be 'constant', 'poisson' or 'gamma', got {self.arrival!r}"
            )
        if not self.burstiness > 0:
            raise GpubenchError(f"burstiness must be > 0, got {self.burstiness}")
        if self.num_requests is None and self.duration_s is None:
            raise GpubenchError("give num_prompts (a number of requests) or duration_s")
        if self.num_requests is not None and self.num_requests < 1:
            raise GpubenchError(f"num_prompts must be >= 1, got {self.num_requests}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise GpubenchError(f"duration_s must be > 0, got {self.duration_s}")
        if self.warmups < 0:
            raise GpubenchError(f"warmups must be >= 0, got {self.warmups}")
        if self.rate == math.inf and self.concurrency is None and self.duration_s is not None:
            raise GpubenchError(
                "duration_s with an infinite request rate needs a concurrency cap "
                "(otherwise every request would be sent at once)"
            )


def arrival_offsets(load: LoadSpec) -> Iterator[float]:
    """Seconds after the start at which each request is due (endless; the caller stops)."""
    if load.rate == math.inf:
        while True:
            yield 0.0
    rng = np.random.default_rng(load.seed)
    shape = 1.0 if load.arrival == "poisson" else load.burstiness
    t = 0.0
    while True:
        yield t
        if load.arrival == "constant":
            t += 1.0 / load.rate
        else:
            t += float(rng.gamma(shape, 1.0 / (load.rate * shape)))
