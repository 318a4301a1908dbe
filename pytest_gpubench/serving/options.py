"""``serve_bench``'s options as values: ``Load``, ``Limits``, ``Requests`` and ``Client``.

Each keyword of ``serve_bench(...)`` is a field of exactly one of these, with its default, and
is spelled nowhere else: the facade's signature, the checks (``arguments.check_serve`` reads
the flat mapping), the sweep's per-point arguments and the unknown-keyword message are all
derived from these fields. ``ServeOptions.from_keywords`` builds them once per call.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.serving.arguments import check_serve
from pytest_gpubench.serving.client import IDLE_TIMEOUT_S
from pytest_gpubench.serving.requests import Workload
from pytest_gpubench.serving.schedule import LoadSpec
from pytest_gpubench.serving.tokens import Tokenizer


@dataclass(frozen=True)
class Load:
    """How the requests are sent: how many, how many at once, how fast, for how long."""

    num_prompts: int | None = 100
    concurrency: int | None = 1
    request_rate: float = math.inf
    arrival: str = "poisson"  # a registered load shape (serving/registry.py)
    burstiness: float = 1.0
    duration_s: float | None = None
    warmups: int = 0
    rounds: int = 1
    precision: float | None = None  # adaptive: stop at this relative 95% half-width
    max_requests: int = 1000  # the adaptive (and duration) cap

    def spec(self, seed: int) -> LoadSpec:
        """The schedule of one run (``serving/schedule.py``)."""
        return LoadSpec(
            concurrency=self.concurrency,
            rate=float(self.request_rate),
            arrival=self.arrival,  # type: ignore[arg-type]
            burstiness=self.burstiness,
            num_requests=None if self.duration_s is not None else self.num_prompts,
            duration_s=self.duration_s,
            warmups=self.warmups,
            seed=seed,
        )


@dataclass(frozen=True)
class Limits:
    """When a request, a run or a test counts as failed."""

    timeout_s: float = 3600.0  # a whole request
    idle_timeout_s: float | None = IDLE_TIMEOUT_S  # a started stream that sends nothing
    slo: Mapping[str, float] | None = None  # metric -> limit in ms (goodput, capacity)
    max_error_rate: float | None = None  # None: the run's --gpubench-max-error-rate


@dataclass(frozen=True)
class Requests:
    """What is sent (everything but how fast): the request source and its shape."""

    input_len: int = 1000
    output_len: int = 300
    range_ratio: float = 0.0
    prefix_len: int = 0
    endpoint: str | None = None  # None: chat for images, presets and datasets
    images: int = 0
    image_buckets: Mapping[tuple[int, int], float] | None = None
    image_format: str = "jpeg"
    prompts_file: str | Path | None = None
    preset: str | None = None
    ignore_eos: bool | None = None  # None: on for random text, off for fixed text
    seed: int = 42
    extra_body: Mapping[str, Any] | None = None
    dataset: str | Path | None = None
    dataset_columns: Mapping[str, str] | None = None
    dataset_split: str | None = None
    multi_turn: bool = False
    max_turns: int | None = None
    trace_file: str | Path | None = None
    trace_time_scale: float = 1.0
    source: Any = None  # a registered request source by name, or the source itself

    def workload(self) -> Workload:
        """The request mix, with the endpoint and ignore_eos decided."""
        own = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("extra_body", "source", "endpoint", "ignore_eos"):
            own.pop(name)
        own["trace_time_scale"] = float(self.trace_time_scale)
        fixed_text = self.preset is not None or self.prompts_file is not None
        chat = self.images or self.preset or self.dataset
        return Workload(
            **own,
            endpoint=self.endpoint or ("chat" if chat else "completions"),  # type: ignore[arg-type]
            ignore_eos=(not fixed_text) if self.ignore_eos is None else self.ignore_eos,
            extra=dict(self.extra_body or {}),
        )


@dataclass(frozen=True)
class Client:
    """How requests travel: the tokenizer that sizes prompts and the HTTP transport."""

    tokenizer: Tokenizer | str | Path | None = None  # None: the server's /tokenize
    transport: str = "aiohttp"


PARTS: tuple[type, ...] = (Load, Limits, Requests, Client)


def defaults() -> dict[str, Any]:
    """Every ``serve_bench`` keyword with its default."""
    return {f.name: f.default for part in PARTS for f in fields(part)}


def unknown_keywords(given: Iterable[str], valid: Iterable[str], call: str) -> None:
    """One line naming each keyword ``call`` does not take and the nearest valid names."""
    valid = list(valid)
    bad = [name for name in given if name not in valid]
    if not bad:
        return
    parts = []
    for name in bad:
        close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    raise GpubenchError(
        f"{call} got unknown keyword{'s' if len(bad) > 1 else ''} {', '.join(parts)}; "
        f"its keywords are {', '.join(sorted(valid))}"
    )


@dataclass(frozen=True)
class ServeOptions:
    """One ``serve_bench`` call's options, checked."""

    load: Load
    limits: Limits
    requests: Requests
    client: Client

    @classmethod
    def from_keywords(cls, given: Mapping[str, Any], call: str = "serve_bench") -> ServeOptions:
        """The options of ``given`` (keyword -> value) over the defaults; an unknown keyword
        or a bad value is one ``GpubenchError``."""
        flat = defaults()
        given = expand_values(given)
        unknown_keywords(given, flat, call)
        flat.update(given)
        check_serve(flat)
        return cls(*(part(**{f.name: flat[f.name] for f in fields(part)}) for part in PARTS))

    def flat(self) -> dict[str, Any]:
        """Keyword -> value, as a ``serve_bench`` call would give them."""
        return {
            f.name: getattr(part, f.name)
            for part in (self.load, self.limits, self.requests, self.client)
            for f in fields(part)
        }


#: the keywords that take a whole value: ``serve_bench(server, load=Load(...), ...)``
VALUE_KEYWORDS: dict[str, type] = {"load": Load, "limits": Limits, "requests": Requests,
                                   "client": Client}  # fmt: skip


def expand_values(given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` with each value keyword (``load=Load(...)``) spread into the fields it sets
    (those left at their default are not); a field set both ways is a usage error (which would
    win is not obvious)."""
    out = {k: v for k, v in given.items() if k not in VALUE_KEYWORDS}
    for key, kind in VALUE_KEYWORDS.items():
        if key not in given:
            continue
        value = given[key]
        if not isinstance(value, kind):
            raise GpubenchError(
                f"{key} must be a {kind.__name__}(...) (pytest_gpubench.serving.options), "
                f"got {value!r}"
            )
        for f in fields(kind):
            own = getattr(value, f.name)
            if own is f.default or own == f.default:
                continue  # left at its default: the keyword (or the default) stands
            if f.name in out:
                raise GpubenchError(
                    f"{f.name} is given twice: as a keyword and in {key}={kind.__name__}(...)"
                )
            out[f.name] = own
    return out


def signature(server_first: bool = True) -> inspect.Signature:
    """The facade's signature, derived from the fields (for ``help()`` and editors)."""
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    if server_first:
        params.append(inspect.Parameter("server", inspect.Parameter.POSITIONAL_OR_KEYWORD))
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=value)
        for name, value in defaults().items()
    ]
    return inspect.Signature(params)
