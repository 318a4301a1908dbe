"""Free ports, and a clear error for a port that is taken or is not a TCP port."""

from __future__ import annotations

import os
import socket

import psutil

from pytest_gpubench.errors import GpubenchError


def worker_slot() -> tuple[int, int]:
    """(this pytest-xdist worker's number, the worker count); (0, 1) outside xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    try:
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        return (int(worker.removeprefix("gw")), count) if worker and count > 1 else (0, 1)
    except ValueError:
        return 0, 1


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now. Under pytest-xdist worker gwK of N takes only ports with
    ``port % N == K``: the OS may hand two workers the same just-freed port, and the worker
    that starts its server second would find it taken."""
    slot, count = worker_slot()
    for _ in range(64 * count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port % count == slot:
            return port
    for port in range(20000 + slot, 60000, count):  # the OS kept answering other slots
        if port_is_free(host, port):
            return port
    raise GpubenchError(f"no free TCP port on {host} for pytest-xdist worker gw{slot}")


def check_port(port: object) -> int:
    """``port`` as a TCP port number (1-65535), or a GpubenchError naming the argument."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise GpubenchError(
            f"port={port!r} is not a TCP port: give a whole number from 1 to 65535, or leave "
            "port unset so gpubench picks a free one"
        )
    return port


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except (OSError, OverflowError):  # OverflowError: a number that is not a port
            return False
        return True


def _owner(port: int) -> str:
    try:
        for conn in psutil.net_connections(kind="tcp"):
            listening = conn.status == psutil.CONN_LISTEN
            if conn.laddr and conn.laddr.port == port and listening and conn.pid:
                return f" by pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    except (psutil.Error, OSError):
        pass
    return ""


def require_free(host: str, port: int) -> None:
    check_port(port)
    if not port_is_free(host, port):
        raise GpubenchError(
            f"port {port} on {host} is already in use{_owner(port)}: stop what holds it, pass "
            "another port=..., or leave port unset so gpubench picks a free one"
        )
