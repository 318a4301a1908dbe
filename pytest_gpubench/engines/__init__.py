"""Inference engines behind one ``Engine`` protocol, in one registry.

``get_engine("vllm")`` looks one up; a new engine is one module with a ``BaseEngine``
subclass, registered with ``register`` or the ``pytest_gpubench_register_engines`` hook.
"""

from __future__ import annotations

from pytest_gpubench.engines import llamacpp, ollama, sglang, vllm
from pytest_gpubench.engines.base import BaseEngine, Engine, Launch, ModelRef, ReadyCheck
from pytest_gpubench.engines.memory import EngineMemory
from pytest_gpubench.engines.prometheus import parse as parse_prometheus
from pytest_gpubench.engines.registry import (
    engine_names,
    find_engine,
    get_engine,
    memory_for,
    register,
    unregister,
)

for _builtin in (vllm.ENGINE, llamacpp.ENGINE, sglang.ENGINE, ollama.ENGINE):
    register(_builtin)

#: the built-in engines (``engine_names()`` also lists those plugins registered)
ENGINE_NAMES = tuple(engine_names())

__all__ = [
    "ENGINE_NAMES",
    "BaseEngine",
    "Engine",
    "EngineMemory",
    "Launch",
    "ModelRef",
    "ReadyCheck",
    "engine_names",
    "find_engine",
    "get_engine",
    "memory_for",
    "parse_prometheus",
    "register",
    "unregister",
]
