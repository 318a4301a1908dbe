"""The one Prometheus text parser, on ``prometheus_client``'s own.

Every engine's ``/metrics`` is read here: ``parse`` keeps each sample under its name and labels
(``vllm:prompt_tokens_total{model_name="m"}``), ``total`` sums a metric over its labels (the
number the serving metrics and server counters want). prometheus_client handles what a regex
did not: escaped quotes and ``}`` inside label values, ``NaN``/``+Inf``, timestamps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _key(name: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[_key(sample.name, sample.labels)] = float(sample.value)
    return out


def parse(text: str) -> dict[str, float]:
    """Prometheus text exposition -> ``{"name{labels}": value}``.

    A scrape with one malformed line (a proxy's banner, a truncated last line) still gives
    every other sample: the text is parsed whole, and line by line only when that fails.
    """
    try:
        return _samples(text)
    except ValueError:
        pass
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.update(_samples(line + "\n"))
        except ValueError:
            continue
    return out


def total(samples: Mapping[str, float], name: str) -> float | None:
    """Sum of every finite labelled sample of ``name`` (``vllm:prompt_tokens_total`` over
    models); None when the scrape has no such metric."""
    values = [v for k, v in samples.items() if k == name or k.startswith(name + "{")]
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) if values else None
