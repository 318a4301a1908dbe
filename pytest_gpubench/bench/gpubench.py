"""The generic ``gpubench`` fixture: time any workload in pytest-benchmark rounds.

``gpubench(fn, work=N, unit="samples")`` runs ``fn`` through ``benchmark.pedantic`` (fixed
rounds: GPU workloads take seconds, calibration would waste minutes), synchronising CUDA before
every clock read when CUDA is in use, and records throughput (N per second, higher is better)
and wall time per round. ``gpubench.metric(...)`` records anything else.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from pytest_gpubench import progress
from pytest_gpubench.bench.ceilings import Ceilings
from pytest_gpubench.bench.hostload import HostLoad
from pytest_gpubench.bench.telemetry import Sampler
from pytest_gpubench.bench.validity import judge_rounds
from pytest_gpubench.devices.profile import DeviceProfile
from pytest_gpubench.errors import GpubenchError, usage_errors_fail
from pytest_gpubench.metrics import bound, roofline
from pytest_gpubench.metrics.bound import Verdict
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.metrics.stats import rate_interval, spread_of, summarize
from pytest_gpubench.results.record import record_bound, record_metric, record_note
from pytest_gpubench.results.sections import read_placement, write_bound, write_telemetry_note


def cuda_synchronizer() -> Callable[[], None]:
    """``torch.cuda.synchronize`` when a CUDA context exists, else a no-op.

    Checked without importing torch: a workload that never imported it cannot have queued GPU
    work, and importing torch just to find that out would cost seconds per benchmark.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.synchronize
    return lambda: None


def _process_s() -> float:
    """CPU seconds of this process, every thread, children excluded (a server it started is
    not the client)."""
    t = os.times()
    return t.user + t.system


class GpuBench:
    """One benchmark's recorder; wraps pytest-benchmark's fixture for this test."""

    def __init__(
        self,
        benchmark: Any,
        request: pytest.FixtureRequest,
        profile: DeviceProfile,
        ceilings: Callable[[], Ceilings | None] = lambda: None,
    ) -> None:
        """``profile`` is the device judged against; ``ceilings`` measures (once per run) the
        device's copy bandwidth and matmul rate, or gives None when not asked for."""
        self.benchmark = benchmark
        self.request = request
        self.profile = profile
        self.ceilings = ceilings
        self.metrics: dict[str, Metric] = {}
        self.telemetry: dict[str, float] = {}
        self.telemetry_note = ""
        # what the bound verdict is judged from (see metrics/bound.py); workloads add theirs
        self.timed_s = 0.0  # wall seconds of the timed calls
        self.timed_calls = 0  # pytest-benchmark's fixture takes one timed call per test
        self.thread_s = 0.0  # CPU seconds the calling thread spent in them
        self.process_s = 0.0  # CPU seconds this process (all threads) spent in them
        self.data_wait_s: float | None = None  # set by a workload that waits for batches
        self.in_server = False  # set by serve_bench: the GPU work runs in a server process
        self.decode_shape: tuple[float, int] | None = None  # roofline_decode's (batch, context)
        # the telemetry sampler while a timed call runs: its ``mark()`` times a window inside
        # it (a sweep point, metrics/point.py); kept after, with every sample, for windows read
        # once the call is done
        self.sampler: Sampler | None = None

    def metric(
        self,
        name: str,
        value: float,
        unit: str,
        higher_is_better: bool,
        *,
        spread: dict[str, float] | None = None,
        headline: bool = False,
        description: str = "",
    ) -> Metric:
        """Record one number with its unit and direction (a user mistake raises clearly)."""
        m = Metric(name, float(value), unit, higher_is_better, dict(spread or {}), description)
        self.metrics[name] = m
        record_metric(self.request, self.benchmark, m, headline=headline)
        return m

    def time(
        self,
        fn: Callable[..., Any],
        *args: Any,
        rounds: int = 3,
        warmup_rounds: int = 1,
        setup: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> tuple[Any, list[float]]:
        """Run ``fn`` for ``rounds`` timed rounds after ``warmup_rounds`` untimed ones.

        Returns the last result and the per-round seconds (empty under --benchmark-disable).
        """
        self._check_call(rounds, warmup_rounds)
        sync = cuda_synchronizer()
        spans: list[tuple[float, float]] = []  # monotonic (start, end) of every call
        # CPU seconds in every call: the calling thread's, the process's (a server's client)
        cpu: list[tuple[float, float]] = []

        def target(*a: Any, **k: Any) -> Any:
            begin, begin_cpu, begin_proc = time.monotonic(), time.thread_time(), _process_s()
            result = fn(*a, **k)
            sync()  # the clock is read right after this returns
            spans.append((begin, time.monotonic()))
            cpu.append((time.thread_time() - begin_cpu, _process_s() - begin_proc))
            return result

        def before_round() -> Any:
            # untimed: pytest-benchmark calls setup outside the round's clock, so the progress
            # line (and the user's setup) never costs the measured work anything
            shown.update(1)
            out = setup() if setup is not None else None
            sync()
            return out

        sync()
        label = self.request.node.name
        with (
            progress.task(label, rounds + warmup_rounds, "rounds") as shown,
            Sampler() as sampler,
            HostLoad() as host,
        ):
            self.sampler = sampler
            result = self.benchmark.pedantic(
                target,
                args=args,
                kwargs=kwargs,
                setup=before_round,
                rounds=rounds,
                warmup_rounds=warmup_rounds,
            )
        self.timed_calls += 1
        stats = self.benchmark.stats
        times = list(stats.stats.data) if stats is not None else []
        timed = spans[-len(times) :] if times else []
        if timed:
            self.timed_s = sum(end - start for start, end in timed)
            self.thread_s, self.process_s = (sum(x) for x in zip(*cpu[-len(timed) :], strict=True))
            self.telemetry = sampler.telemetry.windows(timed)
            self.telemetry_note = sampler.telemetry.reason
            self._record_telemetry(len(timed))
            if not self.in_server:  # serve_bench judges its own (serving/validity.py)
                judge_rounds(self.request, self.benchmark, sampler, timed)
        if times and host.busy_cores is not None:
            self.metric(
                "host_busy_cores",
                host.busy_cores,
                "cores",
                False,
                description="CPU cores other processes on this host used during the rounds",
            )
        return result, times

    def _check_call(self, rounds: int, warmup_rounds: int) -> None:
        if rounds < 1 or warmup_rounds < 0:
            raise GpubenchError(
                f"rounds must be >= 1 and warmup_rounds >= 0, got {rounds}/{warmup_rounds}"
            )
        if self.timed_calls:  # pytest-benchmark's own error says only "FixtureAlreadyUsed"
            raise GpubenchError(
                f"{self.request.node.name} already made its timed call: pytest-benchmark keeps "
                "one entry per test, so each gpubench(...) / serve_bench(...) measurement needs "
                "a test of its own (parametrize it), or serve_bench.sweep for several loads "
                "(serve_bench.capacity may follow a sweep in the same test)"
            )

    def _record_telemetry(self, rounds: int) -> None:
        """Power, energy per round, utilisation and memory peaks of the timed rounds."""
        t = self.telemetry
        per_round = {
            "energy_j": ("energy_per_round_j", "J", False),
        }
        for key, (name, unit, hib) in per_round.items():
            if key in t:
                self.metric(name, t[key] / rounds, unit, hib)
        for key, unit, hib in (
            ("avg_power_w", "W", False),
            ("peak_power_w", "W", False),
            ("gpu_util_pct", "%", True),
            ("gpu_mem_peak_gib", "GiB", False),
            ("host_mem_peak_gib", "GiB", False),
        ):
            if key in t:
                self.metric(key, t[key], unit, hib)
        if self.telemetry_note:
            write_telemetry_note(self.benchmark.extra_info, self.telemetry_note)
            record_note(self.request, f"{self.telemetry_note}; host memory recorded instead")

    @usage_errors_fail("gpubench")
    def __call__(
        self,
        fn: Callable[..., Any],
        *args: Any,
        work: float,
        unit: str,
        rounds: int = 3,
        warmup_rounds: int = 1,
        setup: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Time ``fn`` and record ``<unit>_per_s`` (work per second) and ``wall_time_s``."""
        if isinstance(work, bool) or not isinstance(work, int | float) or work <= 0:
            raise GpubenchError(
                f"gpubench(work=...) must be a positive amount of work, got {work!r}"
            )
        if not unit or not unit.replace("_", "").isalnum():
            raise GpubenchError(
                f"gpubench(unit=...) must be a word such as 'samples', got {unit!r}"
            )
        result, times = self.time(
            fn, *args, rounds=rounds, warmup_rounds=warmup_rounds, setup=setup, **kwargs
        )
        if not times:
            return result
        secs = summarize(times)
        rates = summarize([work / t for t in times])
        low, high = rate_interval(work, secs)
        self.metric(
            f"{unit}_per_s",
            work / secs.mean,  # total work / total time, not the mean of per-round rates
            f"{unit}/s",
            True,
            spread={
                **spread_of(rates, ("median", "min", "max")),
                "ci95_low": low,
                "ci95_high": high,
            },
            headline=True,
        )
        self.metric(
            "wall_time_s",
            secs.mean,
            "s",
            False,
            spread={k: v for k, v in secs.as_dict().items() if k != "mean"},
            headline=True,
            description=f"seconds per round of {work:g} {unit}",
        )
        if "energy_j" in self.telemetry:
            self.metric(
                f"energy_per_{unit}_j",
                self.telemetry["energy_j"] / (work * secs.n),
                f"J/{unit}",
                False,
                headline=True,
            )
        return result

    # --- roofline and MFU -----------------------------------------------------------------

    def model_spec(self, model: str | None, quant: str | None) -> tuple[Any, str]:
        """(ModelSpec, quant) of ``model``, or of the test's ``model`` marker when None."""
        from pytest_gpubench.models.catalog import load_spec
        from pytest_gpubench.selection.markers import model_of  # parsed at collection

        if model is None:
            marked = model_of(self.request.node)
            if marked is None:
                raise GpubenchError(
                    f"{self.request.node.nodeid}: a roofline needs the model: pass model= or "
                    "mark the test with @pytest.mark.model(...)"
                )
            model, quant = marked.model, quant or marked.quant
        spec, resolved = load_spec(model)
        if quant is None:
            formats = getattr(resolved.entry, "default_formats", None) or ["bf16"]
            quant = formats[0]
        return spec, str(quant)

    def roofline_decode(
        self,
        tokens_per_s: float,
        *,
        model: str | None = None,
        quant: str | None = None,
        batch: float = 1,
        context: int = 0,
        kv_dtype: str = "bf16",
    ) -> float | None:
        """Record decode tokens/s as % of the bandwidth bound (datasheet and measured).

        ``batch`` may be fractional: a server's mean number of sequences decoding at once."""
        spec, quant = self.model_spec(model, quant)
        profile = self.profile
        if not profile.bandwidth_gbs:
            return None
        bound = roofline.decode_bound(
            spec, quant, profile.bandwidth_gbs, batch=batch, context=context, kv_dtype=kv_dtype
        )
        self.metric("roofline_bound_tok_s", bound.tokens_per_s, "tok/s", True)
        self.decode_shape = (batch, context)
        pct = 100 * tokens_per_s / bound.tokens_per_s
        self.metric(
            "roofline_pct",
            pct,
            "%",
            True,
            headline=True,
            description=f"of {profile.name}'s {profile.bandwidth_gbs:.0f} GB/s over "
            f"{bound.bytes_per_step / 1e9:.2f} GB per step (batch {batch:.3g}, context {context})",
        )
        ceilings = self.ceilings()
        if ceilings is not None:
            # The copy moves its bytes over the bus twice (read + write): that total rate is
            # what a read-only decode can reach, so it is the ceiling as it stands.
            measured = roofline.decode_bound(
                spec, quant, ceilings.copy_gbs, batch=batch, context=context, kv_dtype=kv_dtype
            )
            self.metric("measured_copy_gbs", ceilings.copy_gbs, "GB/s", True)
            self.metric(
                "roofline_measured_pct", 100 * tokens_per_s / measured.tokens_per_s, "%", True
            )
        return pct

    def mfu(
        self,
        units_per_s: float,
        flops_per_unit: float,
        *,
        dtype: str = "bf16",
    ) -> float | None:
        """Record model FLOPs utilisation against the datasheet (and the measured) peak."""
        achieved = units_per_s * flops_per_unit
        self.metric("achieved_tflops", achieved / 1e12, "TFLOP/s", True)
        value = roofline.mfu(achieved, self.profile, dtype)
        if value is None:
            return None
        self.metric("mfu_pct", 100 * value, "%", True, headline=True)
        ceilings = self.ceilings()
        if ceilings is not None and dtype in ceilings.matmul_tflops:
            peak = ceilings.matmul_tflops[dtype] * 1e12
            self.metric(f"measured_{dtype}_tflops", peak / 1e12, "TFLOP/s", True)
            self.metric("mfu_measured_pct", 100 * achieved / peak, "%", True)
        return 100 * value

    # --- the bound verdict ----------------------------------------------------------------

    def judge_bound(self) -> Verdict | None:
        """Judge and record what bounded this result (metrics/bound.py), once the test's work
        is done: placement and data-wait facts arrive after the timed rounds. None on a run
        without GPU telemetry and no offload."""
        placement = read_placement(self.benchmark.extra_info)
        offload = placement.offload if placement is not None else None
        if not self.timed_s and not offload:
            return None
        wall = self.timed_s
        thread = self.thread_s / wall if wall else None
        data = self.data_wait_s / wall if wall and self.data_wait_s is not None else None
        busy = self.metrics.get("host_busy_cores")
        stall = self.metrics.get(bound.STALL_METRIC) if self.in_server else None
        decode = self.metrics.get("roofline_pct")
        shape = self.decode_shape or (None, None)
        users = (self.benchmark.extra_info.get("serving") or {}).get("concurrency")
        verdict = bound.judge(
            bound.Facts(
                gpu_util_pct=self.telemetry.get("gpu_util_pct") if self.telemetry else None,
                span_s=wall,
                thread_busy=thread,
                data_wait_share=data,
                offload=offload,
                server=self.in_server,
                host_busy_cores=busy.value if busy else None,
                server_stall=stall.value if stall else None,
                decode_pct=decode.value if decode else None,
                decode_batch=shape[0],
                decode_context=shape[1],
                users=users if self.in_server else None,
            )
        )
        if verdict is None:
            return None
        if thread is not None:
            self.metric(
                "host_thread_busy_pct",
                100 * thread,
                "%",
                False,
                description="CPU time of the thread that ran the timed work over its wall time",
            )
        if data is not None:
            self.metric(
                "data_wait_pct",
                100 * data,
                "%",
                False,
                description="share of the timed work spent waiting for the next batch",
            )
        write_bound(self.benchmark.extra_info, verdict)
        record_bound(self.request, verdict)
        if verdict.bound not in ("gpu", "offload"):  # an offload has its PlacementWarning
            # attributed to the benchmark's own line, not to this module
            node = self.request.node
            line = node.reportinfo()[1]
            warnings.warn_explicit(
                BoundWarning(verdict.warning(node.nodeid)),
                BoundWarning,
                filename=str(node.path),
                lineno=(line or 0) + 1,
            )
        return verdict


class BoundWarning(UserWarning):
    """A GPU result bounded by something other than the GPU (see metrics/bound.py)."""
