"""Registries of serving's extension points: request sources and load shapes.

As the engine registry (``engines/registry.py``): built-ins register when their module is
imported (``serving/sources.py``, ``serving/schedule.py``); a conftest or plugin adds its own
through the ``pytest_gpubench_register_request_sources`` and
``pytest_gpubench_register_load_shapes`` hooks (``hookspec.py``), collected the first time a
test of the run uses ``serve_bench`` and dropped when the run ends, so in-process pytest runs
(pytester) do not leak one run's registrations into the next.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import pytest

from pytest_gpubench.errors import GpubenchError

T = TypeVar("T")
COLLECTED = pytest.StashKey[bool]()


class Registry(Generic[T]):
    """Name -> item; ``what`` names the kind in messages ("request source", "load shape");
    ``needs`` are the attributes an item must have."""

    def __init__(self, what: str, needs: tuple[str, ...], hint: str) -> None:
        self.what = what
        self.needs = needs
        self.hint = hint
        self.items: dict[str, T] = {}

    def register(self, item: T, *, replace: bool = False) -> T:
        missing = [attr for attr in self.needs if not hasattr(item, attr)]
        if missing:
            raise GpubenchError(f"{self.what} {item!r} lacks {', '.join(missing)}: {self.hint}")
        name = str(item.name).strip().lower()
        owner = self.items.get(name)
        if owner is not None and owner is not item and not replace:
            raise GpubenchError(
                f"{self.what} name {name!r} is taken; give the new one another name, or "
                "register(..., replace=True) to override it"
            )
        self.items[name] = item
        return item

    def find(self, name: str) -> T | None:
        return self.items.get(name.strip().lower())

    def get(self, name: str, keyword: str) -> T:
        """The item called ``name``; a usage error naming the nearest names otherwise."""
        found = self.find(name) if isinstance(name, str) else None
        if found is None:
            close = difflib.get_close_matches(str(name), list(self.items), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise GpubenchError(
                f"{keyword}={name!r} is no registered {self.what}{hint}; registered: "
                f"{', '.join(self.items)}"
            )
        return found

    def names(self) -> list[str]:
        return list(self.items)

    def snapshot(self) -> dict[str, T]:
        return dict(self.items)

    def restore(self, items: dict[str, T]) -> None:
        self.items.clear()
        self.items.update(items)


def collect_plugins(
    config: Any,
    registries: dict[str, Registry[Any]],
) -> None:
    """Ask the run's plugins once (``hook name -> registry``); their registrations last until
    the run's end (``config.add_cleanup``)."""
    if config.stash.get(COLLECTED, False):
        return
    config.stash[COLLECTED] = True
    before = {hook: reg.snapshot() for hook, reg in registries.items()}

    def restore() -> None:
        for hook, reg in registries.items():
            reg.restore(before[hook])

    config.add_cleanup(restore)
    for hook, reg in registries.items():
        caller: Callable[..., Any] | None = getattr(config.hook, hook, None)
        if caller is not None:
            caller(register=reg.register)
