"""A run as a baseline document, built through pytest-benchmark's own JSON hooks."""

from __future__ import annotations

import copy
import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from pytest_gpubench.devices.select import SelectedDevice
from pytest_gpubench.results.baseline import SCHEMA_VERSION
from pytest_gpubench.results.environment import environment
from pytest_gpubench.results.locations import measured_gpu
from pytest_gpubench.results.sections import extra_of, write_meta
from pytest_gpubench.selection.fit import Verdict


def has_data(bench: Any) -> bool:
    """Whether a pytest-benchmark result holds any round (an interrupted one holds none, and
    pytest-benchmark's JSON writer fails on it)."""
    stats = getattr(bench, "stats", None)
    return bool(getattr(stats, "data", None))


def drop_empty(config: pytest.Config) -> list[str]:
    """Remove results without a single round from pytest-benchmark's session, so its own
    ``--benchmark-json``/``--benchmark-save`` and our baseline save survive an interrupted
    benchmark; returns the node ids dropped."""
    session = getattr(config, "_benchmarksession", None)
    if session is None:
        return []
    empty = [b for b in session.benchmarks if not has_data(b)]
    session.benchmarks[:] = [b for b in session.benchmarks if has_data(b)]
    return [b.fullname for b in empty]


def document(
    config: pytest.Config,
    engines: Mapping[str, str],
    device: SelectedDevice,
    verdicts: dict[str, Verdict],
    keep: Callable[[str], bool] = lambda nodeid: True,
    shipped: Sequence[dict[str, Any]] = (),
) -> dict[str, Any] | None:
    """This run as a baseline document, built through pytest-benchmark's own JSON hooks;
    ``engines`` are the versions of the servers that ran, ``keep`` which tests' results go
    in (a baseline takes only those that passed), ``shipped`` the results xdist workers sent
    as JSON (results/workers.py)."""
    session = getattr(config, "_benchmarksession", None)  # pytest-benchmark's per-run state
    if session is None:
        return None
    benchmarks = [b for b in session.benchmarks if has_data(b) and keep(b.fullname)]
    from_workers = [copy.deepcopy(b) for b in shipped if keep(b["fullname"])]
    if not benchmarks and not from_workers:
        return None
    hook = config.hook
    machine_info = hook.pytest_benchmark_generate_machine_info(config=config)
    hook.pytest_benchmark_update_machine_info(config=config, machine_info=machine_info)
    commit_info = hook.pytest_benchmark_generate_commit_info(config=config)
    hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
    doc = hook.pytest_benchmark_generate_json(
        config=config,
        benchmarks=benchmarks,
        include_data=False,
        machine_info=machine_info,
        commit_info=commit_info,
    )
    doc["benchmarks"] += from_workers
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    for bench in doc["benchmarks"]:
        write_meta(extra_of(bench), bench["fullname"], now)
    det = device.detection
    env = environment(engines)
    env["commit"] = commit_info.get("id", "")
    doc["gpubench"] = {
        "schema": SCHEMA_VERSION,
        "kind": "measured",
        "device": {
            "profile": device.name,
            "gpu": measured_gpu(device),
            "gpus": [g.name for g in det.gpus],
            "driver": det.driver,
            "cuda": det.cuda,
        },
        "environment": env,
        "skipped": {
            v.nodeid: {
                "reason": v.reason,
                "did_not_fit": v.did_not_fit,
                "need_gib": v.need.gib if v.need else None,
                "available_gib": v.available_gib,
            }
            for v in verdicts.values()
            if not v.runs
        },
    }
    return doc
