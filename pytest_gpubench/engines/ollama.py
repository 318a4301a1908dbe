"""Ollama (``ollama serve``), with the model created from a local GGUF or pulled by name.

Ollama cannot be installed on the machines this project is tested on, so this engine is tested
against recorded responses only, never a live server. Its OpenAI-compatible ``/v1`` API is what
load generators use; its native ``/api/generate`` and ``/api/chat`` responses carry the
server-side ``eval_count``/``eval_duration`` numbers that ``response_timings`` reads.

Its placement parser is here, below the engine.

- Ollama (``placement_from_ps``): ``GET /api/ps`` (Ollama's docs/api.md): per model ``size``
  (bytes in memory) and ``size_vram`` (bytes of it in GPU memory); ``size_vram < size`` with
  ``size_vram > 0`` is a split between GPU and CPU.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from pytest_gpubench.engines.base import BaseEngine, Launch, ModelRef, ReadyCheck
from pytest_gpubench.engines.memory import EngineMemory
from pytest_gpubench.engines.placement import Placement
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.models import kvcache

NS = 1e9


def _tagged(name: str) -> str:
    return name if ":" in name else name + ":latest"


class Ollama(BaseEngine):
    name = "ollama"
    default_port = 11434
    default_image = "ollama/ollama:latest"
    gpu_image = "ollama/ollama:latest"
    container_executable = ["/bin/ollama"]  # noqa: RUF012
    health_path = "/api/version"
    counter_names = {}  # noqa: RUF012 - Ollama has no Prometheus endpoint
    tokenize_style = None  # no /tokenize: prompts need a local tokenizer
    memory = EngineMemory(
        "ollama",
        utilization=None,
        one_gpu=False,
        mla_mode=kvcache.MLA_LATENT_SPLIT_V,
        default_kv_dtype="fp16",
        overhead_gib=1.0,
        overhead_source="llama.cpp's figure (Ollama runs the same ggml backend)",
        llamacpp_swa=True,
    )

    def local_executable(self, explicit: str | Sequence[str] | None) -> list[str]:
        if explicit:
            return [explicit] if isinstance(explicit, str) else list(explicit)
        found = shutil.which("ollama")
        if found:
            return [found]
        raise GpubenchError(
            "ollama not found: put it on PATH, pass executable=..., or use launcher='docker'"
        )

    def launch(self, model: ModelRef, host: str, port: int, options: Mapping[str, Any]) -> Launch:
        """Ollama takes settings from the environment, not flags: ``context`` becomes
        OLLAMA_CONTEXT_LENGTH and any other option ``OLLAMA_<KEY>``."""
        env = {"OLLAMA_HOST": f"{host}:{port}"}
        for key, value in options.items():
            if key in ("api_key", "extra_args") or value is None:
                continue
            name = "OLLAMA_CONTEXT_LENGTH" if key == "context" else "OLLAMA_" + key.upper()
            env[name] = str(int(value) if isinstance(value, bool) else value)
        return Launch(["serve", *(options.get("extra_args") or ())], env)

    def check_ready(self, client: httpx.Client, model: ModelRef) -> ReadyCheck:
        """Up once ``/api/version`` answers; the model is created afterwards (after_ready)."""
        return self.health(client)

    def after_ready(self, client: httpx.Client, model: ModelRef) -> None:
        """Create the model from a local GGUF (upload the blob, then ``/api/create``), or pull
        it by name; then check ``/api/tags`` lists it."""
        path = model.path
        if path is not None and path.is_file():
            digest = "sha256:" + _sha256(path)
            if client.head(f"/api/blobs/{digest}").status_code != 200:
                with open(path, "rb") as fh:
                    _ok(client.post(f"/api/blobs/{digest}", content=fh, timeout=None), "upload")
            body = {"model": model.served_name, "files": {path.name: digest}, "stream": False}
            _ok(client.post("/api/create", json=body, timeout=None), "create")
        else:
            body = {"model": model.source, "stream": False}
            _ok(client.post("/api/pull", json=body, timeout=None), "pull")
            if model.source != model.served_name:
                copy = {"source": model.source, "destination": model.served_name}
                _ok(client.post("/api/copy", json=copy), "copy")
        names = [m.get("name") for m in client.get("/api/tags").json().get("models", [])]
        if _tagged(model.served_name) not in names:
            raise GpubenchError(f"ollama: {model.served_name!r} not among models {names}")

    def metrics_path(self) -> str | None:
        return None

    def version(self, client: httpx.Client) -> str | None:
        try:
            return str(client.get("/api/version").json()["version"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def response_timings(self, body: Mapping[str, Any]) -> dict[str, float]:
        """The final ``/api/generate`` or ``/api/chat`` object: counts, and durations in
        seconds (Ollama reports nanoseconds), with the decode and prefill rates they imply."""
        out: dict[str, float] = {}
        for key in ("prompt_eval_count", "eval_count"):
            if isinstance(body.get(key), (int, float)):
                out[key] = float(body[key])
        for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
            if isinstance(body.get(key), (int, float)):
                out[key.replace("duration", "s")] = body[key] / NS
        if out.get("eval_s") and "eval_count" in out:
            out["eval_tokens_per_s"] = out["eval_count"] / out["eval_s"]
        if out.get("prompt_eval_s") and "prompt_eval_count" in out:
            out["prompt_eval_tokens_per_s"] = out["prompt_eval_count"] / out["prompt_eval_s"]
        # the same numbers under llama.cpp's names, which the serving metrics read
        for ours, count, seconds in (
            ("prompt", "prompt_eval_count", "prompt_eval_s"),
            ("predicted", "eval_count", "eval_s"),
        ):
            if count in out and seconds in out:
                out[f"{ours}_n"] = out[count]
                out[f"{ours}_ms"] = out[seconds] * 1000.0
        return out

    def placement(self, log_text: str, server: Any) -> Placement | None:
        """``/api/ps``: how much of the loaded model is in GPU memory (``size_vram``)."""
        try:
            with server.client() as client:
                payload = client.get("/api/ps").json()
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return placement_from_ps(payload, getattr(server, "model", None))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _ok(resp: httpx.Response, what: str) -> None:
    if resp.status_code >= 400:
        raise GpubenchError(f"ollama {what} failed: HTTP {resp.status_code}: {resp.text[:300]}")
    try:
        status = resp.json().get("status", "success") if resp.content else "success"
    except ValueError:
        status = "success"
    if resp.status_code == 200 and isinstance(status, str) and status.startswith("error"):
        raise GpubenchError(f"ollama {what} failed: {status}")


ENGINE = Ollama()


# -- where Ollama put the model --------------------------------------------------------------------
def _same_model(entry: Mapping[str, Any], model: str | None) -> bool:
    if model is None:
        return True
    names = {str(entry.get("name", "")), str(entry.get("model", ""))}
    tagged = model if ":" in model else model + ":latest"
    return bool(names & {model, tagged})


def placement_from_ps(
    payload: Mapping[str, Any] | None, model: str | None = None
) -> Placement | None:
    """One model's entry of ``GET /api/ps``: ``size`` bytes loaded, ``size_vram`` of them on
    the GPU. ``model`` picks the entry (``name`` or ``model``, ``:latest`` implied); None: the
    first."""
    if not isinstance(payload, Mapping):
        return None
    models = payload.get("models")
    if not isinstance(models, list):
        return None
    entry = next((m for m in models if isinstance(m, Mapping) and _same_model(m, model)), None)
    if entry is None:
        return None
    size, vram = entry.get("size"), entry.get("size_vram")
    if not isinstance(size, (int, float)) or not isinstance(vram, (int, float)):
        return None
    mib = 1024.0 * 1024.0
    gpu_mib, cpu_mib = vram / mib, max(size - vram, 0) / mib
    return Placement(
        source="ollama /api/ps",
        gpu_used=vram > 0,
        gpu_model_mib=round(gpu_mib, 2),
        cpu_model_mib=round(cpu_mib, 2),
        weights_on_cpu=vram > 0 and vram < size,
        engine_gib=round(vram / 2**30, 4) if vram > 0 else None,
        buffers={"size": float(size), "size_vram": float(vram)},
    )
