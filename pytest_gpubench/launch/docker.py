"""Docker containers through the Docker SDK: one container per server, always removed.

The port is published on 127.0.0.1 only, the model is mounted read-only, GPUs are requested
when the host has one, and every container carries labels naming this pytest process (pid and
start time) so a later run can find and remove leftovers of one that was SIGKILLed. Each
container is also in the run's record (``reaper``): the run's watchdog removes it the moment
pytest dies, the next run's sweep if the watchdog could not.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from pytest_gpubench.engines.base import Engine
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.launch import reaper
from pytest_gpubench.launch.base import DEFAULT_GRACE_S, StartRequest, shell_join
from pytest_gpubench.launch.cleanup import REGISTRY

LABEL = "pytest-gpubench"
LABEL_PID = "pytest-gpubench.pid"
LABEL_STARTED = "pytest-gpubench.pid-started"  # the pid's start time: a reused pid is not ours
MODEL_ROOT = "/models"
# Passed through from the host environment when set (values never logged).
PASS_THROUGH_ENV = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_OFFLINE",
    "NVIDIA_VISIBLE_DEVICES",
)


_orphans_checked = False


def docker_client():
    """A connected Docker SDK client, or a GpubenchError saying what is missing."""
    try:
        import docker
    except ImportError:
        raise GpubenchError(
            "launcher='docker' needs the Docker SDK: pip install 'pytest-gpubench[docker]'"
        ) from None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise GpubenchError(
            f"cannot reach the Docker daemon ({type(exc).__name__}: {exc}); start dockerd or "
            "set DOCKER_HOST"
        ) from None
    return client


def remove_orphans(client) -> list[str]:
    """Remove containers labelled by a pytest process that no longer exists."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        pid = container.labels.get(LABEL_PID, "")
        started = container.labels.get(LABEL_STARTED, "")
        if not pid.isdigit():
            continue
        try:
            gone = not reaper.alive(int(pid), float(started))
        except ValueError:  # no start-time label (an older run's container)
            gone = not _pid_alive(int(pid))
        if gone:
            with contextlib.suppress(Exception):
                container.remove(force=True)
                removed.append(container.name)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DockerHandle:
    def __init__(self, container, display: str, log, record_key: str | None = None) -> None:
        self.container = container
        self.ident = f"container {container.name}"
        self.record_key = record_key
        self.display_command = display
        self.log = log
        self._stopped = False
        self._code: int | None = None
        self._reader = threading.Thread(
            target=self._pump, name=f"gpubench-log-{container.name}", daemon=True
        )
        self._reader.start()

    def _pump(self) -> None:
        with contextlib.suppress(Exception):
            self.log.pump(self.container.logs(stream=True, follow=True))

    def poll(self) -> int | None:
        if self._stopped:
            return self._code
        try:
            self.container.reload()
        except Exception:
            return -1  # gone: removed behind our back
        state = self.container.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            return int(state.get("ExitCode", -1))
        return None

    def stop(self, grace_s: float = DEFAULT_GRACE_S) -> int | None:
        if self._stopped:
            return self._code
        with contextlib.suppress(Exception):
            self.container.stop(timeout=max(1, int(grace_s)))
        with contextlib.suppress(Exception):
            self.container.reload()
            self._code = int(self.container.attrs.get("State", {}).get("ExitCode", -1))
        with contextlib.suppress(Exception):
            self.container.remove(force=True)
        self._reader.join(timeout=5)
        self._stopped = True
        REGISTRY.discard(self)
        reaper.RUN.remove(self.record_key)
        self.log.note(f"stopped and removed {self.ident}, exit status {self._code}")
        return self._code


class DockerLauncher:
    """Runs the engine in a container of its image (``image=`` overrides it)."""

    name = "docker"

    def __init__(self, gpu: bool = False) -> None:
        self.gpu = gpu

    def resolve_executable(self, engine: Engine, explicit: str | Sequence[str] | None) -> list[str]:
        if explicit:
            return [explicit] if isinstance(explicit, str) else list(explicit)
        return list(engine.container_executable)

    def model_source(self, engine: Engine, source: str) -> str:
        path = Path(source).expanduser()
        return f"{MODEL_ROOT}/{path.name}" if path.exists() else source

    def bind_host(self, host: str) -> str:
        return "0.0.0.0"  # inside the container; the host side is published on ``host`` only

    def server_port(self, engine: Engine, host_port: int) -> int:
        return engine.default_port

    def start(self, request: StartRequest) -> DockerHandle:
        import docker

        client = docker_client()
        global _orphans_checked
        if not _orphans_checked:  # leftovers of a SIGKILLed run: once per process
            _orphans_checked = True
            for gone in remove_orphans(client):
                request.log.note(f"removed container {gone} left by a pytest run that was killed")
        engine = request.engine
        image = str(
            request.extra.get("image") or (engine.gpu_image if self.gpu else engine.default_image)
        )
        name = f"gpubench-{engine.name}-{uuid.uuid4().hex[:8]}"
        env = {k: os.environ[k] for k in PASS_THROUGH_ENV if os.environ.get(k)}
        env.update(request.env)
        env.update(request.secret_env)
        volumes = {}
        if request.model_path is not None:
            volumes[str(request.model_path.resolve())] = {
                "bind": f"{MODEL_ROOT}/{request.model_path.name}",
                "mode": "ro",
            }
        cport = engine.default_port
        kwargs = dict(request.extra.get("docker_options") or {})
        if self.gpu:
            kwargs.setdefault(
                "device_requests", [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
            )
        display_argv = [
            "docker", "run", "-d", "--name", name,
            "-p", f"{request.host}:{request.port}:{cport}",
            *[f"-v={src}:{v['bind']}:ro" for src, v in volumes.items()],
            *[f"-e={k}" for k in sorted(env)],
            *(["--gpus=all"] if self.gpu else []),
            f"--entrypoint={request.executable[0]}" if request.executable else "",
            image, *request.executable[1:], *request.argv,
        ]  # fmt: skip
        display = shell_join(request.log.redactor.argv([a for a in display_argv if a]))
        request.log.note(f"command: {display}")
        # recorded by name before it exists: a pytest killed during ``run`` leaves nothing either
        record_key = reaper.RUN.add_container(name, name, f"{engine.name} server container {name}")
        try:
            container = client.containers.run(
                image,
                command=[*request.executable[1:], *request.argv],
                entrypoint=request.executable[:1] or None,
                detach=True,
                name=name,
                environment=env,
                ports={f"{cport}/tcp": (request.host, request.port)},
                volumes=volumes,
                labels={
                    LABEL: "1",
                    LABEL_PID: str(os.getpid()),
                    LABEL_STARTED: repr(reaper.start_time(os.getpid())),
                },
                **kwargs,
            )
        except docker.errors.ImageNotFound:
            reaper.RUN.remove(record_key)
            raise GpubenchError(
                f"Docker image {image!r} not found locally and could not be pulled; pull or "
                "build it, or pass image=..."
            ) from None
        except docker.errors.APIError as exc:
            # created but not started (e.g. port taken): remove it before reporting
            with contextlib.suppress(Exception):
                client.containers.get(name).remove(force=True)
            reaper.RUN.remove(record_key)
            raise GpubenchError(
                f"docker could not start {image!r}: {exc.explanation or exc}"
            ) from None
        handle = DockerHandle(container, display, request.log, record_key)
        REGISTRY.add(handle)
        request.log.note(f"started {handle.ident}")
        return handle
