"""How busy the host was with other work while a benchmark ran: CPU cores used by processes
outside this pytest run.

Measured on the shared 2-core development machine, the whole CPU-sized suite ran 1.5-2.4x
slower while another test suite ran beside it, and identically (within 9%) when it did not:
such a run says nothing about the code. The baseline check uses this figure to call a
confirmed slowdown inconclusive instead of a regression when the host was busy.

``busy = (CPU time of the whole host - CPU time of this process tree) / wall time``, from
``/proc`` through psutil at the start and the end of the timed rounds: short-lived foreign
processes (compilers) count, which sampling processes one by one would miss. Processes under
a ``containerd-shim`` count as ours (a benchmarked server may run in Docker), so on a host
that runs other containers the figure is a floor.
"""

from __future__ import annotations

import contextlib
import time

import psutil


def _host_busy_s() -> float:
    t = psutil.cpu_times()
    return sum(
        v for k, v in t._asdict().items() if k not in ("idle", "iowait", "guest", "guest_nice")
    )


def _process_s(p: psutil.Process, with_children: bool) -> float:
    try:
        t = p.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    own = t.user + t.system
    return own + (t.children_user + t.children_system if with_children else 0.0)


def _ours() -> dict[int, psutil.Process]:
    me = psutil.Process()
    procs = {me.pid: me}
    with contextlib.suppress(psutil.Error):
        procs.update({c.pid: c for c in me.children(recursive=True)})
    for p in psutil.process_iter(["name"]):
        if str(p.info.get("name") or "").startswith("containerd-shim"):
            try:
                procs.update({c.pid: c for c in p.children(recursive=True)})
            except psutil.Error:
                continue
    return procs


class HostLoad:
    """``with HostLoad() as load: ...`` then ``load.busy_cores``."""

    def __enter__(self) -> HostLoad:
        self._wall = time.monotonic()
        self._host = _host_busy_s()
        self._procs = _ours()
        self._start = {
            pid: _process_s(p, pid == psutil.Process().pid) for pid, p in self._procs.items()
        }
        self.busy_cores: float | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._wall
        host = _host_busy_s() - self._host
        me = psutil.Process().pid
        procs = {**self._procs, **_ours()}
        ours = sum(_process_s(p, pid == me) - self._start.get(pid, 0.0) for pid, p in procs.items())
        if wall > 0.05:  # shorter spans are below /proc's 10 ms resolution
            self.busy_cores = max(host - max(ours, 0.0), 0.0) / wall
