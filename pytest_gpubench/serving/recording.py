"""Every ``extra_info`` section and metric that serving writes, through one module.

What a serving test records (``extra_info["serving"]``, ``["requests"]``, ``["decode_batch"]``,
``["sweep"]``, ``["capacity"]``, ``["placement"]``, ``["validity"]`` and the metrics) is
written here only, each section through its typed writer in ``results/sections.py`` (the one
owner of their shapes, which are the stored file format). The placement section is written
by serving/placement.py's ``record_placement``, which this module calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.metrics.validity import Validity
from pytest_gpubench.results import sections
from pytest_gpubench.results.record import record_invalid, record_note
from pytest_gpubench.serving.placement import record_placement

#: the metrics a plain serve_bench entry shows as its headline
HEADLINE = ("output_tok_s", "ttft_ms", "tpot_ms")


def write_metric(gpubench: Any, m: Metric, *, headline: bool = False) -> None:
    """One metric with its unit, direction, spread and description."""
    gpubench.metric(
        m.name,
        m.value,
        m.unit,
        m.higher_is_better,
        spread=m.spread,
        headline=headline,
        description=m.description,
    )


def write_metrics(
    gpubench: Any, metrics: Mapping[str, Metric], headline: Sequence[str] = HEADLINE
) -> None:
    """Every metric of ``metrics``; those named in ``headline`` show in the summary."""
    for name, m in metrics.items():
        write_metric(gpubench, m, headline=name in headline)


def write_serving(gpubench: Any, info: Mapping[str, Any]) -> None:
    """``extra_info["serving"]``: the workload, the load and how the run ended."""
    sections.write_serving(gpubench.benchmark.extra_info, info)


def write_requests(gpubench: Any, rows: list[dict[str, Any]]) -> None:
    """``extra_info["requests"]``: one row per measured request."""
    sections.write_requests(gpubench.benchmark.extra_info, rows)


def write_decode_batch(
    gpubench: Any, *, mean_batch: float, decode_tok_s: float, context: float, decoding_s: float
) -> None:
    """``extra_info["decode_batch"]``: the batch the server decoded at (serving/decode_batch)."""
    batch = sections.DecodeBatch(mean_batch, decode_tok_s, context, decoding_s)  # type: ignore[arg-type]
    sections.write_decode_batch(gpubench.benchmark.extra_info, batch)


def write_points_section(
    gpubench: Any, key: str, info: Mapping[str, Any], serving: Mapping[str, Any]
) -> None:
    """``extra_info[key]`` (``"sweep"`` or ``"capacity"``) and the entry's ``"serving"``
    section: the first point's settings without those each point has of its own."""
    extra = gpubench.benchmark.extra_info
    sections.write_sweep_serving(extra, serving)
    write = {sections.SWEEP: sections.write_sweep, sections.CAPACITY: sections.write_capacity}
    write[key](extra, info)


def write_placement(gpubench: Any, request: Any, server: Any, engine: Any) -> None:
    """``extra_info["placement"]``: where the server put the model (serving/placement.py
    reads the log and writes the section; a note and a warning when offloaded)."""
    record_placement(gpubench, request, server, engine)


def write_note(request: Any, message: str) -> None:
    """A line for the run's summary (``results.record.record_note``)."""
    record_note(request, message)


def write_validity(gpubench: Any, request: Any, validity: Validity) -> None:
    """``extra_info["validity"]``, and the reasons for the results table when invalid."""
    sections.write_validity(gpubench.benchmark.extra_info, validity)
    if not validity.valid:
        record_invalid(request, "; ".join(validity.reasons))


def read_validity(gpubench: Any) -> Validity | None:
    """The verdict this test recorded so far (a capacity search after a sweep adds to it)."""
    return sections.read_validity(gpubench.benchmark.extra_info)
