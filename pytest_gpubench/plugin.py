"""pytest hooks only: options, markers, collection-time skips, header and terminal summary.

Each hook delegates to a module that does one job; the run's state lives in one
``RunState`` on ``config.stash``.
"""

from __future__ import annotations

import pytest

from pytest_gpubench import progress
from pytest_gpubench.devices import (
    describe,
    detect,
    load_profiles,
    select_device,
)
from pytest_gpubench.engines import registry
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.report.baseline_report import baseline_lines, comparison_lines
from pytest_gpubench.report.fit_report import plan_lines
from pytest_gpubench.report.progress_sink import terminal_sink
from pytest_gpubench.report.summary import did_not_fit_section, results_section
from pytest_gpubench.results import baseline_run, confirm, locations, workers
from pytest_gpubench.results.record import forget, gpu_machine_info, records
from pytest_gpubench.selection import markers
from pytest_gpubench.selection.fit import Verdict, judge
from pytest_gpubench.settings import add_options, foreign_device_option, settings_from_config
from pytest_gpubench.state import STATE, RunState, state

# Fixture modules, one per concern, loaded with this plugin (pytest honours ``pytest_plugins``
# in a plugin module). Each concern's fixtures and hooks live beside its code, not here.
pytest_plugins: list[str] = [
    "pytest_gpubench.bench.fixture",
    "pytest_gpubench.distributed.fixtures",
    "pytest_gpubench.workloads.fixtures",
    "pytest_gpubench.launch.fixtures",
    "pytest_gpubench.serving.fixture",
]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_gpubench import hookspec

    pluginmanager.add_hookspecs(hookspec)


@pytest.hookimpl(trylast=True)  # after other plugins: leave them the spellings they own
def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)
    if workers.xdist_missing(parser):  # `-n 2` without pytest-xdist: say what to install
        parser.getgroup("gpubench")._addoption(  # as xdist does: -n is lowercase
            "-n", "--numprocesses", dest="gpubench_no_xdist", default=None, help=NO_XDIST
        )


NO_XDIST = "pytest-xdist is not installed: pip install pytest-xdist to run tests in parallel"


ENGINE_SCOPE = pytest.StashKey[registry.Scope]()
MACHINE_ID = pytest.StashKey[locations.PerGpuMachineId]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    scope = config.stash[ENGINE_SCOPE] = registry.Scope()
    try:
        config.hook.pytest_gpubench_register_engines(register=scope.register)
        added = [
            ("a plugin's pytest_gpubench_add_profiles", table)
            for table in config.hook.pytest_gpubench_add_profiles(config=config)
            if table
        ]
        settings = settings_from_config(config)
        profiles = load_profiles(settings.profiles_file, added)
        device = select_device(settings.device, settings.device_source, profiles, detect())
        baselines = baseline_run.prepare(settings, profiles, device)
        gpu: dict = {}
        if settings.plan and workers.is_controller(config):
            workers.run_serially(config)  # the plan runs nothing: collect here, not in workers
        if config.getoption("gpubench_no_xdist", None) is not None:
            raise GpubenchError(
                "-n needs pytest-xdist, which is not installed: pip install pytest-xdist "
                "(or pytest-gpubench[xdist])"
            )
        if settings.gpu_per_worker and workers.worker_id(config) is None:
            workers.check_gpu_count(config, device)
        elif settings.gpu_per_worker:  # after prepare: the whole machine names the baselines
            device, gpu = workers.pin(config, device)
    except GpubenchError as exc:
        raise pytest.UsageError(str(exc)) from None
    for line in markers.marker_lines(profiles):
        config.addinivalue_line("markers", line)
    # before pytest-benchmark's trylast configure builds its session and storage
    machine_id = config.stash[MACHINE_ID] = locations.PerGpuMachineId(
        locations.hardware_slug(profiles, device)
    )
    machine_id.install()
    run = config.stash[STATE] = RunState(settings, profiles, device, baselines, gpu=gpu)
    if workers.is_controller(config):  # each test's results as its worker finishes it
        receiver = workers.Receiver(config, baselines, run.verdicts, run.merged)
        config.pluginmanager.register(receiver, "gpubench-xdist-receiver")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Progress lines through pytest's terminal reporter, on a terminal and not under -q."""
    config = session.config
    progress.install(terminal_sink(config, state(config).settings.progress))
    locations.guard_benchmark_saves(config)  # pytest-benchmark's session: built after configure
    if workers.worker_id(config) is not None:
        workers.enable_benchmarks(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
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
    return lines + workers.header_lines(config, run.settings.gpu_per_worker, dev)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run = state(config)
    for item in items:
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
    if run.baselines.compare is None or run.settings.confirm_runs < 1:
        return None
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
    if report.when == "call" and report.passed:
        run = state(item.config)
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
    run = state(item.config)
    run.baselines.note(report)
    if report.when == "teardown":  # under xdist: the test's results go with its last report
        shipped = workers.ship_test(item, run.baselines, run.verdicts, run.gpu)
        if shipped:
            setattr(report, workers.REPORT_KEY, shipped)
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    run = state(session.config)
    if workers.worker_id(session.config) is not None:  # the controller saves, once
        workers.pack(session.config, session.items, run.baselines, run.verdicts, run.gpu)
        return
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
    return workers.gpu_count(detect()) or None


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    run = state(config)
    if run.settings.plan:
        return
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
        records(config), run.device, verbosity, run.merged.gpus, workers.is_controller(config)
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
    run = state(config)
    machine_info["gpu"] = gpu_machine_info(run.device)
    machine_info["gpubench"] = {
        "device": run.device.name,
        "detected": run.device.detection.as_dict(),
    }
