"""``serve_bench``'s arguments, checked in one place before anything is built or sent.

Each problem is one ``GpubenchError`` naming the argument, what it got and what to pass
instead; ``errors.usage_errors_fail`` turns it into a failed test with that one line (no traceback
into the plugin), as ``llm_server`` does.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_gpubench.errors import GpubenchError


def _got(value: Any) -> str:
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return f"{value!r} (a string)"
        return f"{value!r} (a string; pass the number without quotes)"
    return repr(value)


def whole(name: str, value: Any, low: int, *, none: str | None = None) -> int | None:
    """A whole number >= ``low`` (numpy integers too); None only where ``none`` says what it
    means."""
    if value is None and none is not None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        alt = f", or None ({none})" if none is not None else ""
        raise GpubenchError(f"{name} must be a whole number >= {low}{alt}, got {_got(value)}")
    return int(value)


def real(
    name: str,
    value: Any,
    *,
    low: float,
    open_low: bool = True,
    high: float | None = None,
    open_high: bool = False,
    allow_inf: bool = False,
    none: str | None = None,
    hint: str = "",
) -> float | None:
    """A number in the given range (finite unless ``allow_inf``); None where ``none`` allows."""
    if value is None and none is not None:
        return None
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if ok:
        v = float(value)
        ok = not math.isnan(v) and (allow_inf or math.isfinite(v))
        ok = ok and (v > low if open_low else v >= low)
        if high is not None:
            ok = ok and (v < high if open_high else v <= high)
    if not ok:
        lo = f"> {low:g}" if open_low else f">= {low:g}"
        rng = lo if high is None else f"{lo} and {'<' if open_high else '<='} {high:g}"
        alt = f", or None ({none})" if none is not None else ""
        raise GpubenchError(
            f"{name} must be a number {rng}{alt}, got {_got(value)}" + (f"; {hint}" if hint else "")
        )
    return float(value)


def mapping(name: str, value: Any, what: str) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise GpubenchError(f"{name} must be a dict of {what}, got {_got(value)}")


def check_serve(args: Mapping[str, Any]) -> None:
    """The argument types and ranges of one ``serve_bench(...)`` call."""
    duration = real("duration_s", args["duration_s"], low=0, none="send by count: num_prompts")
    whole("num_prompts", args["num_prompts"], 1, none="with duration_s")
    if args["num_prompts"] is None and duration is None:
        raise GpubenchError("give num_prompts (a number of requests) or duration_s")
    whole("concurrency", args["concurrency"], 1, none="no cap")
    real(
        "request_rate",
        args["request_rate"],
        low=0,
        allow_inf=True,
        hint="requests per second, or math.inf to send as fast as the concurrency allows",
    )
    whole("input_len", args["input_len"], 1)
    whole("output_len", args["output_len"], 1)
    whole("prefix_len", args["prefix_len"], 0)
    whole("images", args["images"], 0)
    whole("warmups", args["warmups"], 0)
    whole("rounds", args["rounds"], 1)
    whole("max_requests", args["max_requests"], 1)
    whole("seed", args["seed"], 0)
    real("range_ratio", args["range_ratio"], low=0, open_low=False, high=1, open_high=True)
    real("burstiness", args["burstiness"], low=0, hint="1 is Poisson, below 1 burstier")
    precision = args["precision"]
    if precision is not None and (
        isinstance(precision, bool)
        or not isinstance(precision, numbers.Real)
        or not 0 < precision < 1
    ):
        raise GpubenchError(f"precision must be a fraction such as 0.02, got {_got(precision)}")
    check_error_rate(args["max_error_rate"])
    check_timeouts(args["timeout_s"], args["idle_timeout_s"])
    mapping("extra_body", args["extra_body"], "extra request fields")
    mapping("image_buckets", args["image_buckets"], "(height, width) -> weight")
    slo = args["slo"]
    mapping("slo", slo, "metric -> limit in ms")
    for key, limit in (slo or {}).items():
        real(f"slo[{key!r}]", limit, low=0, hint="a limit in milliseconds")
    check_data(args)


def _path(name: str, value: Any, what: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise GpubenchError(f"{name} must be a path ({what}), got {_got(value)}")
    p = Path(value).expanduser()
    if not p.exists():
        raise GpubenchError(f"{name}: {p} does not exist; pass {what}")
    return p


def check_data(args: Mapping[str, Any]) -> None:
    """``dataset``, ``multi_turn`` and ``trace_file`` (what is in the files is checked when they
    are read, still before anything is sent: serving/datasets.py)."""
    dataset = _path(
        "dataset",
        args.get("dataset"),
        "a ShareGPT-format .json file, a folder saved with datasets' save_to_disk, or a "
        ".parquet / .jsonl / .csv file",
    )
    columns = args.get("dataset_columns")
    mapping("dataset_columns", columns, "role -> column name, e.g. {'prompt': 'q', 'reply': 'a'}")
    for key, col in (columns or {}).items():
        if not isinstance(col, str):
            raise GpubenchError(f"dataset_columns[{key!r}] must be a column name, got {_got(col)}")
    split = args.get("dataset_split")
    if split is not None and not isinstance(split, str):
        raise GpubenchError(f"dataset_split must be a split name ('train'), got {_got(split)}")
    multi = args.get("multi_turn", False)
    if not isinstance(multi, bool):
        raise GpubenchError(f"multi_turn must be True or False, got {_got(multi)}")
    whole("max_turns", args.get("max_turns"), 1, none="every turn")
    if multi and dataset is None:
        raise GpubenchError("multi_turn needs dataset= (a file of conversations)")
    trace = _path(
        "trace_file",
        args.get("trace_file"),
        "a Mooncake-format .jsonl or a BurstGPT-format .csv trace",
    )
    real(
        "trace_time_scale",
        args.get("trace_time_scale", 1.0),
        low=0,
        hint="arrival times are multiplied by it (0.5 replays the trace twice as fast)",
    )
    if trace is not None:
        rate = args.get("request_rate", math.inf)
        if isinstance(rate, numbers.Real) and not math.isinf(rate):
            raise GpubenchError(
                "trace_file gives every request's arrival time; drop request_rate (replay "
                "faster or slower with trace_time_scale)"
            )
        if dataset is not None:
            raise GpubenchError("give dataset or trace_file, not both")


def check_error_rate(value: Any) -> None:
    real("max_error_rate", value, low=0, open_low=False, high=1,
         none="the run's --gpubench-max-error-rate")  # fmt: skip


def check_timeouts(timeout_s: Any, idle_timeout_s: Any) -> None:
    real("timeout_s", timeout_s, low=0, hint="seconds a whole request may take (default 3600)")
    real(
        "idle_timeout_s",
        idle_timeout_s,
        low=0,
        none="no idle limit",
        hint="seconds a started stream may send nothing (default 120)",
    )


def check_depth_sweep(args: Mapping[str, Any]) -> None:
    depths = args["depths"]
    if isinstance(depths, str | bytes) or not isinstance(depths, Sequence) or not depths:
        raise GpubenchError(f"depths must be a list of token counts, got {_got(depths)}")
    for d in depths:
        whole("depths[...]", d, 0)
    whole("output_len", args["output_len"], 1)
    whole("requests_per_depth", args["requests_per_depth"], 1)
    whole("seed", args["seed"], 0)
    check_error_rate(args["max_error_rate"])
    check_timeouts(args["timeout_s"], args["idle_timeout_s"])
