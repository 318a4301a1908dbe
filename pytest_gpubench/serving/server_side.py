"""Server-side numbers, recorded beside the client's: the engine's Prometheus endpoint.

Counters and histogram sums are read before and after the measured requests; the difference
is what the server saw of exactly this run. Which endpoint and which metric names is the
engine's knowledge (``Engine.metrics_path``, ``server_histograms``, ``counter_names``); a
server of unknown engine is read with every registered engine's names, and one without an
endpoint gives nothing. (Per-response ``timings`` are read by the client with each response.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import httpx

from pytest_gpubench.engines import Engine, prometheus
from pytest_gpubench.engines.registry import engines as registered


def _views(engine: Engine | None) -> Sequence[Engine]:
    return [engine] if engine is not None else registered()


def scrape(
    base_url: str,
    engine: Engine | None = None,
    timeout_s: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """Every sample of the engine's metrics endpoint (``/metrics`` when unknown); {} when it
    has none or the scrape fails."""
    paths = [e.metrics_path() for e in _views(engine)]
    path = next((p for p in paths if p), None)
    if path is None:
        return {}
    try:
        resp = httpx.get(base_url.rstrip("/") + path, timeout=timeout_s, headers=headers)
    except httpx.HTTPError:
        return {}
    if resp.status_code != 200:
        return {}
    return prometheus.parse(resp.text)


def _mean_ms(before: Mapping[str, float], after: Mapping[str, float], hist: str) -> float | None:
    def delta(name: str) -> float:
        return (prometheus.total(after, name) or 0.0) - (prometheus.total(before, name) or 0.0)

    n = delta(hist + "_count")
    return delta(hist + "_sum") / n * 1000.0 if n > 0 else None


def server_deltas(
    before: Mapping[str, float], after: Mapping[str, float], engine: Engine | None = None
) -> dict[str, float]:
    """Serving-metric names (see serving/metrics.py) -> values for one run."""
    out: dict[str, float] = {}
    for view in _views(engine):
        for name, hists in view.server_histograms.items():
            if name in out:
                continue
            for hist in hists:
                value = _mean_ms(before, after, hist)
                if value is not None:
                    out[name] = value
                    break
        counter = view.counter_names.get("generation_tokens")
        if "server_output_tokens" not in out and counter:
            now = prometheus.total(after, counter)
            if now is not None:
                out["server_output_tokens"] = now - (prometheus.total(before, counter) or 0.0)
    return out
