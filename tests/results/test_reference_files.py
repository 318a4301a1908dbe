"""The published reference figures shipped in baselines/reference/ are sourced and valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_gpubench.devices import load_profiles
from pytest_gpubench.results.baseline import load

REFERENCE = Path(__file__).resolve().parents[2] / "baselines" / "reference"
FILES = sorted(REFERENCE.glob("*.json"))


def test_reference_files_exist_for_the_seed_devices() -> None:
    names = {p.stem for p in FILES}
    assert {"spark", "rtx4090", "rtx4090+rtx5070ti", "jetson-thor", "mac-mini-m4-pro"} <= names


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_figure_is_published_with_source_and_conditions(path: Path) -> None:
    ref = load(path)  # validates the schema, units and directions
    assert ref.kind == "published"
    assert ref.profile == path.stem and ref.profile in load_profiles()
    assert ref.entries, f"{path.name} has no figures"
    for key, entry in ref.entries.items():
        assert key.startswith("published/"), key  # never collides with a measured benchmark
        assert entry.source.strip(), f"{path.name}: {key} has no source"
        assert entry.date, f"{path.name}: {key} has no date"
        assert entry.conditions.get("engine") or entry.conditions.get("workload"), key
        assert entry.metrics, key
    for key, skip in ref.skipped.items():
        assert skip.get("reason") and skip.get("source"), f"{path.name}: skipped {key}"


def test_peaks_are_never_stored_as_means() -> None:
    """The seed repository's vLLM CSVs stored the peak under the mean's name (230 vs 54.55)."""
    spark = load(REFERENCE / "spark.json")
    entry = spark.entries["published/seed-gpu-benchmarking/vllm/gpt-oss-20b/random-1000-300-c10"]
    assert entry.metrics["output_tok_s"].value == pytest.approx(54.55)
    assert entry.metrics["peak_output_tok_s"].value == pytest.approx(230.0)
