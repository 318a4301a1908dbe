"""Baseline documents for the chart and page tests: values with their stored intervals."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest


def baseline_doc(
    profile: str,
    kind: str,
    results: dict[str, dict[str, tuple]],
    skipped: dict | None = None,
    source: str = "",
) -> dict:
    """A schema-1 document; a metric is (value, unit, higher_is_better[, ci95_low, ci95_high])."""

    def metric(spec: tuple) -> dict:
        value, unit, higher = spec[:3]
        spread = {}
        if len(spec) == 5:
            spread = {"rounds": 5, "ci95_low": spec[3], "ci95_high": spec[4]}
        return {"value": value, "unit": unit, "higher_is_better": higher, "spread": spread}

    return {
        "machine_info": {},
        "commit_info": {},
        "datetime": "2026-11-23T12:00:00+00:00",
        "version": "5.3.1",
        "benchmarks": [
            {
                "name": key.split("/")[-1],
                "fullname": key,
                "extra_info": {
                    "metrics": {name: metric(spec) for name, spec in metrics.items()},
                    "gpubench": {"key": key, **({"source": source} if source else {})},
                },
            }
            for key, metrics in results.items()
        ],
        "gpubench": {
            "schema": 1,
            "kind": kind,
            "device": {"profile": profile, "gpu": profile.upper(), "driver": "580.1"},
            "skipped": skipped or {},
        },
    }


@pytest.fixture
def write_baseline(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, *args, **kwargs) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(baseline_doc(*args, **kwargs)))
        return path

    return write
