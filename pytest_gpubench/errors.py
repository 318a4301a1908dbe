"""The one exception type for mistakes a user can make.

The plugin turns it into ``pytest.UsageError``, the fixtures' calls (``usage_errors_fail``)
into a failed test with one line, and the console script into a one-line message on stderr with
exit status 2, so a bad flag, marker, argument, profile file or model id never shows a
traceback from inside the plugin.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class GpubenchError(Exception):
    """A user-facing problem: the message names the thing at fault and how to fix it."""


def usage_errors_fail(label: str) -> Callable[[F], F]:
    """Make a ``GpubenchError`` from inside ``fn`` fail the calling test with one line (the
    fixtures' methods: ``gpubench(...)``, ``serve_bench(...)``)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except GpubenchError as exc:
                problem = str(exc)  # failed outside the except block: no "during handling"
            import pytest  # here: the console script imports this module without pytest's need

            message = problem if problem.startswith(label) else f"{label}: {problem}"
            pytest.fail(message, pytrace=False)

        return inner  # type: ignore[return-value]

    return wrap
