"""When requests are sent: concurrency cap, arrival rate and process, count or duration.

Arrivals follow ``vllm bench serve``: ``rate=inf`` sends as fast as the concurrency cap allows
(a closed loop); a finite rate draws gaps from a gamma distribution with shape
``burstiness`` and mean ``1/rate`` (burstiness 1 is a Poisson process; below 1 is burstier,
above 1 is smoother) or uses constant gaps. Seeded, so a schedule is reproducible.

Each arrival process is a load shape (``LoadShape``: a name and ``offsets(load)``) in the
``SHAPES`` registry; a conftest adds one with the ``pytest_gpubench_register_load_shapes``
hook and a test uses it as ``serve_bench(..., arrival="its name")``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.serving.registry import Registry

Arrival = Literal["constant", "poisson", "gamma"] | str


@runtime_checkable
class LoadShape(Protocol):
    """When requests are due: ``offsets(load)`` yields each one's seconds after the start
    (endless; the run loop stops taking them at its count, duration or precision)."""

    name: str

    def offsets(self, load: LoadSpec) -> Iterator[float]: ...


SHAPES: Registry[LoadShape] = Registry(
    "load shape", ("name", "offsets"), "give it a name and offsets(load) -> seconds after start"
)


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
        if not isinstance(self.arrival, str) or SHAPES.find(self.arrival) is None:
            names = [repr(n) for n in SHAPES.names()]
            listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
            raise GpubenchError(f"arrival must be {listed}, got {self.arrival!r}")
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
    return SHAPES.get(load.arrival, "arrival").offsets(load)


@dataclass(frozen=True)
class GapShape:
    """The built-in shapes: every request at once at an infinite rate; else gaps of mean
    ``1/rate``, constant or gamma-distributed (shape ``burstiness``; 1 for Poisson)."""

    name: str

    def offsets(self, load: LoadSpec) -> Iterator[float]:
        if load.rate == math.inf:
            while True:
                yield 0.0
        rng = np.random.default_rng(load.seed)
        shape = 1.0 if self.name == "poisson" else load.burstiness
        t = 0.0
        while True:
            yield t
            if self.name == "constant":
                t += 1.0 / load.rate
            else:
                t += float(rng.gamma(shape, 1.0 / (load.rate * shape)))


for _name in ("constant", "poisson", "gamma"):
    SHAPES.register(GapShape(_name))
