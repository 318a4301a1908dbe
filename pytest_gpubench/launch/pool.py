"""The session's running servers: started once per (engine, model, options, launcher), reused,
and stopped before a different one starts so its GPU memory is free."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_gpubench.engines import get_engine
from pytest_gpubench.engines.base import Engine, ModelRef
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.launch.logs import ServerLog, log_file
from pytest_gpubench.launch.ports import check_port, free_port, require_free
from pytest_gpubench.launch.secrets import Redactor
from pytest_gpubench.launch.server import Server, connect_external, start_server


def _launcher(name: str, gpu: bool):
    if name == "process":
        from pytest_gpubench.launch.process import ProcessLauncher

        return ProcessLauncher()
    if name == "docker":
        from pytest_gpubench.launch.docker import DockerLauncher

        return DockerLauncher(gpu=gpu)
    raise GpubenchError(f"unknown launcher {name!r}: choose 'process', 'docker' or 'external'")


@dataclass
class ServerPool:
    log_dir: Path | None
    timeout_s: float = 600.0
    default_launcher: str = "process"
    server_url: str | None = None
    gpu: bool = False
    servers: dict[str, Server] = field(default_factory=dict)
    history: list[Server] = field(default_factory=list)

    def get(
        self,
        engine: str | Engine,
        model: str | Path,
        *,
        launcher: str | None = None,
        served_name: str | None = None,
        options: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        executable: str | Sequence[str] | None = None,
        image: str | None = None,
        docker_options: Mapping[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        ready_timeout: float | None = None,
    ) -> Server:
        eng = get_engine(engine)
        options = dict(options or {})
        env = {k: str(v) for k, v in (env or {}).items()}
        launcher_name = launcher or ("external" if self.server_url else self.default_launcher)
        timeout = float(ready_timeout or self.timeout_s)
        ref = ModelRef.of(model, served_name)
        key = json.dumps(
            [eng.name, ref.source, ref.served_name, launcher_name, options, env,
             executable, image, docker_options, host, port],
            sort_keys=True,
            default=str,
        )  # fmt: skip
        current = self.servers.get(key)
        if current is not None and current.alive():
            return current
        if current is not None:  # died since the last test: drop it and start afresh
            self.forget(current)
        if launcher_name == "external":
            name = served_name or (str(model) if model else None)
            return self._keep(key, self._external(eng, name, timeout, options))
        # One started server at a time: free the GPU before the next model loads.
        self.stop_all(keep_external=True)
        runner = _launcher(launcher_name, self.gpu)
        if port is None:
            port = free_port(host)
        else:  # "8080" from a config file is a port; "abc" is one clear error, not a ValueError
            digits = isinstance(port, str) and port.strip().isdigit()
            port = check_port(int(port) if digits else port)
            require_free(host, port)
        log = self._log(eng, ref, launcher_name, options)
        server = start_server(
            engine=eng,
            launcher=runner,
            model=ref,
            executable=runner.resolve_executable(eng, executable),
            host=host,
            port=int(port),
            options=options,
            env=env,
            timeout_s=timeout,
            log=log,
            extra={"image": image, "docker_options": docker_options},
        )
        return self._keep(key, server)

    def _keep(self, key: str, server: Server) -> Server:
        self.servers[key] = server
        self.history.append(server)
        return server

    def _external(
        self, eng: Engine, name: str | None, timeout: float, options: Mapping[str, Any]
    ) -> Server:
        """The server at --gpubench-server-url, which the plugin neither starts nor stops."""
        if not self.server_url:
            raise GpubenchError("launcher='external' needs --gpubench-server-url")
        return connect_external(
            engine=eng,
            url=self.server_url,
            model=name,
            timeout_s=timeout,
            api_key=options.get("api_key"),
        )

    def _log(
        self, eng: Engine, ref: ModelRef, launcher_name: str, options: Mapping[str, Any]
    ) -> ServerLog:
        """The server's log: its own file under the log folder (if any), secrets redacted."""
        redactor = Redactor(extra=[str(options.get("api_key") or "")])
        path = (
            log_file(self.log_dir, eng.name, ref.served_name, launcher_name)
            if self.log_dir
            else None
        )
        log = ServerLog(path, redactor)
        log.note(
            f"engine {eng.name}, model {ref.source} served as {ref.served_name!r}, "
            f"launcher {launcher_name}"
        )
        return log

    def forget(self, server: Server) -> None:
        """Drop a server (dead or replaced) from the cache, stopping whatever is left of it."""
        for key, value in list(self.servers.items()):
            if value is server:
                del self.servers[key]
        server.stop(grace_s=1)

    def stop_all(self, keep_external: bool = False) -> None:
        for key, server in list(self.servers.items()):
            if keep_external and server.launcher == "external":
                continue
            del self.servers[key]
            server.stop()
