"""Arrival schedules: seeded, with the asked mean rate and burstiness."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.serving.schedule import LoadSpec, arrival_offsets


def gaps(load: LoadSpec, n: int = 20000) -> np.ndarray:
    return np.diff(list(itertools.islice(arrival_offsets(load), n)))


def test_infinite_rate_sends_everything_at_once() -> None:
    assert set(itertools.islice(arrival_offsets(LoadSpec()), 50)) == {0.0}


def test_constant_rate_has_equal_gaps() -> None:
    g = gaps(LoadSpec(rate=4.0, arrival="constant"), 100)
    assert np.allclose(g, 0.25)


@pytest.mark.parametrize(
    ("arrival", "burstiness", "cv"),
    [
        ("poisson", 1.0, 1.0),
        ("gamma", 0.25, 2.0),
        ("gamma", 4.0, 0.5),
    ],
)
def test_random_arrivals_keep_the_mean_rate_and_set_the_spread(arrival, burstiness, cv) -> None:
    g = gaps(LoadSpec(rate=10.0, arrival=arrival, burstiness=burstiness, seed=3))
    assert g.mean() == pytest.approx(0.1, rel=0.05)
    # gamma with shape k has coefficient of variation 1/sqrt(k)
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.08)


def test_schedules_are_reproducible_from_the_seed() -> None:
    a = gaps(LoadSpec(rate=5.0, seed=1), 50)
    assert np.array_equal(a, gaps(LoadSpec(rate=5.0, seed=1), 50))
    assert not np.array_equal(a, gaps(LoadSpec(rate=5.0, seed=2), 50))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency must be >= 1"),
        ({"rate": 0}, "request_rate must be > 0"),
        ({"arrival": "uniform"}, "arrival must be"),
        ({"num_requests": None}, "give num_prompts"),
        ({"num_requests": None, "duration_s": 5, "concurrency": None}, "needs a concurrency cap"),
        ({"burstiness": 0}, "burstiness must be > 0"),
    ],
)
def test_load_mistakes_are_clear(kwargs, message) -> None:
    with pytest.raises(GpubenchError, match=message):
        LoadSpec(**kwargs)


def test_rate_inf_is_default() -> None:
    assert LoadSpec().rate == math.inf
