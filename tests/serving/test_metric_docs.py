"""The documentation's serving metric table is the one generated from the definitions in code."""

from __future__ import annotations

from pathlib import Path

from pytest_gpubench.serving.metrics import SERVING_METRICS, definition_table

METRICS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "metrics.md"


def test_readme_metric_table_matches_the_code() -> None:
    text = METRICS_PAGE.read_text()
    for line in definition_table():
        assert line in text, f"{METRICS_PAGE.name} is missing or has a stale row: {line}"


def test_every_metric_has_a_unit_and_definition() -> None:
    for name, d in SERVING_METRICS.items():
        assert d.unit and d.definition, name
