"""Warnings attributed to the user's line, not to the plugin's frame that noticed them.

A ``ServingWarning`` raised three calls deep in ``serve_bench`` was reported at
``pytest_gpubench/errors.py:30`` (the usage-error wrapper) or inside ``serving/bench.py``: the
user saw where our code noticed it, not which of their calls it is about. A fixed
``stacklevel`` breaks whenever the call path changes (``serve_bench(...)`` and
``serve_bench.sweep(...)`` reach the same check at different depths), so the level is
counted: the first frame outside this package is the caller's.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parents[1]) + os.sep  # .../pytest_gpubench/


class ServingWarning(UserWarning):
    """A serving run measured something other than what was asked (short outputs, counts),
    or will not run as asked (a trace replay longer than the test's timeout). Here, below
    ``plan`` and ``aggregate``, so both can raise it; ``serving.bench`` exports it."""


def warn_at_caller(warning: Warning) -> None:
    """``warnings.warn(warning)`` at the nearest frame outside pytest_gpubench."""
    level = 2  # warnings.warn's 1 is this function; 2 is the frame that called it
    frame = sys._getframe(1)
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    warnings.warn(warning, stacklevel=level)
