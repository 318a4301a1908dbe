"""The running server a benchmark gets, and how one is started and checked.

``Server`` is the stable interface the load generator and benchmarks program against::

    server.base_url        "http://127.0.0.1:PORT"  (no trailing /v1; ``openai_base_url`` adds it)
    server.model           the served model name to put in requests
    server.engine          the Engine object; ``server.engine.name`` is "vllm", "llamacpp", ...
    server.launcher        "process" | "docker" | "external"
    server.log_path        the server's full log (None for external servers)
    server.version         the engine's version as the server reports it (or None)
    server.headers         HTTP headers requests need (Authorization when an api_key is set)
    server.server_metrics()   Prometheus /metrics as {"name{labels}": value}; {} where none
    server.counters()         prompt_tokens, generation_tokens, requests_running,
                              requests_waiting under common names, where the engine has them
    server.response_timings(body)  server-side numbers in one response body (llama.cpp
                              ``timings``, Ollama ``eval_count``/``eval_duration``)
    server.check()         raise ServerError (exit status, log tail) if it has died
    server.describe()      a JSON-able dict for results; secrets never appear in it
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pytest_gpubench import progress
from pytest_gpubench.engines.base import Engine, ModelRef, counters
from pytest_gpubench.engines.prometheus import parse as parse_prometheus
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.launch.base import DEFAULT_GRACE_S, Handle, StartRequest
from pytest_gpubench.launch.logs import TAIL_LINES, ServerLog

PROBE_TIMEOUT_S = 5.0


class ServerError(GpubenchError):
    """A server that did not start, or died: the message carries what a user needs to fix it."""


@dataclass(eq=False)
class Server:
    engine: Engine
    model: str
    base_url: str
    launcher: str
    log_path: Path | None
    version: str | None
    command: str
    startup_s: float | None
    source: str  # the model as given (path or id)
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    api_key: str | None = field(default=None, repr=False)
    handle: Handle | None = field(default=None, repr=False)
    log: ServerLog | None = field(default=None, repr=False)
    stopped: bool = field(default=False, repr=False)  # stopped by gpubench, not died

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def client(self, timeout: float = PROBE_TIMEOUT_S) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout)

    def server_metrics(self) -> dict[str, float]:
        """Every sample of the engine's Prometheus endpoint; {} where it has none."""
        path = self.engine.metrics_path()
        if path is None:
            return {}
        with self.client() as client:
            resp = client.get(path)
        if resp.status_code != 200:
            return {}
        return parse_prometheus(resp.text)

    def counters(self) -> dict[str, float]:
        """The shared counters (prompt_tokens, generation_tokens, requests_running,
        requests_waiting) summed over labels, where the engine exports them."""
        return counters(self.engine, self.server_metrics())

    def response_timings(self, body: Mapping[str, Any]) -> dict[str, float]:
        return self.engine.response_timings(body)

    def exit_status(self) -> int | None:
        return self.handle.poll() if self.handle else None

    def alive(self) -> bool:
        return self.exit_status() is None

    def log_tail(self, n: int = TAIL_LINES) -> list[str]:
        return self.log.tail(n) if self.log else []

    def check(self) -> None:
        """Raise ServerError if the server has exited (e.g. killed mid-benchmark)."""
        code = self.exit_status()
        if code is not None:
            raise ServerError(
                failure_message(
                    f"{self.engine.name} server for {self.model!r} died (exit status {code})",
                    self.command,
                    self.log,
                )
            )

    def stop(self, grace_s: float = DEFAULT_GRACE_S) -> int | None:
        self.stopped = True
        code = self.handle.stop(grace_s) if self.handle else None
        if self.log:
            self.log.close()
        return code

    def describe(self) -> dict[str, Any]:
        """What to record with results: engine, version, model, launcher (no secrets)."""
        data = {
            "engine": self.engine.name,
            "engine_version": self.version,
            "model": self.model,
            "model_source": self.source,
            "launcher": self.launcher,
            "startup_s": None if self.startup_s is None else round(self.startup_s, 3),
            "options": {k: v for k, v in self.options.items() if k != "api_key"},
        }
        if self.log is None:
            return data
        # option values (extra_args, ...) may hold a secret the environment also holds
        return json.loads(self.log.redactor.redact(json.dumps(data, default=str)))


def failure_message(headline: str, command: str, log: ServerLog | None, n: int = TAIL_LINES) -> str:
    lines = [headline, f"command: {command}"]
    if log is not None:
        tail = log.tail(n)
        lines.append(f"log: {log.path}" if log.path else "log: (not kept)")
        lines.append(f"last {len(tail)} log lines:" if tail else "the server wrote no output")
        lines += ["  " + line for line in tail]
    return "\n".join(lines)


def _last_line(log: ServerLog) -> str:
    """The server's latest log line, for the start-up progress line (loading weights...)."""
    lines = [line for line in log.tail(3) if line.strip()]
    return lines[-1].strip()[-120:] if lines else ""


def wait_ready(
    engine: Engine,
    handle: Handle,
    client: httpx.Client,
    model: ModelRef,
    timeout_s: float,
    log: ServerLog,
) -> float:
    """Poll the engine's readiness until it serves; seconds it took. On exit or deadline the
    ServerError names the command, the exit status and the log tail."""
    with progress.task(f"starting {engine.name} server for {model.served_name}") as shown:
        return _poll_ready(engine, handle, client, model, timeout_s, log, shown)


def _poll_ready(
    engine: Engine,
    handle: Handle,
    client: httpx.Client,
    model: ModelRef,
    timeout_s: float,
    log: ServerLog,
    shown: progress.Task,
) -> float:
    start = time.monotonic()
    delay = 0.1
    detail = "no answer yet"
    while True:
        shown.update(detail=_last_line(log))
        code = handle.poll()
        if code is not None:
            raise ServerError(
                failure_message(
                    f"{engine.name} server for {model.served_name!r} exited with status {code} "
                    "before it was ready",
                    handle.display_command,
                    log,
                )
            )
        check = engine.check_ready(client, model)
        if check.ready:
            return time.monotonic() - start
        detail = check.detail
        elapsed = time.monotonic() - start
        if elapsed > timeout_s:
            raise ServerError(
                failure_message(
                    f"{engine.name} server for {model.served_name!r} was not ready within "
                    f"{timeout_s:g} s (last check: {detail}); raise --gpubench-server-timeout "
                    "if it needs longer",
                    handle.display_command,
                    log,
                )
            )
        time.sleep(min(delay, max(0.0, timeout_s - elapsed) + 0.01))
        delay = min(delay * 1.5, 1.0)


def start_server(
    *,
    engine: Engine,
    launcher,
    model: ModelRef,
    executable: list[str],
    host: str,
    port: int,
    options: Mapping[str, Any],
    env: Mapping[str, str],
    timeout_s: float,
    log: ServerLog,
    extra: Mapping[str, Any],
) -> Server:
    """Start one server and return it ready, or stop it and raise ServerError."""
    local_path = model.path
    inside = ModelRef(launcher.model_source(engine, model.source), model.served_name)
    spec = engine.launch(
        inside, launcher.bind_host(host), launcher.server_port(engine, port), options
    )
    log.redactor.add([*spec.secret_env.values(), *(str(v) for v in env.values())])
    request = StartRequest(
        engine=engine,
        executable=executable,
        argv=spec.argv,
        env={**spec.env, **env},
        secret_env=spec.secret_env,
        host=host,
        port=port,
        model_path=local_path,
        log=log,
        extra=extra,
    )
    base_url = f"http://{host}:{port}"
    handle = launcher.start(request)
    api_key = str(options["api_key"]) if options.get("api_key") else None
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(base_url=base_url, headers=headers, timeout=PROBE_TIMEOUT_S) as client:
            startup = wait_ready(engine, handle, client, model, timeout_s, log)
            engine.after_ready(client, model)
            version = engine.version(client)
    except BaseException:
        handle.stop()
        log.close()
        raise
    log.note(f"ready at {base_url} after {startup:.1f} s; version {version}")
    return Server(
        engine=engine,
        model=model.served_name,
        base_url=base_url,
        launcher=launcher.name,
        log_path=log.path,
        version=version,
        command=handle.display_command,
        startup_s=startup,
        source=model.source,
        options=dict(options),
        api_key=api_key,
        handle=handle,
        log=log,
    )


def connect_external(
    *, engine: Engine, url: str, model: str | None, timeout_s: float, api_key: str | None
) -> Server:
    """A server someone else runs: wait until it lists a model, never start or stop it."""
    from pytest_gpubench.launch.external import ExternalHandle

    url = url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + timeout_s
    detail = ""
    with httpx.Client(base_url=url, headers=headers, timeout=PROBE_TIMEOUT_S) as client:
        while True:
            try:
                resp = client.get("/v1/models")
                ids = [m.get("id") for m in resp.json().get("data", [])] if resp.is_success else []
                detail = f"HTTP {resp.status_code}, models {ids}"
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                ids, detail = [], type(exc).__name__
            if ids:
                break
            if time.monotonic() > deadline:
                raise ServerError(
                    f"external server {url} did not list any model at /v1/models within "
                    f"{timeout_s:g} s (last: {detail}); check --gpubench-server-url"
                )
            time.sleep(0.5)
        served = model if model in ids else ids[0]
        version = engine.version(client)
    return Server(
        engine=engine,
        model=served,
        base_url=url,
        launcher="external",
        log_path=None,
        version=version,
        command=ExternalHandle(url).display_command,
        startup_s=None,
        source=model or served,
        api_key=api_key,
        handle=ExternalHandle(url),
    )
