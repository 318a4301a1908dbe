"""Where progress lines go in a pytest run: pytest's terminal, with capture suspended."""

from __future__ import annotations

import contextlib
import shutil

import pytest

from pytest_gpubench.progress import Sink


def terminal_sink(config: pytest.Config, mode: str) -> Sink | None:
    """A sink on pytest's terminal writer, or None (``-q``, ``--gpubench-progress=off``).
    Not a terminal under ``auto``: permanent lines only (``progress.say``), no transient
    ones, which would fill a log with carriage returns."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or mode == "off" or config.get_verbosity() < 0:
        return None
    live = mode == "on" or reporter.isatty
    capman = config.pluginmanager.get_plugin("capturemanager")

    def suspended() -> contextlib.AbstractContextManager[object]:
        return capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()

    def write(text: str) -> None:
        reporter.write(text, flush=True)

    return Sink(
        write=write,
        suspended=suspended,
        newline=reporter.ensure_newline,
        width=max(40, min(shutil.get_terminal_size((100, 24)).columns, 160)),
        live=live,
    )
