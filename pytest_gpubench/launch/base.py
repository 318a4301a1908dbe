"""The Launcher protocol: run an engine's command somewhere and stop it without fail.

A launcher turns (executable, argv, env) into a running ``Handle``: a local process group,
a Docker container, or nothing at all for a server that is already running (``external``).
Every handle that owns something registers with ``cleanup.REGISTRY`` before it can be
interrupted, so the run's end, Ctrl-C, SIGTERM and failing tests all stop it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pytest_gpubench.launch.groups import DEFAULT_GRACE_S
from pytest_gpubench.launch.logs import ServerLog

if TYPE_CHECKING:
    from pytest_gpubench.engines.base import Engine


@dataclass
class StartRequest:
    """Everything a launcher needs for one server; the engine spells argv and env."""

    engine: Engine
    executable: list[str]
    argv: list[str]
    env: dict[str, str]
    secret_env: dict[str, str]
    host: str
    port: int  # the port clients reach on the host
    model_path: Path | None  # a local model to make visible (Docker mounts its folder)
    log: ServerLog
    extra: Mapping[str, object] = field(default_factory=dict)  # launcher-specific options


class Handle(Protocol):
    """A started server's process or container."""

    #: how the server was started, for error messages (secrets masked)
    display_command: str
    #: pid or container id, for messages and tests
    ident: str

    def poll(self) -> int | None:
        """Exit status once it has ended, else None."""
        ...

    def stop(self, grace_s: float = DEFAULT_GRACE_S) -> int | None:
        """Stop it (TERM, wait ``grace_s``, KILL; containers removed); idempotent."""
        ...


class Launcher(Protocol):
    name: str

    def resolve_executable(
        self, engine: Engine, explicit: str | Sequence[str] | None
    ) -> list[str]: ...

    def model_source(self, engine: Engine, source: str) -> str:
        """The model path as the server will see it (Docker remaps the mounted folder)."""
        ...

    def bind_host(self, host: str) -> str:
        """The address the server itself binds (0.0.0.0 inside a container)."""
        ...

    def server_port(self, engine: Engine, host_port: int) -> int:
        """The port the server listens on where it runs (the engine's default in Docker)."""
        ...

    def start(self, request: StartRequest) -> Handle: ...


def shell_join(argv: Sequence[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in argv)


__all__ = ["DEFAULT_GRACE_S", "Handle", "Launcher", "StartRequest", "shell_join"]
