"""The benchmark suite's shared set-up: find the weights and the engine, or say what is missing.

Every benchmark carries ``@pytest.mark.model(...)``, so the plugin's fit estimate skips at
collection what cannot fit on ``--device``. What remains is skipped at run time, with the
reason, when the engine or the weights are not on this machine:

- engines: the ``llm_server`` fixture starts them (a process from PATH or the engine cache,
  or a Docker container);
- weights: a folder or GGUF under ``$GPUBENCH_MODELS_DIR`` (default ``~/models``), or the
  Hugging Face cache (``$HF_HOME``/hub). Nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from serving_cases import Case


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too so the suite runs (and skips clearly) where the plugin's model
    # marker is not available; the plugin's own registration wins where it is.
    config.addinivalue_line("markers", "model(id, **spec): the model a benchmark serves")


def models_dir() -> Path:
    return Path(os.environ.get("GPUBENCH_MODELS_DIR", "~/models")).expanduser()


def hf_hub() -> Path:
    home = os.environ.get("HF_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "huggingface").expanduser() / "hub"


def find_weights(case: Case) -> Path | None:
    """A vLLM model folder (with config.json) or a llama.cpp GGUF file, if present."""
    name = case.repo.split("/")[-1]
    local = [models_dir() / name, models_dir() / case.repo.replace("/", "--"), models_dir()]
    snapshots = hf_hub() / f"models--{case.repo.replace('/', '--')}" / "snapshots"
    if snapshots.is_dir():
        local += sorted(snapshots.iterdir(), reverse=True)
    for folder in local:
        if case.file:
            if (folder / case.file).is_file():
                return folder / case.file
        elif folder != models_dir() and (folder / "config.json").is_file():
            return folder
    return None


def weights_hint(case: Case) -> str:
    name = case.repo.split("/")[-1]
    what = f"{case.repo} {case.file}" if case.file else case.repo
    get = f"hf download {case.repo}" + (f" {case.file}" if case.file else "")
    return (
        f"weights missing: {what} is not in $GPUBENCH_MODELS_DIR ({models_dir()}) or the "
        f"Hugging Face cache ({hf_hub()}); get them with `{get} --local-dir "
        f"{models_dir() / name}`"
    )


def engine_missing(engine: str) -> str | None:
    """Why ``engine`` cannot be started here, or None when it can."""
    try:
        from pytest_gpubench.engines import provision
    except ImportError:
        provision = None
    if engine == "llamacpp":
        if shutil.which("llama-server") or (provision and provision.find_llamacpp()):
            return None
        if shutil.which("docker"):
            return None
        return (
            "engine missing: llama.cpp (no llama-server on PATH, none provisioned in the engine "
            "cache, no docker); install it, or run `python -m pytest_gpubench.launch.provision "
            "llamacpp`"
        )
    if engine == "vllm":
        if shutil.which("vllm") or (provision and provision.find_vllm()) or shutil.which("docker"):
            return None
        return (
            "engine missing: vLLM (no `vllm` on PATH, none provisioned in the engine cache, no "
            "docker for the NGC vLLM container); pip install vllm, or install docker"
        )
    return f"engine {engine!r} is not one this suite knows"


@pytest.fixture
def case_server(request: pytest.FixtureRequest) -> Callable[[Case], object]:
    """``case_server(case)`` -> a running server for the case, or a skip saying what is missing."""

    def start(case: Case) -> object:
        problem = engine_missing(case.engine)
        if problem:
            pytest.skip(problem)
        weights = find_weights(case)
        if weights is None:
            pytest.skip(weights_hint(case))
        try:
            llm_server = request.getfixturevalue("llm_server")
        except pytest.FixtureLookupError:
            pytest.skip(
                "the llm_server fixture is not in this pytest-gpubench installation "
                "(server fixtures); nothing can start the engine"
            )
        options = {"context": case.context, **case.server_options}
        return llm_server(engine=case.engine, model=str(weights), options=options)

    return start
