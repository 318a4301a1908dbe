"""Server-side numbers, recorded beside the client's: the engine's Prometheus ``/metrics``.

Counters and histogram sums are read before and after the measured requests; the difference
is what the server saw of exactly this run. Names cover vLLM (``vllm:``) and llama.cpp
(``llamacpp:``, needs ``--metrics``); a server without ``/metrics`` gives nothing.
(llama.cpp's per-response ``timings`` are parsed by the client with each response.)
"""

from __future__ import annotations

import math
import re

import httpx

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([^\s]+)")


def parse_prometheus(text: str) -> dict[str, float]:
    """Sum of every sample per metric name (labels summed away); comments skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        if math.isfinite(value):
            out[m.group(1)] = out.get(m.group(1), 0.0) + value
    return out


def scrape(base_url: str, timeout_s: float = 5.0) -> dict[str, float]:
    try:
        resp = httpx.get(base_url.rstrip("/") + "/metrics", timeout=timeout_s)
    except httpx.HTTPError:
        return {}
    if resp.status_code != 200:
        return {}
    return parse_prometheus(resp.text)


def _mean_ms(before: dict[str, float], after: dict[str, float], hist: str) -> float | None:
    n = after.get(hist + "_count", 0.0) - before.get(hist + "_count", 0.0)
    s = after.get(hist + "_sum", 0.0) - before.get(hist + "_sum", 0.0)
    return s / n * 1000.0 if n > 0 else None


def server_deltas(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Serving-metric names (see metrics/serving.py) -> values for one run."""
    out: dict[str, float] = {}
    for name, hists in (
        ("server_ttft_ms", ("vllm:time_to_first_token_seconds",)),
        (
            "server_itl_ms",
            ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
        ),
        ("server_e2el_ms", ("vllm:e2e_request_latency_seconds",)),
        ("server_queue_ms", ("vllm:request_queue_time_seconds",)),
    ):
        for hist in hists:
            value = _mean_ms(before, after, hist)
            if value is not None:
                out[name] = value
                break
    for counter in ("vllm:generation_tokens_total", "llamacpp:tokens_predicted_total"):
        if counter in after:
            out["server_output_tokens"] = after[counter] - before.get(counter, 0.0)
            break
    return out
