"""Docker for tests on a machine with no registry: start ``dockerd`` when none runs, and make a
llama.cpp server image with ``docker import`` from a root filesystem assembled here.

The image holds ``/app/llama-server`` (the path of the upstream ``llama.cpp:server`` image, so
the engine's default container executable applies) and every shared library ``ldd`` names, at
the path the binary's ``$ORIGIN`` RUNPATH or the system loader expects. The model is not in it:
the Docker launcher mounts it read-only, as it would for any image.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_gpubench.engines.installed import engines_dir

LDD_LINE = re.compile(r"(?:(\S+) => )?(/\S+) \(0x[0-9a-f]+\)")
IMAGE_REPO = "gpubench-test/llama-server"


@dataclass
class DockerDaemon:
    client: object
    started: subprocess.Popen | None  # the dockerd this process started, if any

    def stop(self) -> None:
        """Stop a dockerd started here (never one that was already running)."""
        if self.started is None or self.started.poll() is not None:
            return
        self.started.terminate()
        try:
            self.started.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.started.kill()
            self.started.wait(timeout=10)


def _ping():
    import docker

    client = docker.from_env(timeout=30)
    client.ping()
    return client


def ensure_dockerd(wait_s: float = 60.0) -> DockerDaemon:
    """A reachable daemon: the running one, or a ``dockerd`` started here (root only).

    Raises RuntimeError naming what is missing (no dockerd binary, not root, did not start).
    """
    with contextlib.suppress(Exception):
        return DockerDaemon(_ping(), None)
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError("no Docker daemon and no dockerd binary: apt-get install docker.io")
    if os.geteuid() != 0:
        raise RuntimeError("no Docker daemon running, and starting dockerd needs root")
    log = engines_dir() / "dockerd.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        proc = subprocess.Popen(
            [dockerd], stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dockerd exited with status {proc.returncode}; see {log}")
        with contextlib.suppress(Exception):
            return DockerDaemon(_ping(), proc)
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"dockerd did not answer within {wait_s:g} s; see {log}")


def _libraries(binary: Path) -> list[tuple[str, Path]]:
    """(name the loader looks for, real file) for every library ldd resolves."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        m = LDD_LINE.search(line.strip())
        if m:
            libs.append((m.group(1) or Path(m.group(2)).name, Path(m.group(2))))
    return libs


def _add_file(tar: tarfile.TarFile, src: Path, dest: str, mode: int = 0o755) -> None:
    data = src.resolve().read_bytes()
    info = tarfile.TarInfo(dest.lstrip("/"))
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def build_llamacpp_image(client, binary: Path) -> str:
    """Import (once per binary) an image running ``/app/llama-server``; returns its tag."""
    binary = Path(binary).resolve()
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:12]
    tag = f"{IMAGE_REPO}:{digest}"
    with contextlib.suppress(Exception):
        client.images.get(tag)
        return tag
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        with tarfile.open(rootfs, "w") as tar:
            _add_file(tar, binary, "/app/llama-server")
            for name, real in _libraries(binary):
                if real.parent == binary.parent:  # the build's own libraries: $ORIGIN
                    _add_file(tar, real, f"/app/{name}")
                else:  # system libraries and the loader, where ldd found them
                    dest = str(real) if name.startswith("/") else str(real.parent / name)
                    _add_file(tar, real, dest)
            tmp_dir = tarfile.TarInfo("tmp")
            tmp_dir.type = tarfile.DIRTYPE
            tmp_dir.mode = 0o1777
            tar.addfile(tmp_dir)
        client.api.import_image_from_file(
            str(rootfs), repository=IMAGE_REPO, tag=digest, changes=["WORKDIR /app"]
        )
    return tag
