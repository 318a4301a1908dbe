"""HostLoad measures CPU that other processes use, and not this process tree's own."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from pytest_gpubench.bench.hostload import HostLoad

SPIN = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end: pass\n"


def foreign_spinner(seconds: float) -> psutil.Process:
    """A busy process outside this process tree: started through a shell that exits at once,
    so it is re-parented away from pytest (like another user's job)."""
    out = subprocess.run(
        ["sh", "-c", f"{sys.executable} -c '{SPIN.format(s=seconds)}' >/dev/null 2>&1 & echo $!"],
        check=True,
        capture_output=True,
        text=True,
    )
    return psutil.Process(int(out.stdout.split()[-1]))


def cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


# /proc counts CPU time in 10 ms ticks, per process and for the host
TICKS = 0.05

# Both tests hold whatever else runs on the machine: other processes only add to the host's
# CPU time, and each bound below is one that other load can only make easier to meet.


def test_own_work_and_children_are_not_foreign() -> None:
    """Our spinning child's CPU is ours: the foreign figure is at most the host's CPU time
    less the child's, however busy the rest of the machine is."""
    child = psutil.Process(subprocess.Popen([sys.executable, "-c", SPIN.format(s=1.5)]).pid)
    host_before = psutil.cpu_times()
    with HostLoad() as with_child:
        c0 = cpu_s(child)
        time.sleep(0.8)  # leave the core to the child: we use next to nothing
        c1 = cpu_s(child)
    host_after = psutil.cpu_times()
    child.wait()
    host = sum(
        getattr(host_after, k) - getattr(host_before, k)
        for k in host_after._fields
        if k not in ("idle", "iowait", "guest", "guest_nice")
    )
    assert with_child.busy_cores is not None
    assert c1 - c0 > 2 * TICKS, "the child never ran"
    # busy x wall = host CPU - ours in the window; the window is >= 0.8 s and inside ours,
    # and ours includes the child's c1 - c0
    assert with_child.busy_cores * 0.8 <= host - (c1 - c0) + TICKS


def test_a_process_outside_the_tree_is_counted() -> None:
    """A foreign spinner's CPU time in the window is all in the foreign figure (other
    processes can only add to it)."""
    spinner = foreign_spinner(2.5)
    time.sleep(0.2)
    started = time.monotonic()
    with HostLoad() as busy:
        s0 = cpu_s(spinner)
        time.sleep(1.0)  # leave the core to the foreign process
        s1 = cpu_s(spinner)
    wall = time.monotonic() - started
    assert busy.busy_cores is not None
    assert s1 - s0 > 2 * TICKS, "the spinner never ran"
    assert busy.busy_cores * wall >= (s1 - s0) - TICKS
