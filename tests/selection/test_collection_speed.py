"""How much the model fit check adds to collecting 1,000 parametrized benchmarks.

A benchmark (pytest-benchmark), not a timed assertion: the figure is recorded, not judged.
"""

from __future__ import annotations

import itertools

import pytest

from pytest_gpubench.devices import load_profiles
from pytest_gpubench.models import catalog
from pytest_gpubench.selection import estimate as estimate_module
from pytest_gpubench.selection.estimate import ModelRequest
from pytest_gpubench.selection.fit import judge
from pytest_gpubench.selection.markers import Requirements

MODELS = ["gpt-oss-20b", "gpt-oss-120b", "glm-4.7-flash", "qwen3-coder-next", "llama-3.1-8b"]
QUANTS = ["q4_k_m", "q8_0", "bf16", "fp8"]
CONTEXTS = [4096, 8192, 16384, 32768, 65536]
ENGINES = ["vllm", "llamacpp"]
CONCURRENCY = [1, 2, 4, 8, 16]
GRID = list(itertools.product(MODELS, QUANTS, CONTEXTS, ENGINES, CONCURRENCY))[:1000]


def test_grid_is_1000_tests() -> None:
    assert len(GRID) == 1000


@pytest.mark.parametrize("cold", [False, True], ids=["warm-specs", "cold-specs"])
def test_fit_checks_for_1000_parametrized_tests(benchmark, cold: bool) -> None:
    """What collection does per test: build the Requirements, estimate, judge."""
    profile = load_profiles().get("rtx4090")
    reqs = [
        Requirements(model=ModelRequest(m, quant=q, context=c, engine=e, concurrency=n))
        for m, q, c, e, n in GRID
    ]

    def collect() -> int:
        estimate_module._estimate.cache_clear()
        if cold:  # every config parsed again: the first collection in a process
            catalog._parse.cache_clear()
            catalog._spec.cache_clear()
        return sum(judge(f"t{i}", r, profile).runs for i, r in enumerate(reqs))

    runs = benchmark(collect)
    assert 0 < runs < 1000  # some of the grid fits a 4090, some does not
