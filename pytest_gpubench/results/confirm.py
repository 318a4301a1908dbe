"""Re-measure a suspected regression before it fails the test: a bounded confirmation re-run.

A timing on a shared machine moves 10-20% from run to run, so one slow measurement is not yet
a regression. ``run_test`` runs a test as pytest's own ``runtestprotocol`` does, but after the
call phase asks whether the result is a suspect; if so it tears down only the test's own
function-scoped fixtures (module and session ones, such as a started inference server, stay),
forgets the first measurement and runs the test again, at most ``confirm_runs`` times. Only
the last attempt's reports are logged, so the terminal, JUnit XML and the baseline see one
outcome per test, and its measurement is the one recorded.

Uses ``_pytest.runner.call_and_report`` as pytest-rerunfailures does; pytest has no public
API for re-running a test inside one session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _pytest.runner import call_and_report, show_test_item


class _SameTestAgain:
    """The 'next item' for a teardown between attempts: its chain is the test's parents, so
    teardown_exact removes only the test's function-scoped fixtures."""

    def __init__(self, item: pytest.Item) -> None:
        self._chain = item.listchain()[:-1]

    def listchain(self) -> list[Any]:
        return self._chain


def _attempt(
    item: pytest.Item, nextitem: pytest.Item | None, final: Callable[[], bool]
) -> tuple[list[pytest.TestReport], bool]:
    hasrequest = hasattr(item, "_request")
    if hasrequest and not item._request:  # type: ignore[attr-defined]
        item._initrequest()  # type: ignore[attr-defined]
    reports = [call_and_report(item, "setup", log=False)]
    if reports[0].passed:
        if item.config.getoption("setupshow", False):
            show_test_item(item)
        if not item.config.getoption("setuponly", False):
            reports.append(call_and_report(item, "call", log=False))
    last = final()
    after = nextitem if last else _SameTestAgain(item)
    reports.append(call_and_report(item, "teardown", log=False, nextitem=after))  # type: ignore[arg-type]
    if hasrequest:
        item._request = False  # type: ignore[attr-defined]
        item.funcargs = None  # type: ignore[attr-defined]
    return reports, last


def run_test(
    item: pytest.Item,
    nextitem: pytest.Item | None,
    confirm_runs: int,
    wants_rerun: Callable[[], bool],
    forget: Callable[[], None],
) -> bool:
    """Run ``item``, re-running it while ``wants_rerun()`` says its result is a suspect and
    re-runs are left; ``forget`` drops the previous attempt's measurement before each re-run."""
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    attempt = 0
    while True:
        reruns_left = attempt < confirm_runs
        reports, last = _attempt(
            item, nextitem, lambda left=reruns_left: not (left and wants_rerun())
        )
        if last:
            break
        attempt += 1
        forget()
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
