"""The one registry of everything the plugin started, and the paths that empty it.

Stopping must not depend on a test finishing normally. Handles register here the moment they
exist; the registry is emptied by the session fixture's finalizer (end of run, failing
fixtures and tests), by ``pytest_unconfigure`` (Ctrl-C and SIGTERM, which the plugin turns into
KeyboardInterrupt so pytest unwinds; a second Ctrl-C then only hurries the stopping, see
``shield_teardown``), and by ``atexit`` as a last resort. For the case no
Python code sees, pytest killed with SIGKILL, each handle is also in the run's record on disk
and a watchdog process stops the whole tree (see ``reaper``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from pytest_gpubench.launch.groups import DEFAULT_GRACE_S

if TYPE_CHECKING:
    from pytest_gpubench.launch.base import Handle

# The run record (``reaper``) is loaded by what starts processes, not here: every pytest run
# imports this module, and one that starts nothing has no record to close.
REAPER = "pytest_gpubench.launch.reaper"


class Registry:
    def __init__(self) -> None:
        self._handles: list[Handle] = []
        self._lock = threading.Lock()

    def add(self, handle: Handle) -> None:
        with self._lock:
            self._handles.append(handle)

    def discard(self, handle: Handle) -> None:
        with self._lock:
            if handle in self._handles:
                self._handles.remove(handle)

    def live(self) -> list[Handle]:
        with self._lock:
            return list(self._handles)

    def stop_all(self, grace_s: float = DEFAULT_GRACE_S) -> list[str]:
        """Stop every handle, newest first; returns one line per failure (never raises)."""
        problems: list[str] = []
        for handle in reversed(self.live()):
            try:
                handle.stop(grace_s)
            except BaseException as exc:  # a second Ctrl-C must not leave the rest running
                problems.append(f"{handle.ident}: {type(exc).__name__}: {exc}")
            finally:
                self.discard(handle)
        return problems


REGISTRY = Registry()
atexit.register(REGISTRY.stop_all)


def stop_first_at_exit() -> None:
    """Register ``stop_all`` again, so that it runs before whatever ``atexit`` got since (the
    reaper's ``RUN.close``, registered when the reaper is imported after this module):
    processes are stopped gracefully before their record is handed to the watchdog."""
    atexit.unregister(REGISTRY.stop_all)
    atexit.register(REGISTRY.stop_all)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as KeyboardInterrupt so pytest unwinds and runs every finalizer."""


# Set by a second Ctrl-C while pytest unwinds from the first: servers still stopping get no
# more grace (ProcessHandle.stop sends SIGKILL at once).
STOP_NOW = threading.Event()
SECOND_CTRL_C = (
    "\npytest-gpubench: Ctrl-C again: stopping the servers now, without their grace period\n"
)

_previous: Any = None
_installed = False
_previous_sigint: Any = None
_shielded = False
# pytest runs nest (pytester's in-process runs): only the outermost restores the handler and
# empties the registry, or an inner run would stop the outer run's servers.
_depth = 0


def outermost() -> bool:
    """No run has entered yet in this process (pytester's inner runs come later)."""
    return _depth == 0


def _on_sigterm(signum: int, frame: object) -> None:
    # Ignore further SIGTERMs while unwinding so the clean-up itself is not cut short;
    # SIGKILL still works, and the run's watchdog handles that case.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(f"received signal {signum} (SIGTERM)")


def _on_second_interrupt(signum: int, frame: object) -> None:
    if not STOP_NOW.is_set():
        STOP_NOW.set()
        with contextlib.suppress(OSError):
            os.write(2, SECOND_CTRL_C.encode())


def shield_teardown() -> None:
    """pytest unwinds from a Ctrl-C or SIGTERM: from now on Ctrl-C hurries the teardown
    instead of aborting it. A second Ctrl-C used to raise KeyboardInterrupt out of the
    session's finalizer while it waited for a server to stop: a traceback through pytest's
    hooks, no results summary, and the servers left to ``atexit``. Now it only ends the
    servers' grace period; the run still ends as interrupted. Outermost run, main thread."""
    global _previous_sigint, _shielded
    if _shielded or _depth != 1 or sys.platform == "win32":
        return
    if threading.current_thread() is not threading.main_thread():
        return
    _previous_sigint = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, _on_second_interrupt)
    _shielded = True


def _unshield() -> None:
    global _shielded
    if _shielded and threading.current_thread() is threading.main_thread():
        previous = _previous_sigint if _previous_sigint is not None else signal.default_int_handler
        signal.signal(signal.SIGINT, previous)
        _shielded = False
    STOP_NOW.clear()


def enter_run() -> None:
    """A pytest run starts: turn SIGTERM into KeyboardInterrupt (Ctrl-C already is one), once,
    from the main thread, and only where nobody else handles SIGTERM."""
    global _depth, _previous, _installed
    _depth += 1
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    if sys.platform == "win32":
        return
    current = signal.getsignal(signal.SIGTERM)
    if current not in (signal.SIG_DFL, None):
        return
    _previous = current
    signal.signal(signal.SIGTERM, _on_sigterm)
    _installed = True


def leave_run() -> None:
    """A pytest run ends: the outermost one stops whatever is left and restores SIGTERM."""
    global _depth, _installed
    _depth = max(0, _depth - 1)
    if _depth:
        return
    try:
        REGISTRY.stop_all()
        reaper = sys.modules.get(REAPER)  # never imported: nothing was started, no record
        if reaper is not None:
            reaper.RUN.close()  # the record is empty now: the watchdog exits
    finally:
        _unshield()
        if _installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _previous if _previous is not None else signal.SIG_DFL)
            _installed = False
