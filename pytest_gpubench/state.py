"""The run's state: settings, device, fit verdicts and baselines, built once per pytest run.

``plugin.pytest_configure`` stores one ``RunState`` on ``config.stash``; fixtures and hooks
read it through ``state(config)`` from here, so nothing imports the plugin module back.

Only the settings and the profiles are read at configure time. The device (NVML detection)
and the baselines are built the first time something asks for them, so a pytest run that
uses no marker, fixture or option of this plugin never probes the GPU nor imports what the
baselines need. Anything that must fail early (an unknown ``--device``, a baseline option
pointing at a bad file) is asked for at configure by the plugin, which knows the options.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pytest

from pytest_gpubench.settings import Settings

if TYPE_CHECKING:
    from pytest_gpubench.devices import ProfileSet, SelectedDevice
    from pytest_gpubench.results.baseline_run import BaselineRun
    from pytest_gpubench.results.workers import Merged
    from pytest_gpubench.selection.fit import Verdict


@dataclass
class RunState:
    settings: Settings
    profiles: ProfileSet
    # builds the selected device (probing NVML) when first asked; see ``device``
    select: Callable[[], SelectedDevice]
    # the device's copy bandwidth and matmul rate, measured once when a benchmark asks; handed
    # in by the plugin (the measurer lives above this module, in bench/)
    measure_ceilings: Callable[[], Any] = lambda: None
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    saved_baseline: str = ""
    gpu: dict = field(default_factory=dict)  # the GPU an xdist worker is pinned to
    # changes random prompts' text from run to run (serving/requests.py RequestFactory)
    prompt_nonce: int = field(default_factory=lambda: int.from_bytes(os.urandom(4), "big"))
    # set by every fixture of the plugin and by tests carrying its markers: the end-of-run
    # summaries have something to say only then
    used: bool = False
    _ceilings: list[Any] = field(default_factory=list)

    @cached_property
    def device(self) -> SelectedDevice:
        """The selected device, detected on first use (NVML costs a run that needs no GPU)."""
        return self.select()

    @cached_property
    def baselines(self) -> BaselineRun:
        """The baseline to compare with and the save target; an empty one without options."""
        from pytest_gpubench.results.baseline_run import prepare

        return prepare(self.settings, self.profiles, self.device)

    @property
    def has_baselines(self) -> bool:
        """Whether ``baselines`` was built (reading it would build it)."""
        return "baselines" in self.__dict__

    @cached_property
    def merged(self) -> Merged:
        """On the xdist controller: what the workers measured."""
        from pytest_gpubench.results.workers import Merged

        return Merged()

    def ceilings(self) -> Any:
        """The device's measured copy bandwidth and matmul rate (--gpubench-measure-ceilings),
        measured the first time a benchmark asks, then reused for the whole run."""
        if not self.settings.measure_ceilings:
            return None
        if not self._ceilings:
            self._ceilings.append(self.measure_ceilings())
        return self._ceilings[0]


STATE = pytest.StashKey[RunState]()


def state(config: pytest.Config) -> RunState:
    """This run's state (set by the plugin's ``pytest_configure``)."""
    return config.stash[STATE]
