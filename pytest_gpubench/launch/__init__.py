"""Start inference servers (local process, Docker, or an external one) and always stop them.

The names below load on first use (PEP 562): the plugin imports ``launch.cleanup`` in every
pytest run, and a run that starts no server must not pay for the engines and the HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_gpubench.launch.pool import ServerPool
    from pytest_gpubench.launch.server import Server, ServerError

_HOMES = {
    "Server": "pytest_gpubench.launch.server",
    "ServerError": "pytest_gpubench.launch.server",
    "ServerPool": "pytest_gpubench.launch.pool",
}

__all__ = ["Server", "ServerError", "ServerPool"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
