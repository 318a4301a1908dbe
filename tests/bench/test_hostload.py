"""HostLoad measures CPU that other processes use, and not this process tree's own."""

from __future__ import annotations

import subprocess
import sys
import time

from pytest_gpubench.bench.hostload import HostLoad

SPIN = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end: pass\n"


def spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def foreign_spinner(seconds: float) -> subprocess.Popen:
    """A busy process outside this process tree: started through a shell that exits at once,
    so it is re-parented away from pytest (like another user's job)."""
    subprocess.run(
        ["sh", "-c", f"{sys.executable} -c '{SPIN.format(s=seconds)}' >/dev/null 2>&1 &"],
        check=True,
    )


def test_own_work_and_children_are_not_foreign() -> None:
    with HostLoad() as baseline:
        spin(0.5)
    child = subprocess.Popen([sys.executable, "-c", SPIN.format(s=1.0)])
    with HostLoad() as with_child:
        spin(0.8)
    child.wait()
    assert with_child.busy_cores is not None and baseline.busy_cores is not None
    # our own spinning child (a whole core) adds nothing to the foreign figure; other load on
    # the machine may move it a little either way
    assert with_child.busy_cores < baseline.busy_cores + 0.6


def test_a_process_outside_the_tree_is_counted() -> None:
    with HostLoad() as quiet:
        spin(0.6)
    foreign_spinner(2.0)
    time.sleep(0.2)
    with HostLoad() as busy:
        time.sleep(1.0)  # leave the core to the foreign process
    assert busy.busy_cores is not None and quiet.busy_cores is not None
    assert busy.busy_cores > 0.6  # the spinner had a core to itself while we slept
    assert busy.busy_cores > quiet.busy_cores
