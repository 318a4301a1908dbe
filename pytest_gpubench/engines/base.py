"""The Engine protocol: what the launchers need to know about one inference server.

An engine is pure knowledge, no processes: how to spell its command line from (model,
options), where it answers "ready", which port it uses inside a container, how to read its
server-side numbers (Prometheus ``/metrics``, per-response timings) and its version. Launchers
(``pytest_gpubench.launch``) run the command; the same engine serves process, Docker and
external launches alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from pytest_gpubench.engines import prometheus
from pytest_gpubench.engines.memory import EngineMemory
from pytest_gpubench.engines.placement import Placement
from pytest_gpubench.engines.stalls import StallReport
from pytest_gpubench.errors import GpubenchError


@dataclass(frozen=True)
class ModelRef:
    """The model to serve: a local path (HF folder, .gguf file) or a name the engine resolves.

    ``served_name`` is the name clients put in requests (``"model": ...``).
    """

    source: str
    served_name: str

    @property
    def path(self) -> Path | None:
        p = Path(self.source).expanduser()
        return p if p.exists() else None

    @classmethod
    def of(cls, source: str | Path, served_name: str | None = None) -> ModelRef:
        text = str(source)
        if served_name is None:
            p = Path(text).expanduser()
            served_name = p.name.removesuffix(".gguf") if p.exists() else text
        return cls(text, served_name)


@dataclass(frozen=True)
class Launch:
    """One server's command line and environment, as an engine spells it.

    ``argv`` excludes the executable; launchers prepend the local or in-container one.
    ``secret_env`` holds values (API keys) passed only through the environment, never argv.
    """

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReadyCheck:
    """Result of one readiness probe: ready, or why not yet."""

    ready: bool
    detail: str


# Options every engine understands, translated to its own flags. Anything else in ``options``
# becomes ``--key-with-dashes value`` (``True`` -> bare flag, ``False``/``None`` -> omitted), so
# ``options={"gpu_memory_utilization": 0.8}`` reaches vLLM as ``--gpu-memory-utilization 0.8``.
COMMON_OPTIONS = ("context", "api_key", "extra_args")


def generic_flags(options: Mapping[str, Any], skip: Sequence[str] = ()) -> list[str]:
    """``{"n_gpu_layers": 99, "jinja": True}`` -> ``["--n-gpu-layers", "99", "--jinja"]``."""
    out: list[str] = []
    for key, value in options.items():
        if key in COMMON_OPTIONS or key in skip or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif isinstance(value, (list, tuple)):
            out += [flag, *(str(v) for v in value)]
        else:
            out += [flag, str(value)]
    out += [str(a) for a in options.get("extra_args", ()) or ()]
    return out


#: the parallel options by their engine-neutral names; ``tensor_parallel`` is also accepted
PARALLEL_OPTIONS = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")
SPLIT_OPTIONS = ("split_mode", "tensor_split")
#: every spelling of them ``options`` may carry (the marker's short names too)
PLACEMENT_KEYS = (*PARALLEL_OPTIONS, *(k.removesuffix("_size") for k in PARALLEL_OPTIONS))


def _whole(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GpubenchError(f"option {key} must be a positive whole number, got {value!r}")
    return value


def parallel_flags(engine: str, options: Mapping[str, Any], flags: Mapping[str, str]) -> list[str]:
    """``tensor_parallel_size=2`` (or ``tensor_parallel=2``) -> ``[flags[...], "2"]``, checked.

    ``flags`` maps each of ``PARALLEL_OPTIONS`` the engine takes to its own flag; an option it
    does not take (llama.cpp has no tensor parallel) is an error naming what it takes instead.
    """
    out: list[str] = []
    for name in PARALLEL_OPTIONS:
        for key in (name, name.removesuffix("_size")):
            if options.get(key) is None:
                continue
            value = _whole(key, options[key])
            if name not in flags:
                if value == 1:
                    continue
                takes = ", ".join(flags) or "split_mode and tensor_split"
                raise GpubenchError(f"{engine} has no option {key}; it takes {takes}")
            out += [flags[name], str(value)]
            break  # tensor_parallel_size given: a tensor_parallel (the marker's) is the same
    return out


def counters(engine: Engine, samples: Mapping[str, float]) -> dict[str, float]:
    """The counters every engine shares (prompt_tokens, generation_tokens, requests_running,
    requests_waiting), summed over labels, from one scrape; absent where the engine has none."""
    out = {}
    for common, name in engine.counter_names.items():
        value = prometheus.total(samples, name)
        if value is not None:
            out[common] = value
    return out


@runtime_checkable
class Engine(Protocol):
    """One inference engine. Implementations live one per module in this package."""

    #: short name used in fixtures, cache keys and results: "vllm", "llamacpp", ...
    name: str
    #: port the server listens on inside its container (and the default outside)
    default_port: int
    #: default Docker image (CPU build); ``gpu_image`` when a GPU is present
    default_image: str
    gpu_image: str
    #: executable inside the default image
    container_executable: list[str]
    #: other names users give it (``"llama.cpp"``); looked up case-insensitively
    aliases: tuple[str, ...]
    #: Prometheus sample names for the counters every engine shares; missing -> no such number
    counter_names: Mapping[str, str]
    #: serving metric -> Prometheus histograms (seconds) whose mean over a run is that metric,
    #: first present wins: ``{"server_ttft_ms": ("vllm:time_to_first_token_seconds",)}``
    server_histograms: Mapping[str, tuple[str, ...]]
    #: request shape of ``/tokenize`` and ``/detokenize``, named after the engine that defined
    #: it: "llamacpp" (``content``), "vllm" (``prompt``, SGLang's too); None: no such endpoint
    tokenize_style: str | None
    #: how the engine spends device memory, for the fit estimate
    memory: EngineMemory
    #: Python distributions whose version changes this engine's results (recorded in baselines)
    packages: tuple[str, ...]

    def local_executable(self, explicit: str | Sequence[str] | None) -> list[str]:
        """The command prefix to run locally; raises GpubenchError naming how to install it."""
        ...

    def launch(self, model: ModelRef, host: str, port: int, options: Mapping[str, Any]) -> Launch:
        """The arguments (after the executable) and environment for this server."""
        ...

    def check_ready(self, client: httpx.Client, model: ModelRef) -> ReadyCheck:
        """One readiness probe against a started server (client has its base_url)."""
        ...

    def after_ready(self, client: httpx.Client, model: ModelRef) -> None:
        """Work needed once the server answers (Ollama creates the model); usually nothing."""
        ...

    def version(self, client: httpx.Client) -> str | None:
        """The server's version as it reports it over HTTP, or None."""
        ...

    def metrics_path(self) -> str | None:
        """Path of the Prometheus endpoint, or None where the engine has none."""
        ...

    def response_timings(self, body: Mapping[str, Any]) -> dict[str, float]:
        """Server-side numbers carried in one response body or stream chunk (llama.cpp
        ``timings``, Ollama ``eval_count``/``eval_duration``); empty where it has none.

        Where the engine has them, the keys include llama.cpp's ``prompt_n``, ``prompt_ms``,
        ``predicted_n`` and ``predicted_ms``, from which the serving metrics compute the
        server's own prefill and decode speeds.
        """
        ...

    def placement(self, log_text: str, server: Any) -> Placement | None:
        """Where the running server put the model (layers, buffers, KV cache on GPU or CPU),
        from its log (``log_text``, the whole file) or its API (``server.client()``); None
        where the engine says nothing about it. See ``pytest_gpubench.engines.placement``."""
        ...

    def log_stalls(self, log_text: str) -> StallReport | None:
        """Where the server's log (``log_text``: the lines written during one run) shows its
        main loop blocking every request, by cause, with the span of time those lines cover;
        None where the engine's log says nothing of the kind. See
        ``pytest_gpubench.engines.stalls``."""
        ...


class BaseEngine:
    """Shared behaviour: health + /v1/models readiness, /metrics, no per-response timings.

    A subclass sets ``name``, ``memory`` and what differs; see ``Engine`` for each field.
    """

    name = "base"
    aliases: tuple[str, ...] = ()
    default_port = 8000
    default_image = ""
    gpu_image = ""
    container_executable: list[str] = []  # noqa: RUF012 - overridden per engine, never mutated
    health_path = "/health"
    counter_names: Mapping[str, str] = {}
    server_histograms: Mapping[str, tuple[str, ...]] = {}
    tokenize_style: str | None = None
    memory: EngineMemory
    packages: tuple[str, ...] = ()

    def check_ready(self, client: httpx.Client, model: ModelRef) -> ReadyCheck:
        health = self.health(client)
        return health if not health.ready else models_listed(client, model)

    def health(self, client: httpx.Client) -> ReadyCheck:
        """Whether ``health_path`` answers 200 (the server is up, maybe not yet serving)."""
        try:
            resp = client.get(self.health_path)
        except httpx.HTTPError as exc:
            return ReadyCheck(False, f"{self.health_path}: {type(exc).__name__}")
        if resp.status_code != 200:
            return ReadyCheck(False, f"{self.health_path}: HTTP {resp.status_code}")
        return ReadyCheck(True, "ready")

    def after_ready(self, client: httpx.Client, model: ModelRef) -> None:
        return None

    def metrics_path(self) -> str | None:
        return "/metrics"

    def response_timings(self, body: Mapping[str, Any]) -> dict[str, float]:
        return {}

    def placement(self, log_text: str, server: Any) -> Placement | None:
        return None

    def log_stalls(self, log_text: str) -> StallReport | None:
        return None


def models_listed(client: httpx.Client, model: ModelRef, path: str = "/v1/models") -> ReadyCheck:
    """Ready when ``/v1/models`` answers 200 and lists the served name."""
    try:
        resp = client.get(path)
    except httpx.HTTPError as exc:
        return ReadyCheck(False, f"{path}: {type(exc).__name__}")
    if resp.status_code != 200:
        return ReadyCheck(False, f"{path}: HTTP {resp.status_code}")
    try:
        ids = [m.get("id") for m in resp.json().get("data", [])]
    except (ValueError, AttributeError):
        return ReadyCheck(False, f"{path}: not JSON")
    if model.served_name not in ids:
        return ReadyCheck(False, f"{path}: {model.served_name!r} not among {ids}")
    return ReadyCheck(True, "ready")
