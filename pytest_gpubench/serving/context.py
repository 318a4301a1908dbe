"""The run context of one test's ``serve_bench``: what every call of that test shares.

One small object instead of attributes set on the bench from outside: the draw counter (each
set of requests a test builds is a draw of its own, so no set re-sends another's prompts),
the dataset rows those draws took, the progress line, the stalls of the test's sweep and
capacity points so far, and the one switch that tells ``gpubench`` its timed work runs in a
server process (``serving``). Plan, measure, aggregate, sweep and capacity read it; only this
module sets ``gpubench.in_server``.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pytest_gpubench import progress
from pytest_gpubench.engines.stalls import StallReport
from pytest_gpubench.serving.recording import write_note


@dataclass
class ServeContext:
    """``max_error_rate`` and ``progress_mode`` are the run's defaults
    (--gpubench-max-error-rate, --gpubench-progress); ``nonce`` (one per pytest run) changes
    the random prompts' text, not their lengths, so a long-lived server has not cached this
    run's prompts from an earlier run."""

    gpubench: Any  # bench.gpubench.GpuBench (Any: tests build a context without one)
    request: Any  # pytest.FixtureRequest
    max_error_rate: float = 0.0
    progress_mode: str = "auto"
    nonce: int | None = None
    draws: int = 0  # sets of requests built by this test so far
    dataset_taken: int = 0  # dataset rows those took (the next set starts after them)
    # every sweep and capacity point's stall reports so far in this test (a capacity search
    # after a sweep pools both into one server_stall_fraction)
    point_stalls: list[StallReport | None] = field(default_factory=list)
    test_key: int = field(init=False)

    def __post_init__(self) -> None:
        node = getattr(self.request, "node", None)
        self.test_key = zlib.crc32(str(getattr(node, "nodeid", "")).encode())

    @property
    def test_name(self) -> str:
        return str(self.request.node.name)

    @property
    def config(self) -> Any:
        return self.request.config

    def next_draw(self) -> tuple[int, int]:
        """The next set of requests of this test: every point, re-measurement and round
        sends prompts of its own (``RequestFactory``), reproducible from the test's id."""
        self.draws += 1
        return self.test_key, self.draws - 1

    def take_rows(self, n: int) -> int:
        """Mark ``n`` more dataset rows taken; returns where this set starts."""
        start = self.dataset_taken
        self.dataset_taken += n
        return start

    @contextlib.contextmanager
    def progress(self, total: int | None, desc: str) -> Iterator[Any]:
        """Requests done, on the terminal (see pytest_gpubench.progress); ``progress_mode``
        "off" turns this benchmark's line off whatever the run's setting."""
        if self.progress_mode == "off":
            yield None
            return
        with progress.task(desc, total, "req") as bar:
            yield bar

    def serving(self) -> None:
        """What follows measures a server: the GPU work runs in another process (the bound
        verdict reads the server's stalls, not this process's)."""
        self.gpubench.in_server = True

    def note(self, message: str) -> None:
        """A line for the run's summary (serving/recording.py)."""
        write_note(self.request, message)

    @property
    def timed_before(self) -> bool:
        """This test already spent its one pytest-benchmark round (a sweep before a search)."""
        return self.gpubench.timed_calls > 0

    def time(
        self, fn: Callable[[], Any], rounds: int = 1, setup: Callable[[], None] | None = None
    ) -> list[float]:
        """``fn`` timed by pytest-benchmark as server work; the rounds' times (none under
        --benchmark-disable)."""
        self.serving()
        _, times = self.gpubench.time(fn, rounds=rounds, warmup_rounds=0, setup=setup)
        return list(times)
