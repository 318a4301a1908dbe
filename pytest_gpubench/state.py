"""The run's state: settings, device, fit verdicts and baselines, built once per pytest run.

``plugin.pytest_configure`` stores one ``RunState`` on ``config.stash``; fixtures and hooks
read it through ``state(config)`` from here, so nothing imports the plugin module back.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import pytest

from pytest_gpubench.bench.ceilings import Ceilings
from pytest_gpubench.bench.ceilings import measure as measure_ceilings
from pytest_gpubench.devices import ProfileSet, SelectedDevice
from pytest_gpubench.results.baseline_run import BaselineRun
from pytest_gpubench.results.workers import Merged
from pytest_gpubench.selection.fit import Verdict
from pytest_gpubench.settings import Settings


@dataclass
class RunState:
    settings: Settings
    profiles: ProfileSet
    device: SelectedDevice
    baselines: BaselineRun
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    saved_baseline: str = ""
    gpu: dict = field(default_factory=dict)  # the GPU an xdist worker is pinned to
    merged: Merged = field(default_factory=Merged)  # on the xdist controller: the workers'
    # changes random prompts' text from run to run (serving/requests.py RequestFactory)
    prompt_nonce: int = field(default_factory=lambda: secrets.randbits(32))
    _ceilings: list[Ceilings | None] = field(default_factory=list)

    def ceilings(self) -> Ceilings | None:
        """The device's measured copy bandwidth and matmul rate (--gpubench-measure-ceilings),
        measured the first time a benchmark asks, then reused for the whole run."""
        if not self.settings.measure_ceilings:
            return None
        if not self._ceilings:
            self._ceilings.append(measure_ceilings())
        return self._ceilings[0]


STATE = pytest.StashKey[RunState]()


def state(config: pytest.Config) -> RunState:
    """This run's state (set by the plugin's ``pytest_configure``)."""
    return config.stash[STATE]
