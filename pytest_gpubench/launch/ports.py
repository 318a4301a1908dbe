"""Free ports, and a clear error for a port that is taken or is not a TCP port."""

from __future__ import annotations

import socket

import psutil

from pytest_gpubench.errors import GpubenchError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


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
