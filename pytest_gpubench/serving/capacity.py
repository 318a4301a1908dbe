"""SLO capacity: ``serve_bench.capacity``, beside the sweep.

The highest concurrency whose chosen percentile meets every SLO: doubling from the lowest
until a point fails (bracket), bisecting between the last pass and the first fail, then
re-measuring the two concurrencies either side of the boundary (``search_capacity``, pure).
``known`` points (a sweep's, or stored ones: ``stored_points``) start the search from their
verdicts. Points are measured by a ``Sweeper`` (serving/sweeper.py); the search records
``capacity_users`` and ``extra_info["capacity"]``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest

from pytest_gpubench import progress
from pytest_gpubench.bench.telemetry import Sampler
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.results import sections
from pytest_gpubench.serving import recording
from pytest_gpubench.serving.aggregate import check_result
from pytest_gpubench.serving.arguments import real, whole
from pytest_gpubench.serving.context import ServeContext
from pytest_gpubench.serving.failures import point_failure
from pytest_gpubench.serving.metrics import check_slo, metric
from pytest_gpubench.serving.plan import ServePlan
from pytest_gpubench.serving.points import (
    Budget,
    CapacityResult,
    PointSizes,
    Setting,
    SweepPoint,
    check_percentile,
    describe_point,
    meets,
    point_cost,
    slo_check,
)
from pytest_gpubench.serving.sweeper import Sweeper, note_stalls, point_options, record_section


class OutOfTime(Exception):
    """Raised by a capacity search's ``passes`` when the next point would pass the budget."""


class PointFailed(Exception):
    """Raised by a capacity search's ``passes`` when a point's error rate passed the allowed
    one: a point whose requests failed says nothing of the SLO, so the search stops there."""


class Found(NamedTuple):
    """What ``search_capacity`` found: the capacity, whether ``max_concurrency`` passed
    (``capped``), the lowest concurrency that failed (``upper``; None when none did) and
    why it stopped: ``"done"`` or ``"time_budget"`` (``OutOfTime`` from ``passes``)."""

    capacity: int
    capped: bool
    upper: int | None = None
    stopped_by: str = "done"


def search_capacity(
    passes: Callable[[int], bool],
    max_concurrency: int,
    *,
    remeasure: int = 1,
    min_concurrency: int = 1,
    known: Mapping[int, bool] | None = None,
) -> Found:
    """The highest concurrency in ``[min_concurrency, max_concurrency]`` that passes, found by
    doubling (bracket), bisecting, and re-measuring either side of the boundary ``remeasure``
    more times (a concurrency passes when more than half of its measurements pass). Capacity
    0 when ``min_concurrency`` fails; ``capped`` when ``max_concurrency`` passes (the real
    capacity may be higher). When ``passes`` raises ``OutOfTime`` the search stops where it
    stands: the capacity is the highest concurrency whose measurements so far pass.

    ``known`` gives verdicts measured before (a sweep's points): each counts as one
    measurement, the bracket starts from them (the lowest known failure above the highest known
    pass below it), and the boundary is re-measured as always, so a lucky or unlucky earlier
    point is checked, not trusted."""
    search = _Bisection(passes, min_concurrency, max_concurrency, remeasure)
    search.votes = {
        c: [bool(ok)] for c, ok in (known or {}).items() if min_concurrency <= c <= max_concurrency
    }
    stopped = "done"
    try:
        search.run()
    except OutOfTime:
        stopped = "time_budget"
        search.settle()
    capacity = search.lo if search.lo > search.none else 0
    return Found(capacity, capacity == max_concurrency, search.hi, stopped)


class _Bisection:
    """``search_capacity``'s state: the votes per concurrency, the highest that passes
    (``lo``; ``none`` when nothing has) and the lowest that fails (``hi``; None: none yet)."""

    def __init__(
        self, passes: Callable[[int], bool], lowest: int, highest: int, remeasure: int
    ) -> None:
        self.passes = passes
        self.highest = highest
        self.remeasure = remeasure
        self.votes: dict[int, list[bool]] = {}
        self.none = lowest - 1
        self.lowest = lowest
        self.lo: int = self.none
        self.hi: int | None = None

    def verdict(self, c: int) -> bool:
        v = self.votes[c]
        return sum(v) * 2 > len(v)

    def measure(self, c: int) -> bool:
        ok = bool(self.passes(c))  # first: a point that never ran (OutOfTime) casts no vote
        self.votes.setdefault(c, []).append(ok)
        return self.verdict(c)

    def bracket(self, c: int) -> None:
        """Double from ``c`` until a concurrency fails or the highest passes."""
        while True:
            if self.measure(c):
                self.lo = c
                if c >= self.highest:
                    return
                c = min(c * 2, self.highest)
            else:
                self.hi = c
                return

    def start(self) -> None:
        """The bracket: from the known votes where there are any."""
        failing = [c for c in self.votes if not self.verdict(c)]
        if failing:
            self.hi = min(failing)
            below = (c for c in self.votes if c < self.hi and self.verdict(c))
            self.lo = max(below, default=self.none)
        elif self.votes:
            self.lo = max(self.votes)
            if self.lo < self.highest:
                self.bracket(min(self.lo * 2, self.highest))
        else:
            self.bracket(self.lowest)

    def run(self) -> None:
        """Bracket, then bisect and re-measure the boundary, again while it moves."""
        self.start()
        for _ in range(64):
            while self.hi is not None and self.hi - self.lo > 1:
                mid = (self.lo + self.hi) // 2
                if self.measure(mid):
                    self.lo = mid
                else:
                    self.hi = mid
            for c in (self.lo, self.hi):
                if c is not None and c > self.none:
                    while len(self.votes[c]) < 1 + self.remeasure:
                        self.measure(c)
            if not self.moved():
                break

    def moved(self) -> bool:
        """Whether the re-measured boundary moved (and the bracket with it)."""
        votes, lo, hi = self.votes, self.lo, self.hi
        if lo > self.none and not self.verdict(lo):  # the pass did not hold: look lower
            self.hi = lo
            self.lo = max((k for k in votes if k < lo and self.verdict(k)), default=self.none)
            return True
        if hi is not None and self.verdict(hi):  # the fail did not hold: look higher
            self.lo = hi
            self.hi = min((k for k in votes if k > hi and not self.verdict(k)), default=None)
            if self.hi is None and self.lo < self.highest:
                self.bracket(min(self.lo * 2, self.highest))
            return True
        return False

    def settle(self) -> None:
        """After ``OutOfTime``: the highest pass with no failure measured below it (a lower
        bound however the search was interrupted: a pass above a failure is not counted)."""
        failing = [k for k in self.votes if not self.verdict(k)]
        passing = (k for k in self.votes if self.verdict(k) and all(f > k for f in failing))
        self.lo = max(passing, default=self.none)
        self.hi = min((k for k in failing if k > self.lo), default=None)


def known_points(
    known: Any, input_len: int, output_len: int, rate: float | None
) -> list[SweepPoint]:
    """The concurrency points of ``known`` (a sweep's or a capacity search's result, or their
    points) for a capacity search of this workload; a usage error when they were measured at
    another shape or request rate, since their verdicts would not be this search's."""
    if known is None:
        return []
    raw = getattr(known, "points", known)
    try:
        points = list(raw)
    except TypeError:
        points = None
    if points is None or not all(isinstance(p, SweepPoint) for p in points):
        raise GpubenchError(
            "known must be a serve_bench.sweep (or .capacity) result or its .points, "
            f"got {type(known).__name__}"
        )
    out = []
    for p in points:
        if p.concurrency is None:
            continue  # a request-rate point says nothing about a number of users
        if (p.input_len, p.output_len) != (input_len, output_len) or p.request_rate != rate:
            raise GpubenchError(
                f"known point {p.label or p.concurrency} was measured at input_len "
                f"{p.input_len}, output_len {p.output_len}, request_rate {p.request_rate}; "
                f"this capacity search runs {input_len}, {output_len}, {rate}: give it the "
                "same workload as the sweep"
            )
        out.append(p)
    return out


def stored_points(path: Any, key: str) -> list[SweepPoint]:
    """The sweep (and capacity) points a stored baseline or pytest-benchmark JSON of ours holds
    for the one benchmark whose key contains ``key``: what ``capacity(known=...)`` starts
    from when the sweep ran in an earlier session (its verdicts are checked at the boundary,
    not trusted). Usage errors name the file and what it holds."""
    from pytest_gpubench.results.baseline import load

    base = load(path)
    found: dict[str, list[Any]] = {}
    for bench in base.document.get("benchmarks") or []:
        raw = [p.raw for p in sections.read_points(sections.extra_in(bench))]
        if raw:
            found[sections.entry_key(bench)] = raw
    hits = [k for k in found if key in k]
    if len(hits) != 1:
        listed = ", ".join(sorted(found)[:6]) or "none"
        what = (
            "no benchmark with sweep points matches"
            if not hits
            else f"{len(hits)} benchmarks with sweep points match"
        )
        raise GpubenchError(f"{path}: {what} {key!r}; those with points: {listed}")
    return [_point_from(p, path, hits[0]) for p in found[hits[0]]]


def _point_from(raw: Any, path: Any, key: str) -> SweepPoint:
    try:
        metrics = {
            name: Metric(
                name,
                float(m["value"]),
                str(m["unit"]),
                bool(m["higher_is_better"]),
                {k: v for k, v in (m.get("spread") or {}).items() if isinstance(v, int | float)},
                str(m.get("description") or ""),
            )
            for name, m in raw["metrics"].items()
        }
        conc, rate = raw.get("concurrency"), raw.get("request_rate")
        return SweepPoint(
            int(conc) if conc is not None else None,
            float(rate) if rate is not None else None,
            int(raw["input_len"]),
            int(raw["output_len"]),
            metrics,
            label=str(raw.get("label") or ""),
            num_prompts=int(raw.get("num_prompts") or 0),
            warmups=int(raw.get("warmups") or 0),
            wall_s=float(raw.get("wall_s") or 0.0),
            bound=raw["bound"] if isinstance(raw.get("bound"), dict) else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise GpubenchError(
            f"{path}: a sweep point of {key} is malformed ({type(exc).__name__}: {exc}); "
            "record it again with serve_bench.sweep"
        ) from None


@dataclass
class CapacitySearch:
    """One search's measuring: ``passes(c)`` plans and measures a point at ``c`` users (a
    draw of its own), says its line and its SLO verdict; ``OutOfTime`` before a point that
    would pass the time budget."""

    sweeper: Sweeper
    slo_ms: dict[str, float]
    percentile: int
    sizes: PointSizes
    shape: tuple[float | None, int, int]  # request rate (None: closed loop), input, output
    budget_s: float | None
    bar: Any = None
    points: list[SweepPoint] = field(default_factory=list)
    first: ServePlan | None = None
    failure: str | None = None  # the failed point's line: the search stopped there
    budget: Budget = field(default_factory=lambda: Budget(None))

    def setting(self, c: int) -> Setting:
        return Setting(c, *self.shape)

    def plan(self, c: int) -> ServePlan:
        s = self.setting(c)
        return self.sweeper.plan(s, self.sizes.prompts(s), self.sizes.warmups_at(s))

    def passes(self, c: int) -> bool:
        plan = self.plan(c)
        if self.first is None:
            self.first = plan
        requests = len(plan.specs) + len(plan.warm_specs)
        cost = point_cost(self.points, c, self.shape[0], requests)
        if not self.budget.allows(cost):
            progress.say(
                f"capacity search stopped before c{c}: about {cost:.0f} s more would "
                f"pass time_budget_s={self.budget_s:g} "
                f"({self.budget.elapsed():.0f} s spent)"
            )
            raise OutOfTime
        point = self.sweeper.measure(self.setting(c), plan, self.bar)
        assert point.result is not None
        point.meets_slo = meets(point.metrics, self.slo_ms, self.percentile, plan.max_error_rate)
        point.slo_check = slo_check(point.result.results, self.slo_ms, self.percentile)
        self.points.append(point)
        progress.say(describe_point("capacity", point, self.percentile))
        results = point.result.results
        self.failure = point_failure(point.label, results, plan.max_error_rate, plan.base_url)
        if self.failure is not None:
            raise PointFailed(self.failure)
        return point.meets_slo


@dataclass(frozen=True)
class CapacityAsk:
    """What a capacity search is asked: the SLO, at which percentile, between which
    concurrencies, re-measuring the boundary how often, within which time."""

    slo_ms: dict[str, float]
    percentile: int
    lowest: int
    highest: int
    remeasure: int
    budget_s: float | None

    @classmethod
    def check(
        cls,
        slo: Mapping[str, float],
        percentile: Any,
        bounds: tuple[Any, Any],
        remeasure: Any,
        time_budget_s: Any,
    ) -> CapacityAsk:
        slo_ms = check_slo(slo)
        if not slo_ms:
            raise GpubenchError("slo must name at least one limit, e.g. {'ttft_ms': 500}")
        for key, limit in slo_ms.items():
            real(f"slo[{key!r}]", limit, low=0, hint="a limit in milliseconds")
        pct = check_percentile(percentile)
        lowest = int(whole("min_concurrency", bounds[0], 1) or 1)
        highest = int(whole("max_concurrency", bounds[1], lowest) or lowest)
        whole("remeasure", remeasure, 0)
        budget_s = real("time_budget_s", time_budget_s, low=0, none="no limit", hint="seconds")
        return cls(slo_ms, pct, lowest, highest, int(remeasure), budget_s)


def run_capacity(
    ctx: ServeContext,
    server: Any,
    ask: CapacityAsk,
    sizes: PointSizes,
    known: Any,
    workload: Mapping[str, Any],
) -> CapacityResult:
    """``serve_bench.capacity``: search, record (when timed), check, return the result."""
    own = ("concurrency", "num_prompts", "slo")
    args = point_options(workload, own, "serve_bench.capacity")
    args["slo"] = ask.slo_ms
    rate = None if math.isinf(float(args["request_rate"])) else float(args["request_rate"])
    reused = known_points(known, args["input_len"], args["output_len"], rate)
    given = args.get("max_error_rate")
    max_errors = ctx.max_error_rate if given is None else float(given)
    verdicts = {p.concurrency: meets(p.metrics, ask.slo_ms, ask.percentile, max_errors)
                for p in reused}  # fmt: skip
    found: dict[str, Found] = {}
    with Sweeper(ctx, server, args, ask.highest) as sweeper:
        shape = (rate, int(args["input_len"]), int(args["output_len"]))
        search = CapacitySearch(sweeper, ask.slo_ms, ask.percentile, sizes, shape, ask.budget_s)

        def run() -> None:
            search.points.clear()
            search.budget = Budget(ask.budget_s)
            with contextlib.suppress(PointFailed):  # search.failure says which point
                found["answer"] = search_capacity(
                    search.passes,
                    ask.highest,
                    remeasure=ask.remeasure,
                    min_concurrency=ask.lowest,
                    known=verdicts,  # type: ignore[arg-type]
                )

        with ctx.progress(None, f"capacity {ctx.test_name}") as bar:
            search.bar = bar
            after_sweep, times = _time_search(ctx, run)
        first = search.first or search.plan(ask.lowest)  # known verdicts answered it all
    if search.failure is not None:
        measured = ", ".join(p.label for p in search.points)
        pytest.fail(
            f"serve_bench.capacity: {search.failure}; the search stopped there and recorded "
            f"nothing (measured: {measured})",
            pytrace=False,
        )
    answer = found["answer"]
    result = CapacityResult(
        answer.capacity, search.points, ask.slo_ms, ask.percentile, answer.capped,
        answer.upper, answer.stopped_by,
    )  # fmt: skip
    if times:
        _record_capacity(ctx, result, ask, first, (sizes, verdicts, after_sweep, times[0]))
    note_stalls(ctx, "capacity search", result.points, recorded=bool(times))
    head = result.points[0].result if result.points else None
    if result.max_concurrency == 0 and head is not None and head.error_rate > first.max_error_rate:
        check_result(head, first.max_error_rate, first.ignore_eos, stalls=False)
    return result


def _time_search(ctx: ServeContext, run: Callable[[], None]) -> tuple[bool, list[float]]:
    """Run the search as the test's timed round; after a sweep (which took that round,
    ``known=sweep``) it runs untimed by pytest-benchmark into the same entry, and its own
    wall time is returned. Its own telemetry sampler runs through it, so each point's figures
    (serving/point_report.py) read samples of that point's window, not the sweep's last."""
    ctx.serving()
    if not ctx.timed_before:
        return False, ctx.time(run)
    began = time.monotonic()
    with Sampler() as sampler:
        ctx.gpubench.sampler = sampler
        run()
    enabled = getattr(ctx.gpubench.benchmark, "enabled", True)
    return True, [time.monotonic() - began] if enabled else []


def _record_capacity(
    ctx: ServeContext,
    result: CapacityResult,
    ask: CapacityAsk,
    first: ServePlan,
    how: tuple[PointSizes, Mapping[int, bool], bool, float],
) -> None:
    """``capacity_users`` (the headline), the search's own time after a sweep, the
    ``capacity`` section, and a note when the answer is capped, noisy or cut by time."""
    sizes, verdicts, after_sweep, search_s = how
    users = result.max_concurrency
    spread = {
        "percentile": float(ask.percentile),
        "points": float(len(result.points)),
        "max_concurrency": float(ask.highest),
        **{f"slo_{k}": v for k, v in ask.slo_ms.items()},
    }
    recording.write_metric(ctx.gpubench, metric("capacity_users", users, spread), headline=True)
    if after_sweep:  # the entry's round timed the sweep; the search's own time
        recording.write_metric(
            ctx.gpubench,
            Metric("capacity_search_s", search_s, "s", False, {},
                   "wall time of the capacity search after the test's sweep"),
        )  # fmt: skip
    noise = result.within_noise
    info = {
        "max_concurrency": users,
        "capped": result.capped,
        "within_noise": noise,
        "upper": result.upper,
        "stopped_by": result.stopped_by,
        "time_budget_s": ask.budget_s,
        "slo_ms": ask.slo_ms,
        "percentile": ask.percentile,
        "search": [ask.lowest, ask.highest],
        "remeasure": ask.remeasure,
        "known": {f"c{c}": ok for c, ok in sorted(verdicts.items())},
        "gpus": max(int(getattr(ctx.gpubench.profile, "gpu_count", 1) or 1), 1),
        "points": [p.as_dict() for p in result.points],
    }
    record_section(ctx, "capacity", info, first, result.points)
    name = ctx.test_name
    if result.capped:
        ctx.note(
            f"{name}: capacity {users} users is the most the search tried (max_concurrency="
            f"{ask.highest}) and it met the SLO: the capacity may be higher; raise "
            "max_concurrency to find it"
        )
    if noise:
        ctx.note(
            f"{name}: capacity {users} users is within the noise at its boundary: {noise}; "
            f"more requests per point (prompts_per_user={sizes.prompts_per_user}) or "
            "remeasure= would narrow it"
        )
    if result.stopped_by == "time_budget":
        upper = f"c{result.upper} failed" if result.upper is not None else "nothing failed yet"
        n = len(result.points)
        ctx.note(
            f"{name}: capacity search stopped by time_budget_s={ask.budget_s:g} after {n} "
            f"point{'s' if n != 1 else ''}: {users} users is what passed so far, a lower bound "
            f"({upper})"
        )
