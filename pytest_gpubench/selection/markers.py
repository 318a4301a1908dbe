"""The plugin's markers: their help text, and parsing a test's markers into what it requires.

Every marker is checked here at collection, so a malformed one (``needs_vram("lots")``, an
unknown device) fails with the test's id and the problem instead of misbehaving later. What a
test's markers say is parsed once per test and kept on the item (pytest's stash): the fixtures
that need the model, the server flags or the tolerances later read it with ``model_marker`` /
``model_of`` / ``tolerances`` instead of reading the raw marker again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_gpubench.devices.profile import ProfileSet, unknown_device_message
from pytest_gpubench.engines.base import PLACEMENT_KEYS, SPLIT_OPTIONS
from pytest_gpubench.engines.registry import is_known, memory_for
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.models import formats, kvcache, split
from pytest_gpubench.selection.estimate import ModelRequest, parse_context

# the help texts live apart so that registering them costs a run nothing; importable here too
from pytest_gpubench.selection.marker_help import (  # noqa: F401
    CATEGORIES,
    GENERIC_MARKERS,
    marker_lines,
)


@dataclass(frozen=True)
class Requirements:
    """What one test asks of the device, read from its markers."""

    devices: tuple[str, ...] = ()  # empty: any device
    vram_gib: float | None = None
    per_gpu: bool = False
    categories: tuple[str, ...] = ()
    model: ModelRequest | None = None
    gpus: int | None = None


class MarkerError(GpubenchError):
    """A malformed marker; the message names the test."""


@dataclass(frozen=True)
class ModelMarker:
    """The test's ``model`` marker, parsed: the fit estimate's request (parametrized values
    filled in) and the marker's own keywords that reach a server's flags, as written."""

    request: ModelRequest
    #: context, parallel and split keywords the marker sets (llm_server passes them on)
    server_options: dict[str, Any] = field(default_factory=dict)


#: each item's parsed markers, kept from the first parse (collection) for every later reader
REQUIREMENTS = pytest.StashKey[Requirements]()
MODEL = pytest.StashKey[ModelMarker | None]()
TOLERANCES = pytest.StashKey[dict[str, float]]()

#: the model marker's keywords a server takes as flags (engines/base.py spells them)
SERVER_KEYWORDS = ("context", *PLACEMENT_KEYS, *SPLIT_OPTIONS)


def _fail(item: pytest.Item, marker: str, problem: str) -> MarkerError:
    return MarkerError(f"{item.nodeid}: marker @pytest.mark.{marker}: {problem}")


def _vram(item: pytest.Item, mark: pytest.Mark) -> tuple[float, bool]:
    if len(mark.args) != 1 or set(mark.kwargs) - {"per_gpu"}:
        raise _fail(
            item,
            "needs_vram",
            f"expected needs_vram(gib) or needs_vram(gib, per_gpu=True), got args={mark.args!r} "
            f"kwargs={mark.kwargs!r}",
        )
    value = mark.args[0]
    # not (value > 0) also rejects NaN, which compares false with everything; inf never fits
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not value > 0
        or not math.isfinite(value)
    ):
        raise _fail(
            item,
            "needs_vram",
            f"the memory need must be a positive number of GiB, got {value!r}",
        )
    return float(value), bool(mark.kwargs.get("per_gpu", False))


_PARALLEL = ("tensor_parallel", "pipeline_parallel", "data_parallel")
_MODEL_KWARGS = {
    "quant",
    "context",
    "concurrency",
    "engine",
    "kv_dtype",
    *_PARALLEL,
    "split_mode",
    "tensor_split",
}
#: the engines' own spellings (vLLM's --tensor-parallel-size ...) name the same thing
_ALIASES = {f"{name}_size": name for name in _PARALLEL}


def _model(item: pytest.Item, mark: pytest.Mark) -> ModelRequest:
    """Check the marker's arguments now, so a typo fails collection with the test's id."""
    unknown = set(mark.kwargs) - _MODEL_KWARGS - set(_ALIASES)
    if len(mark.args) != 1 or unknown:
        raise _fail(
            item,
            "model",
            "expected model('org/name', quant=..., context=..., concurrency=..., engine=..., "
            "kv_dtype=..., tensor_parallel=..., pipeline_parallel=..., data_parallel=..., "
            f"split_mode=..., tensor_split=...), got args={mark.args!r}"
            + (f" and unknown keyword(s) {', '.join(sorted(unknown))}" if unknown else ""),
        )
    kw = {_ALIASES.get(k, k): v for k, v in mark.kwargs.items()}
    # Parametrized tests: a parameter named like a marker keyword fills it in when the marker
    # leaves it out, so @parametrize("engine", ["vllm", "llamacpp"]) judges each engine.
    params = getattr(getattr(item, "callspec", None), "params", {})
    for key in _MODEL_KWARGS - set(kw):
        if key in params and params[key] is not None:
            value = params[key]
            if key == "engine" and isinstance(value, str) and not is_known(value):
                continue  # an engine the estimator does not model: keep the default
            kw[key] = value
    try:
        model = mark.args[0]
        if not isinstance(model, str) or not model.strip():
            raise GpubenchError(f"the model id must be a non-empty string, got {model!r}")
        for key in ("quant", "engine", "kv_dtype"):
            if kw.get(key) is not None and not isinstance(kw[key], str):
                raise GpubenchError(f"{key} must be a string, got {kw[key]!r}")
        if kw.get("quant"):
            formats.get_format(kw["quant"])
        if kw.get("engine"):
            memory_for(kw["engine"])
        if kw.get("kv_dtype"):
            kvcache.kv_bytes_per_element(kw["kv_dtype"])
        context = parse_context(kw["context"]) if kw.get("context") is not None else None
        for key in ("concurrency", *_PARALLEL):
            value = kw.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GpubenchError(f"{key} must be a positive whole number, got {value!r}")
        split_mode = split.check_split_mode(kw.get("split_mode"))
        tensor_split = split.check_tensor_split(kw.get("tensor_split"))
    except GpubenchError as exc:
        raise _fail(item, "model", str(exc)) from None
    return ModelRequest(
        model=model,
        quant=kw.get("quant"),
        context=context,
        concurrency=kw.get("concurrency", 1),
        engine=kw.get("engine"),
        kv_dtype=kw.get("kv_dtype"),
        tensor_parallel=kw.get("tensor_parallel", 1),
        pipeline_parallel=kw.get("pipeline_parallel", 1),
        data_parallel=kw.get("data_parallel", 1),
        split_mode=split_mode,
        tensor_split=tensor_split,
    )


def model_marker(item: pytest.Item) -> ModelMarker | None:
    """The item's parsed ``model`` marker (None without one): kept from collection, or parsed
    now and kept when the item was not collected through the plugin (raises MarkerError)."""
    if MODEL not in item.stash:
        mark = item.get_closest_marker("model")
        item.stash[MODEL] = _model_marker(item, mark) if mark is not None else None
    return item.stash[MODEL]


def model_of(item: pytest.Item) -> ModelRequest | None:
    """What the item's ``model`` marker asks for (model id, quant, context...), or None."""
    marker = model_marker(item)
    return marker.request if marker is not None else None


def _model_marker(item: pytest.Item, mark: pytest.Mark) -> ModelMarker:
    options = {k: mark.kwargs[k] for k in SERVER_KEYWORDS if mark.kwargs.get(k) is not None}
    return ModelMarker(_model(item, mark), options)


def requirements(item: pytest.Item, profiles: ProfileSet) -> Requirements:
    """Parse and validate the plugin's markers on ``item`` (raises MarkerError), once: the
    result is kept on the item and a later call returns it."""
    if REQUIREMENTS in item.stash:
        return item.stash[REQUIREMENTS]
    by_marker = {p.marker_name: name for name, p in profiles.profiles.items()}
    devices: list[str] = []
    vram: float | None = None
    per_gpu = False
    categories: list[str] = []
    model: ModelRequest | None = None
    gpus: int | None = None
    for mark in item.iter_markers():
        if mark.name == "device":
            if not mark.args or mark.kwargs:
                raise _fail(item, "device", "expected device('name', ...) with at least one name")
            for name in mark.args:
                if not isinstance(name, str) or name not in profiles:
                    raise _fail(item, "device", unknown_device_message(str(name), profiles.names))
                devices.append(profiles.get(name).name)
        elif mark.name == "needs_vram":
            if vram is None:  # the closest marker (function over class over module) wins
                vram, per_gpu = _vram(item, mark)
        elif mark.name == "model":
            if model is None:
                model = model_marker(item).request  # type: ignore[union-attr]
        elif mark.name == "gpus":
            if gpus is None:
                value = mark.args[0] if len(mark.args) == 1 and not mark.kwargs else None
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise _fail(item, "gpus", f"expected gpus(n) with n >= 1, got {mark.args!r}")
                gpus = value
        elif mark.name in by_marker:
            devices.append(by_marker[mark.name])
        elif mark.name in CATEGORIES:
            categories.append(mark.name)
    found = Requirements(
        tuple(dict.fromkeys(devices)), vram, per_gpu, tuple(categories), model, gpus
    )
    item.stash[REQUIREMENTS] = found
    return found


def tolerances(item: pytest.Item) -> dict[str, float]:
    """The ``gpubench_tolerance(metric=fraction)`` marker, validated once (at collection) and
    kept on the item; a copy, so a caller's change never reaches the next reader."""
    if TOLERANCES not in item.stash:
        item.stash[TOLERANCES] = _tolerances(item)
    return dict(item.stash[TOLERANCES])


def _tolerances(item: pytest.Item) -> dict[str, float]:
    mark = item.get_closest_marker("gpubench_tolerance")
    if mark is None:
        return {}
    if mark.args:
        raise GpubenchError(
            f"{item.nodeid}: marker @pytest.mark.gpubench_tolerance takes metric=fraction "
            f"keywords, e.g. gpubench_tolerance(output_tok_s=0.1); got {mark.args!r}"
        )
    result = {}
    for name, value in mark.kwargs.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 10:
            raise GpubenchError(
                f"{item.nodeid}: marker @pytest.mark.gpubench_tolerance: {name}={value!r} must "
                "be a fraction such as 0.1 (10%)"
            )
        result[name] = float(value)
    return result
