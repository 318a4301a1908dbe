"""The one engine registry: name or alias -> ``Engine``, plus the in-process memory row.

Built-in engines register when ``pytest_gpubench.engines`` is imported; others through the
``pytest_gpubench_register_engines`` hook (see ``pytest_gpubench.hookspec``) or ``register``.
Everything that needs to know the engines (server launch, serving metrics, tokenize, the fit
estimate's memory rows, package versions in baselines, messages listing engines) asks here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from pytest_gpubench.engines.base import Engine
from pytest_gpubench.engines.memory import IN_PROCESS, IN_PROCESS_ALIASES, EngineMemory
from pytest_gpubench.errors import GpubenchError

_ENGINES: dict[str, Engine] = {}
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    return name.strip().lower()


def register(engine: Engine, *, replace: bool = False) -> Engine:
    """Add ``engine`` under its ``name`` and ``aliases``; a clash is a clear error unless
    ``replace`` (a plugin overriding a built-in on purpose)."""
    missing = [
        attr for attr in ("name", "memory", "launch", "check_ready") if not hasattr(engine, attr)
    ]
    if missing:
        raise GpubenchError(
            f"engine {engine!r} lacks {', '.join(missing)}: subclass "
            "pytest_gpubench.engines.BaseEngine and set name and memory"
        )
    key = _key(engine.name)
    names = [key, *(_key(a) for a in getattr(engine, "aliases", ()))]
    if not replace:
        for name in names:
            owner = _ALIASES.get(name, name if name in _ENGINES else None)
            if owner is not None and _ENGINES[owner] is not engine:
                raise GpubenchError(
                    f"engine name {name!r} is taken by {owner!r}; give the new engine another "
                    "name, or register(..., replace=True) to override it"
                )
    _ENGINES[key] = engine
    for alias in names[1:]:
        _ALIASES[alias] = key
    return engine


def unregister(name: str) -> None:
    """Remove an engine and its aliases (a plugin's engines at the end of its pytest run)."""
    key = _ALIASES.get(_key(name), _key(name))
    _ENGINES.pop(key, None)
    for alias in [a for a, k in _ALIASES.items() if k == key]:
        del _ALIASES[alias]


def engine_names() -> list[str]:
    """Registered engines, built-ins first."""
    return list(_ENGINES)


def engines() -> list[Engine]:
    return list(_ENGINES.values())


def find_engine(name: str) -> Engine | None:
    key = _key(name)
    return _ENGINES.get(_ALIASES.get(key, key))


def get_engine(name: str | Engine) -> Engine:
    """The engine for a name or alias ("vllm", "llama.cpp", ...), or the object itself."""
    if not isinstance(name, str):
        return name
    found = find_engine(name)
    if found is None:
        raise GpubenchError(f"unknown engine {name!r}: choose one of {', '.join(engine_names())}")
    return found


def memory_names() -> list[str]:
    """Every name the fit estimate accepts for ``engine=``: the engines and in-process."""
    return sorted({*_ENGINES, IN_PROCESS.name})


def memory_for(name: str) -> EngineMemory:
    """How ``name`` (an engine, or an in-process runtime such as transformers) uses memory."""
    key = _key(name)
    if key == IN_PROCESS.name or key in IN_PROCESS_ALIASES:
        return IN_PROCESS
    found = find_engine(key)
    if found is None:
        known = [*_ENGINES, *_ALIASES, IN_PROCESS.name, *IN_PROCESS_ALIASES]
        close = difflib.get_close_matches(key, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise GpubenchError(
            f"unknown engine {name!r}.{hint} Known engines: {', '.join(memory_names())}"
        )
    return found.memory


def is_known(name: str) -> bool:
    key = _key(name)
    return find_engine(key) is not None or key == IN_PROCESS.name or key in IN_PROCESS_ALIASES


def tracked_packages(base: Iterable[str]) -> tuple[str, ...]:
    """``base`` plus every registered engine's packages, each once, in order."""
    names = list(base)
    for engine in _ENGINES.values():
        names += list(getattr(engine, "packages", ()))
    return tuple(dict.fromkeys(names))


class Scope:
    """Registrations that last one pytest run: ``register`` here, ``close`` at the end puts
    the registry back as it was before the first of them (an overridden built-in returns, in
    its place), so in-process pytest runs (pytester) do not leak one run's engines into the
    next."""

    def __init__(self) -> None:
        self._before: tuple[dict[str, Engine], dict[str, str]] | None = None

    def register(self, engine: Engine, *, replace: bool = False) -> Engine:
        if self._before is None:
            self._before = (dict(_ENGINES), dict(_ALIASES))
        return register(engine, replace=replace)

    def close(self) -> None:
        if self._before is None:
            return
        engines_before, aliases_before = self._before
        _ENGINES.clear()
        _ENGINES.update(engines_before)
        _ALIASES.clear()
        _ALIASES.update(aliases_before)
        self._before = None
