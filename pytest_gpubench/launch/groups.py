"""The one way the plugin stops a process group it started: SIGTERM, then SIGKILL.

Servers (``launch/process.py``), torchrun jobs (``distributed/launcher.py``) and engine builds
(``launch/provision.py``) each run in a process group of their own, so that one signal reaches
every worker, compiler or rank they forked. All three stop it here, the same way: SIGTERM to
the group, up to ``grace_s`` for its leader to exit, then SIGKILL to whatever of the group is
still there (stragglers that outlived the leader too), so nothing keeps running or writing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time

#: seconds between SIGTERM (or ``docker stop``) and SIGKILL, unless the caller says otherwise
DEFAULT_GRACE_S = 10.0
#: seconds to wait for the leader after SIGKILL
KILL_WAIT_S = 5.0


def signal_group(pgid: int, sig: int) -> None:
    """``killpg``, quiet when the group is gone or not ours to signal."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_group(
    proc: subprocess.Popen, grace_s: float, stop_now: threading.Event | None = None
) -> int | None:
    """Stop ``proc``'s process group (``proc`` leads it: started with ``start_new_session``
    or ``setsid``); its exit status, or None if it outlived SIGKILL's wait. ``stop_now`` ends
    the grace period early when set (a second Ctrl-C while servers stop)."""
    if proc.poll() is None:
        signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and proc.poll() is None:
            if stop_now is not None and stop_now.is_set():
                break
            time.sleep(0.05)
    signal_group(proc.pid, signal.SIGKILL)  # the leader if it ignored SIGTERM, and stragglers
    try:
        return proc.wait(timeout=KILL_WAIT_S)
    except subprocess.TimeoutExpired:
        return None
