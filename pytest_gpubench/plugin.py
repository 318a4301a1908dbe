"""pytest hooks only: options, markers, collection-time skips, header and terminal summary.

Each hook delegates to a module that does one job; the run's state lives in one
``RunState`` on ``config.stash``.

Free when unused: pytest loads this module in every run of every project in an environment
that has the plugin installed, so it imports only what every run needs (options, device
profiles, the marker help) and everything else inside the hook that uses it. The device is
probed (NVML) and baselines are read only when an option, a marker or a fixture asks;
``scripts/plugin_overhead.py`` measures what a run that uses none of them pays.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING, Any

import pytest

from pytest_gpubench import progress
from pytest_gpubench.devices.profile import load_profiles
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.report.progress_sink import terminal_sink
from pytest_gpubench.selection.marker_help import (
    marker_lines,
    plugin_marker_names,
    uses_plugin_markers,
)
from pytest_gpubench.settings import (
    Settings,
    add_late_spellings,
    add_options,
    foreign_device_option,
    settings_from_config,
)
from pytest_gpubench.state import STATE, RunState, state

if TYPE_CHECKING:
    from pytest_gpubench.devices import ProfileSet, SelectedDevice
    from pytest_gpubench.engines.registry import Scope
    from pytest_gpubench.results.locations import PerGpuMachineId

# Fixture modules, one per concern, registered with this plugin. Each concern's fixtures and
# hooks live in the fixtures layer. Not through ``pytest_plugins``: pytest looks each name of
# that list up among every installed distribution's entry points first, which cost ~8 ms per
# module on the 2-core machine (scripts/plugin_overhead.py), paid by every pytest run.
FIXTURE_MODULES = (
    "pytest_gpubench.fixtures.bench",
    "pytest_gpubench.fixtures.distributed",
    "pytest_gpubench.fixtures.workloads",
    "pytest_gpubench.fixtures.launch",
    "pytest_gpubench.fixtures.serving",
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_gpubench import hookspec

    pluginmanager.add_hookspecs(hookspec)
    for name in FIXTURE_MODULES:  # as pytest_plugins would, without the entry-point scan
        pluginmanager.import_plugin(name)


@pytest.hookimpl(trylast=True)  # after other plugins: leave them the spellings they own
def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)
    if _xdist_missing(parser):  # `-n 2` without pytest-xdist: say what to install
        parser.getgroup("gpubench")._addoption(  # as xdist does: -n is lowercase
            "-n", "--numprocesses", dest="gpubench_no_xdist", default=None, help=NO_XDIST
        )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """Every installed plugin has declared its options by now: take the spellings they left."""
    add_late_spellings(parser)


NO_XDIST = "pytest-xdist is not installed: pip install pytest-xdist to run tests in parallel"


def _xdist_missing(parser: pytest.Parser) -> bool:
    if importlib.util.find_spec("xdist") is not None:
        return False  # installed: nothing to declare, and no need to load the workers module
    from pytest_gpubench.results import workers

    return workers.xdist_missing(parser)


def _xdist(config: pytest.Config) -> bool:
    """Whether pytest-xdist runs this session (as its controller or one of its workers)."""
    return hasattr(config, "workerinput") or config.getoption("dist", "no") != "no"


def _worker_id(config: pytest.Config) -> str | None:
    workerinput = getattr(config, "workerinput", None)
    return workerinput.get("workerid") if workerinput else None


def _is_controller(config: pytest.Config) -> bool:
    return _worker_id(config) is None and config.getoption("dist", "no") != "no"


ENGINE_SCOPE: pytest.StashKey[Scope] = pytest.StashKey()
MACHINE_ID: pytest.StashKey[PerGpuMachineId] = pytest.StashKey()
# pytest-benchmark options that read or write its storage folder, which names the hardware
STORAGE_OPTIONS = ("benchmark_save", "benchmark_autosave", "benchmark_compare")


def _register(config: pytest.Config) -> Any:
    """The ``register`` a ``pytest_gpubench_register_engines`` hook gets: the registry is
    loaded only when some plugin or conftest.py registers an engine."""

    def register(engine: Any, *, replace: bool = False) -> Any:
        scope = config.stash.get(ENGINE_SCOPE, None)
        if scope is None:
            from pytest_gpubench.engines import registry

            scope = config.stash[ENGINE_SCOPE] = registry.Scope()
        return scope.register(engine, replace=replace)

    return register


def _selector(settings: Settings, profiles: ProfileSet):
    def select() -> SelectedDevice:
        from pytest_gpubench.devices import detect, select_device

        try:
            return select_device(settings.device, settings.device_source, profiles, detect())
        except GpubenchError as exc:
            raise pytest.UsageError(str(exc)) from None

    return select


def _measure_ceilings() -> Any:
    from pytest_gpubench.bench.ceilings import measure

    return measure()


def _wants_device_now(config: pytest.Config, settings: Settings) -> bool:
    """Options whose mistakes must stop the run before it starts, or that shape the run."""
    return bool(
        settings.plan
        or settings.baseline
        or settings.save_baseline
        or settings.compare_to
        or settings.gpu_per_worker
        or _xdist(config)
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    try:
        config.hook.pytest_gpubench_register_engines(register=_register(config))
        added = [
            ("a plugin's pytest_gpubench_add_profiles", table)
            for table in config.hook.pytest_gpubench_add_profiles(config=config)
            if table
        ]
        settings = settings_from_config(config)
        profiles = load_profiles(settings.profiles_file, added)
        if settings.device.strip().lower() != "auto":
            profiles.get(settings.device)  # an unknown name fails now, not at first use
        run = RunState(settings, profiles, _selector(settings, profiles), _measure_ceilings)
        if config.getoption("gpubench_no_xdist", None) is not None:
            raise GpubenchError(
                "-n needs pytest-xdist, which is not installed: pip install pytest-xdist "
                "(or pytest-gpubench[xdist])"
            )
        if _wants_device_now(config, settings):
            _prepare(config, run)
    except GpubenchError as exc:
        raise pytest.UsageError(str(exc)) from None
    for line in marker_lines(profiles):
        config.addinivalue_line("markers", line)
    # before pytest-benchmark's trylast configure builds its session and storage
    if any(config.getoption(name, None) for name in STORAGE_OPTIONS):
        from pytest_gpubench.results import locations

        machine_id = config.stash[MACHINE_ID] = locations.PerGpuMachineId(
            locations.hardware_slug(profiles, run.device)
        )
        machine_id.install()
    config.stash[STATE] = run


def _prepare(config: pytest.Config, run: RunState) -> None:
    """Device, baselines and xdist set-up now: their options are in use."""
    from pytest_gpubench.results import workers

    run.used = True
    _ = run.baselines  # vets the baseline to compare with and the save target
    if run.settings.plan and workers.is_controller(config):
        workers.run_serially(config)  # the plan runs nothing: collect here, not in workers
    if run.settings.gpu_per_worker and workers.worker_id(config) is None:
        workers.check_gpu_count(config, run.device)
    elif run.settings.gpu_per_worker:  # after prepare: the whole machine names the baselines
        run.device, run.gpu = workers.pin(config, run.device)
    if workers.is_controller(config):  # each test's results as its worker finishes it
        receiver = workers.Receiver(config, run.baselines, run.verdicts, run.merged)
        config.pluginmanager.register(receiver, "gpubench-xdist-receiver")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Progress lines through pytest's terminal reporter, on a terminal and not under -q."""
    config = session.config
    progress.install(terminal_sink(config, state(config).settings.progress))
    if any(config.getoption(name, None) for name in (*STORAGE_OPTIONS, "benchmark_json")):
        from pytest_gpubench.results import locations

        locations.guard_benchmark_saves(config)  # pytest-benchmark's session: after configure
    if _worker_id(config) is not None:
        from pytest_gpubench.results import workers

        workers.enable_benchmarks(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    from pytest_gpubench.devices.select import describe

    run = state(config)
    dev = run.device
    owner = foreign_device_option(config)
    lines = (
        [
            f"gpubench: --device belongs to the {owner!r} plugin here; choose the benchmark "
            "device with --gpubench-device"
        ]
        if owner
        else []
    )
    lines += [
        f"gpubench: device {dev.name} ({describe(dev.profile)}) from {dev.chosen_by}"
        + (" (auto-detected)" if dev.requested == "auto" else ""),
        f"gpubench: detected {dev.detection.summary}",
    ]
    if dev.mismatch:
        lines.append(f"gpubench: WARNING {dev.mismatch}")
    if _is_controller(config):
        from pytest_gpubench.results import workers

        lines += workers.header_lines(config, run.settings.gpu_per_worker, dev)
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run = state(config)
    names = plugin_marker_names(run.profiles)
    marked = [item for item in items if uses_plugin_markers(item, names)]
    if not marked:
        return  # no test asks anything of the device: nothing to parse or judge
    from pytest_gpubench.selection import markers
    from pytest_gpubench.selection.fit import judge

    run.used = True
    for item in marked:
        try:
            req = markers.requirements(item, run.profiles)
            markers.tolerances(item)
            if not req.devices and req.vram_gib is None and req.model is None and not req.gpus:
                continue
            present = None if run.settings.plan else len(run.device.detection.gpus)
            verdict = judge(item.nodeid, req, run.device.profile, present)
        except GpubenchError as exc:
            raise pytest.UsageError(str(exc)) from None
        run.verdicts[item.nodeid] = verdict
        if not verdict.runs:
            item.add_marker(pytest.mark.skip(reason=verdict.reason))


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """With --gpubench-plan, print the fit table for every collected test and run nothing."""
    run = state(session.config)
    if not run.settings.plan:
        return None
    from pytest_gpubench.report.fit_report import plan_lines
    from pytest_gpubench.selection.fit import Verdict

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    verdicts = [
        run.verdicts.get(item.nodeid) or Verdict(item.nodeid, run.device.name, True)
        for item in session.items
    ]
    if reporter is not None:
        reporter.write_sep("=", "gpubench plan")
        for line in plan_lines(run.device, verdicts):
            reporter.write_line(line)
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Against a baseline, a suspected regression is re-measured before it fails the test."""
    run = state(item.config)
    if not run.settings.baseline or run.settings.confirm_runs < 1:
        return None  # no baseline to compare with (then ``baselines.compare`` is None too)
    from pytest_gpubench.results import confirm
    from pytest_gpubench.results.record import forget

    return confirm.run_test(
        item,
        nextitem,
        run.settings.confirm_runs,
        wants_rerun=lambda: run.baselines.take_rerun(item.nodeid),
        forget=lambda: forget(item.config, item.nodeid),
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A benchmark that regressed against the baseline fails itself, with the numbers."""
    report = yield
    run = state(item.config)
    if report.when == "call" and report.passed and run.settings.baseline:
        from pytest_gpubench.results import baseline_run
        from pytest_gpubench.results.record import records

        recorded = {r.nodeid: r for r in records(item.config)}.get(item.nodeid)
        done = len(run.baselines.attempts.get(item.nodeid, []))
        message = baseline_run.check(
            run.baselines,
            item,
            recorded.metrics if recorded else {},
            run.settings.tolerance,
            reruns_left=max(run.settings.confirm_runs - done, 0),
        )
        if message:
            report.outcome = "failed"
            report.longrepr = message
    if run.has_baselines:  # built at configure whenever an option saves or compares
        run.baselines.note(report)
    if report.when == "teardown" and _worker_id(item.config) is not None:
        from pytest_gpubench.results import workers

        # under xdist: the test's results go with its last report, as the test ends
        shipped = workers.ship_test(item, run.baselines, run.verdicts, run.gpu)
        if shipped:
            setattr(report, workers.REPORT_KEY, shipped)
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    run = state(session.config)
    if _worker_id(session.config) is not None:  # the controller saves, once
        from pytest_gpubench.results import workers

        workers.pack(session.config, session.items, run.baselines, run.verdicts, run.gpu)
        return
    if not run.settings.save_baseline:
        return
    from pytest_gpubench.results import baseline_run

    try:
        saved = baseline_run.save(session.config, run.baselines, run.device, run.verdicts)
    except GpubenchError as exc:
        raise pytest.UsageError(str(exc)) from None
    run.saved_baseline = str(saved or "")
    if run.baselines.save_error and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # asked to save, and it did not


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist, on the controller: merge what a finished worker measured."""
    run = state(node.config)
    run.merged.add(node.config, run.baselines, run.verdicts, getattr(node, "workeroutput", None))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` with --gpubench-gpu-per-worker: one worker per GPU."""
    if not config.getoption("gpubench_gpu_per_worker", None):
        return None
    from pytest_gpubench.devices import detect
    from pytest_gpubench.results import workers

    return workers.gpu_count(detect()) or None


def _has_results(config: pytest.Config, run: RunState) -> bool:
    """Whether the run has anything for the end-of-run sections. Results are recorded
    through ``results.record``: a run that never loaded it has none."""
    return bool(
        run.used
        or run.verdicts
        or run.has_baselines
        or _is_controller(config)
        or "pytest_gpubench.results.record" in sys.modules
    )


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    run = state(config)
    if run.settings.plan or not _has_results(config, run):
        return
    from pytest_gpubench.report.baseline_report import baseline_lines, comparison_lines
    from pytest_gpubench.report.summary import did_not_fit_section, results_section
    from pytest_gpubench.results.record import records

    for line in baseline_lines(run.baselines, run.saved_baseline):
        terminalreporter.write_line(line)
    if run.baselines.compare_to:
        lines = comparison_lines(config, run.baselines, run.device, run.verdicts)
        if lines:
            terminalreporter.write_sep("=", "gpubench comparison")
            for line in lines:
                terminalreporter.write_line(line)
    verbosity = config.get_verbosity()
    sections = results_section(
        records(config), run.device, verbosity, run.merged.gpus, _is_controller(config)
    )
    sections += did_not_fit_section(run.verdicts.values(), run.device, verbosity)
    for title, lines in sections:
        if title:
            terminalreporter.write_sep("=", title)
        for line in lines:
            terminalreporter.write_line(line)


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Tests that -m or -k deselected are not this run's: no did-not-fit row for them."""
    if items:
        verdicts = state(items[0].config).verdicts
        for item in items:
            verdicts.pop(item.nodeid, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    progress.install(None)
    scope = config.stash.get(ENGINE_SCOPE, None)
    if scope is not None:
        scope.close()
    machine_id = config.stash.get(MACHINE_ID, None)
    if machine_id is not None:
        machine_id.restore()


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Record the device profile and the detected GPU with every pytest-benchmark result.

    Only stable facts go in (no clocks, temperatures or used memory), or pytest-benchmark's
    machine_info comparison would warn on every run of the same machine.
    """
    from pytest_gpubench.results.record import gpu_machine_info

    run = state(config)
    machine_info["gpu"] = gpu_machine_info(run.device)
    machine_info["gpubench"] = {
        "device": run.device.name,
        "detected": run.device.detection.as_dict(),
    }
