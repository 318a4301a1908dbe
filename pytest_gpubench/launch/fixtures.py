"""The ``llm_server`` fixture and the hooks that guarantee every server is stopped.

    def test_serve(llm_server):
        server = llm_server(engine="llamacpp", model="/models/tiny.gguf")
        # server.base_url, server.model, ... (see pytest_gpubench.launch.server.Server)

``llm_server(engine, model=None, *, launcher=None, served_name=None, options=None, env=None,
executable=None, image=None, docker_options=None, host="127.0.0.1", port=None,
ready_timeout=None)`` returns a ready ``Server``. ``model`` defaults to the first argument of
the test's ``@pytest.mark.model(...)`` (and its ``context=`` to ``options["context"]``).
Servers are cached for the session by everything that shapes them and stopped at the end of
the run, on Ctrl-C or SIGTERM, and when a different server is asked for.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_gpubench.engines.base import PLACEMENT_KEYS, SPLIT_OPTIONS
from pytest_gpubench.engines.registry import engine_names
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.launch import cleanup, reaper
from pytest_gpubench.launch.pool import ServerPool
from pytest_gpubench.launch.server import Server, failure_message
from pytest_gpubench.state import state

POOL = pytest.StashKey[ServerPool]()
SWEPT = pytest.StashKey["str | None"]()
ENTERED = pytest.StashKey[bool]()
INTERRUPTED_TAIL = 10
USED = pytest.StashKey[list[Server]]()
FROM_WORKERS = pytest.StashKey[list[str]]()  # the servers lines pytest-xdist workers sent
WORKER_KEY = "gpubench_servers"
MODEL_MARKER = (
    "model(id, **spec): the model this benchmark serves or runs; llm_server uses its first "
    "argument when model= is not given"
)


def pytest_configure(config: pytest.Config) -> None:
    if not any(line.startswith("model(") for line in config.getini("markers")):
        config.addinivalue_line("markers", MODEL_MARKER)
    settings = state(config).settings
    log_dir = settings.log_dir
    if log_dir is None:
        cache = getattr(config, "cache", None)
        log_dir = cache.mkdir("gpubench-servers") if cache is not None else None
    config.stash[POOL] = ServerPool(
        log_dir=log_dir,
        timeout_s=settings.server_timeout_s,
        default_launcher=settings.launcher,
        server_url=settings.server_url,
        gpu=bool(state(config).device.detection.gpus),
    )
    if cleanup._depth == 0 and not hasattr(config, "workerinput"):
        config.stash[SWEPT] = _sweep()  # the outermost run: what killed runs left on this machine
    cleanup.enter_run()
    config.stash[ENTERED] = True


def _sweep() -> str | None:
    try:
        return reaper.sweep(reaper.RUN.directory)
    except Exception as exc:
        return f"gpubench: could not check for what killed runs left ({type(exc).__name__}: {exc})"


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """The sweep's one line, after the header and shown with ``-q`` too."""
    line = session.config.stash.get(SWEPT, None)
    if not line:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    else:
        print(line, file=sys.stderr)


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo) -> None:
    """Ctrl-C or SIGTERM: pytest unwinds next; a second Ctrl-C must not abort that."""
    cleanup.shield_teardown()


def pytest_unconfigure(config: pytest.Config) -> None:
    pool = config.stash.get(POOL, None)
    try:
        if pool is not None:
            pool.stop_all()
    finally:
        # only a run that entered leaves: a nested run whose configure failed (a usage error)
        # must not make the outer run look finished and stop the outer run's servers
        if config.stash.get(ENTERED, False):
            cleanup.leave_run()


@pytest.fixture(scope="session")
def gpubench_server_pool(request: pytest.FixtureRequest) -> Iterator[ServerPool]:
    """The session's servers; all are stopped when the session's fixtures are torn down."""
    pool = request.config.stash[POOL]
    yield pool
    pool.stop_all()


@pytest.fixture
def llm_server(request: pytest.FixtureRequest, gpubench_server_pool: ServerPool):
    """Factory: ``llm_server(engine, model=None, **how)`` -> a ready, shared ``Server``.

    After the test, a server that died during it turns the test into an error that shows its
    exit status and log tail; the next test that asks gets a fresh one.
    """
    used: list[Server] = []
    request.node.stash[USED] = used
    marker = request.node.get_closest_marker("model")

    def factory(engine: Any = None, model: Any = None, **how: Any) -> Server:
        if engine is None:
            *rest, last = [repr(n) for n in engine_names()]
            names = f"{', '.join(rest)} or {last}" if rest else last
            pytest.fail(f"llm_server needs engine=: {names}", pytrace=False)
        if model is None and marker is not None and marker.args:
            model = marker.args[0]
            options = dict(how.get("options") or {})
            # the marker's context and its parallel / split options reach the engine's flags
            for key in ("context", *PLACEMENT_KEYS, *SPLIT_OPTIONS):
                if marker.kwargs.get(key) is not None and key not in options:
                    options[key] = marker.kwargs[key]
            if options:
                how["options"] = options
        if model is None and not gpubench_server_pool.server_url:
            pytest.fail("llm_server needs model=, or a @pytest.mark.model('id') on the test",
                        pytrace=False)  # fmt: skip
        try:
            server = gpubench_server_pool.get(engine, model, **how)
        except GpubenchError as exc:
            problem = str(exc)  # failed outside the except block: no "during handling" chain
        else:
            problem = None
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        if server not in used:
            used.append(server)
        # the engine's version as its server reports it goes into the baseline's environment
        state(request.config).baselines.engines[server.engine.name] = server.version or "unknown"
        return server

    yield factory
    for server in used:
        code = server.exit_status()
        if code is not None and not server.stopped:
            gpubench_server_pool.forget(server)
            pytest.fail(
                failure_message(
                    f"{server.engine.name} server for {server.model!r} died during the test "
                    f"(exit status {code})",
                    server.command,
                    server.log,
                ),
                pytrace=False,
            )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed test that used a server shows where its log is and its last lines."""
    report = yield
    if report.failed and call.when == "call":
        for server in item.stash.get(USED, []):
            if server.log is None:
                continue
            tail = "\n".join(server.log_tail(20))
            report.sections.append(
                (f"gpubench {server.engine.name} server log", f"log: {server.log_path}\n{tail}")
            )
    return report


def server_lines(pool: ServerPool, exitstatus: int) -> list[str]:
    """One line per server the run started (and, interrupted, its last log lines)."""
    lines = []
    for server in pool.history:
        ready = f"ready in {server.startup_s:.1f} s" if server.startup_s is not None else "external"
        if server.log_path:
            where = f"log: {server.log_path}"
        elif server.launcher == "external":
            where = "no log (not started here)"
        else:  # -p no:cacheprovider and no --gpubench-log-dir: nowhere to write it
            where = "no log file (give --gpubench-log-dir to keep one)"
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        lines.append(
            (f"[{worker}] " if worker else "")
            + f"{server.engine.name} {server.model!r} ({server.launcher}) {server.base_url} "
            f"version {server.version or '?'}, {ready}; {where}"
        )
        if exitstatus == pytest.ExitCode.INTERRUPTED and server.log is not None:
            # interrupted runs: what each server was doing when it was stopped
            lines += [f"  {line}" for line in server.log_tail(INTERRUPTED_TAIL)]
    return lines


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On a pytest-xdist worker: send its servers' lines to the controller, which prints them."""
    output = getattr(session.config, "workeroutput", None)
    pool = session.config.stash.get(POOL, None)
    if output is not None and pool is not None:
        output[WORKER_KEY] = server_lines(pool, exitstatus)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist, on the controller: keep a finished worker's server lines."""
    lines = (getattr(node, "workeroutput", None) or {}).get(WORKER_KEY) or []
    node.config.stash.setdefault(FROM_WORKERS, []).extend(lines)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    pool = config.stash.get(POOL, None)
    lines = server_lines(pool, exitstatus) if pool is not None else []
    lines += config.stash.get(FROM_WORKERS, [])
    if not lines:
        return
    terminalreporter.write_sep("-", "gpubench servers")
    for line in lines:
        terminalreporter.write_line(line)
