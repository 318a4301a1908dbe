"""Command-line options, environment variables and ini keys in one frozen ``Settings``.

Precedence is the same for every setting (pytest-timeout's pattern): command line, then the
environment, then the ini file, then the default. ``add_options`` declares them all, so
``pytest --help`` documents each in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_gpubench.errors import GpubenchError


@dataclass(frozen=True)
class Option:
    dest: str
    flags: tuple[str, ...]
    env: str | None
    ini: str | None
    default: Any
    help: str
    is_flag: bool = False
    optional_value: bool = False  # "--opt" alone means True; "--opt=VALUE" gives a value


OPTIONS: tuple[Option, ...] = (
    Option(
        "gpubench_device",
        ("--device", "--gpubench-device"),
        "GPUBENCH_DEVICE",
        "gpubench_device",
        "auto",
        "device profile to judge fit and label results against: a profile name "
        "(`pytest-gpubench devices` lists them), 'a+b' or 'Nxname' for several GPUs, or 'auto' "
        "to detect through NVML (default: auto; env GPUBENCH_DEVICE; ini gpubench_device)",
    ),
    Option(
        "gpubench_profiles",
        ("--gpubench-profiles",),
        "GPUBENCH_PROFILES",
        "gpubench_profiles",
        None,
        "TOML file of extra or overriding device profiles (same shape as the built-in "
        "profiles.toml; an ini path is relative to the ini file)",
    ),
    Option(
        "gpubench_plan",
        ("--gpubench-plan",),
        None,
        None,
        False,
        "print what would run on the selected device and why the rest would not; run nothing",
        is_flag=True,
    ),
    Option(
        "gpubench_baseline",
        ("--gpubench-baseline",),
        None,
        None,
        None,
        "compare each benchmark with a stored baseline and fail the tests that regressed: "
        "alone for baselines/<device>.json, or =DEVICE or =PATH (write it with '=', or last: "
        "a bare value after it is taken as its argument)",
        optional_value=True,
    ),
    Option(
        "gpubench_save_baseline",
        ("--gpubench-save-baseline",),
        None,
        None,
        None,
        "merge this run's results into baselines/<device>.json (or =PATH), atomically",
        optional_value=True,
    ),
    Option(
        "gpubench_force_baseline",
        ("--gpubench-force-baseline",),
        None,
        None,
        False,
        "allow --gpubench-save-baseline to overwrite a baseline measured on another GPU model",
        is_flag=True,
    ),
    Option(
        "gpubench_save_invalid",
        ("--gpubench-save-invalid",),
        None,
        None,
        False,
        "let --gpubench-save-baseline store results whose validity verdict is invalid (a "
        "saturated load client, client and server token counts apart, a throttled or shared "
        "GPU, unexpected prompt-cache hits); by default they are left out of the baseline",
        is_flag=True,
    ),
    Option(
        "gpubench_fail_invalid",
        ("--gpubench-fail-invalid",),
        None,
        None,
        False,
        "fail a benchmark whose result is invalid (see --gpubench-save-invalid) instead of "
        "only marking it invalid in the results table",
        is_flag=True,
    ),
    Option(
        "gpubench_tolerance",
        ("--gpubench-tolerance",),
        "GPUBENCH_TOLERANCE",
        "gpubench_tolerance",
        "0.10",
        "default relative tolerance of the regression check (0.10 = 10%%, chosen from the "
        "run-to-run spread measured on a shared 2-core machine; per test: marker "
        "gpubench_tolerance(metric=fraction))",
    ),
    Option(
        "gpubench_confirm_runs",
        ("--gpubench-confirm-runs",),
        "GPUBENCH_CONFIRM_RUNS",
        "gpubench_confirm_runs",
        "1",
        "re-measure a suspected regression this many times before it fails the test; it "
        "fails only if every re-run is worse than the tolerance too (0: fail at once)",
    ),
    Option(
        "gpubench_baselines_dir",
        ("--gpubench-baselines-dir",),
        "GPUBENCH_BASELINES_DIR",
        "gpubench_baselines_dir",
        "baselines",
        "folder of <device>.json baselines and reference/<device>.json published figures "
        "(relative to the rootdir; default: baselines)",
    ),
    Option(
        "gpubench_measure_ceilings",
        ("--gpubench-measure-ceilings",),
        None,
        None,
        False,
        "measure the GPU's copy bandwidth and bf16 matmul rate once and report rooflines and "
        "MFU against them as well as against the datasheet",
        is_flag=True,
    ),
    Option(
        "gpubench_gpu_per_worker",
        ("--gpubench-gpu-per-worker",),
        None,
        None,
        False,
        "with pytest-xdist (-n N): pin worker gwN to GPU N (CUDA_VISIBLE_DEVICES), judge its "
        "fit against that one GPU and record the GPU with each result; -n auto starts one "
        "worker per GPU",
        is_flag=True,
    ),
    Option(
        "gpubench_compare_to",
        ("--gpubench-compare-to",),
        None,
        None,
        None,
        "after the run, compare its results with these devices' baselines or references "
        "(comma-separated names or paths)",
    ),
    Option(
        "gpubench_weights",
        ("--gpubench-weights",),
        "GPUBENCH_WEIGHTS",
        "gpubench_weights",
        "auto",
        "weights for in-process workloads: 'random' (built from the catalog config), 'hub' "
        "(the real checkpoint, local cache first) or 'auto' (hub when cached, else random)",
    ),
    Option(
        "gpubench_images",
        ("--gpubench-images",),
        "GPUBENCH_IMAGES",
        "gpubench_images",
        None,
        "number of measured images per image-generation benchmark (default: the seed's 100)",
    ),
    # --- inference servers (pytest_gpubench.launch) ---
    Option(
        "gpubench_server_url",
        ("--gpubench-server-url",),
        "GPUBENCH_SERVER_URL",
        "gpubench_server_url",
        None,
        "benchmark a server that is already running at this URL (e.g. http://127.0.0.1:8000); "
        "llm_server then starts and stops nothing",
    ),
    Option(
        "gpubench_launcher",
        ("--gpubench-launcher",),
        "GPUBENCH_LAUNCHER",
        "gpubench_launcher",
        "process",
        "how llm_server starts servers when a test does not say: 'process' (local), "
        "'docker' or 'external' (--gpubench-server-url) (default: process)",
    ),
    Option(
        "gpubench_server_timeout",
        ("--gpubench-server-timeout",),
        "GPUBENCH_SERVER_TIMEOUT",
        "gpubench_server_timeout",
        "600",
        "seconds a server may take to become ready before the test errors (default: 600)",
    ),
    Option(
        "gpubench_log_dir",
        ("--gpubench-log-dir",),
        "GPUBENCH_LOG_DIR",
        "gpubench_log_dir",
        None,
        "folder for server logs (default: the pytest cache, .pytest_cache/d/gpubench-servers)",
    ),
    # --- serving benchmarks (pytest_gpubench.serving.bench) ---
    Option(
        "gpubench_max_error_rate",
        ("--gpubench-max-error-rate",),
        "GPUBENCH_MAX_ERROR_RATE",
        "gpubench_max_error_rate",
        0.0,
        "serving benchmarks fail when more than this fraction of requests fail "
        "(0 to 1; default 0: any failed request fails the benchmark)",
    ),
    Option(
        "gpubench_progress",
        ("--gpubench-progress",),
        "GPUBENCH_PROGRESS",
        "gpubench_progress",
        "auto",
        "progress lines for server start-up, serving requests, timed rounds and training "
        "steps: on, off, or auto (on when pytest writes to a terminal and not under -q; "
        "default auto)",
    ),
)

LAUNCHERS = ("process", "docker", "external")  # external: --gpubench-server-url


@dataclass(frozen=True)
class Settings:
    device: str
    device_source: str
    profiles_file: Path | None
    plan: bool
    baseline: str | bool | None  # True: the selected device's file
    save_baseline: str | bool | None
    force_baseline: bool
    tolerance: float
    baselines_dir: Path
    compare_to: tuple[str, ...]
    measure_ceilings: bool
    weights: str = "auto"
    images: int | None = None
    server_url: str | None = None
    launcher: str = "process"
    server_timeout_s: float = 600.0
    log_dir: Path | None = None
    max_error_rate: float = 0.0
    progress: str = "auto"
    confirm_runs: int = 1
    gpu_per_worker: bool = False
    save_invalid: bool = False  # an invalid result may be saved as a baseline
    fail_invalid: bool = False  # an invalid result fails its test


def cache_root() -> Path:
    """``$GPUBENCH_CACHE``, else ``$XDG_CACHE_HOME/pytest-gpubench``, else ~/.cache/...: where
    provisioned engines and the records of running servers live."""
    if os.environ.get("GPUBENCH_CACHE"):
        return Path(os.environ["GPUBENCH_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "pytest-gpubench"


def plugin_defining(flag: str) -> str | None:
    """Another installed pytest plugin (entry point ``pytest11``) whose module declares
    ``flag``; None when none does, found before any of them loads.

    Its source is read, neither it nor its package imported. The plugin itself no longer
    needs this (``add_late_spellings`` waits until every plugin declared its options, which
    costs nothing); kept for callers that must know before pytest loads the plugins.
    """
    import importlib.metadata as md

    for ep in md.entry_points(group="pytest11"):
        if ep.module.split(".")[0] == "pytest_gpubench":
            continue
        source = _module_source(ep.module)
        if source is None:
            continue
        try:
            text = source.read_text(errors="replace")
        except OSError:
            continue
        if f'"{flag}"' in text or f"'{flag}'" in text:
            return ep.name
    return None


def _module_source(module: str) -> Path | None:
    """The ``.py`` file of ``module`` (dotted), found without importing its packages."""
    import importlib.util

    top, _, rest = module.partition(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        origin = getattr(spec, "origin", None)
        return Path(origin) if origin and origin.endswith(".py") else None
    for folder in spec.submodule_search_locations or ():
        base = Path(folder, *rest.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def taken_options(parser: pytest.Parser) -> dict[str, str]:
    """Option strings other plugins already added -> the name of the group that has them."""
    owners: dict[str, str] = {}
    groups = [("pytest", parser._anonymous), *((g.name, g) for g in parser._groups)]
    for name, group in groups:
        for option in group.options:
            for flag in option.names():
                owners[flag] = name
    return owners


#: spellings declared only once every installed plugin has declared its own (see
#: ``add_late_spellings``): pytest-playwright, loading after this plugin, owns ``--device``
LATE_SPELLINGS = ("--device",)


def add_options(parser: pytest.Parser) -> None:
    """Declare every option; a spelling another plugin owns (pytest-playwright's --device) is
    left to it, and the --gpubench-* spelling always works."""
    taken = taken_options(parser)
    group = parser.getgroup("gpubench", "GPU/ML benchmarks (pytest-gpubench)")
    for opt in OPTIONS:
        flags = [f for f in opt.flags if f not in taken and f not in LATE_SPELLINGS]
        _add(group, opt, flags)
        if opt.ini:
            parser.addini(opt.ini, help=opt.help.replace("%%", "%"), default=None)


def add_late_spellings(parser: pytest.Parser) -> None:
    """Declare ``LATE_SPELLINGS`` that no other plugin took.

    pytest calls each plugin's ``pytest_addoption`` as it registers, so a plugin that loads
    after this one and declares ``--device`` would fail with "option names already added" and
    not load at all. Called once every installed plugin is registered (the plugin's
    ``pytest_load_initial_conftests``), this sees their options without reading or importing
    any of them.
    """
    taken = taken_options(parser)
    group = parser.getgroup("gpubench")
    for opt in OPTIONS:
        flags = [f for f in opt.flags if f in LATE_SPELLINGS and f not in taken]
        if flags:
            _add(group, opt, flags, help=f"same as {opt.flags[-1]}")


def _add(group: Any, opt: Option, flags: list[str], help: str | None = None) -> None:
    text = opt.help if help is None else help
    if opt.is_flag:
        group.addoption(*flags, dest=opt.dest, action="store_true", default=None, help=text)
    elif opt.optional_value:
        group.addoption(*flags, dest=opt.dest, nargs="?", const=True, default=None, help=text)
    else:
        group.addoption(*flags, dest=opt.dest, default=None, metavar="VALUE", help=text)


def foreign_device_option(config: pytest.Config) -> str | None:
    """The group of another plugin that owns ``--device``, when it is not ours."""
    for group in config._parser._groups:
        if group.name == "gpubench":
            continue
        for option in group.options:
            if "--device" in option.names():
                return group.name
    for option in config._parser._anonymous.options:
        if "--device" in option.names() and option.dest != "gpubench_device":
            return "pytest"
    return None


def _resolve(config: pytest.Config, opt: Option) -> tuple[Any, str, Path | None]:
    """(value, where it came from, directory a relative path is relative to)."""
    value = config.getoption(opt.dest, default=None)
    if value not in (None, ""):
        return value, opt.flags[0], Path.cwd()
    if opt.env and os.environ.get(opt.env):
        return os.environ[opt.env], opt.env, Path.cwd()
    if opt.ini:
        ini_value = config.getini(opt.ini)
        if ini_value not in (None, "", []):
            base = config.inipath.parent if config.inipath else config.rootpath
            return str(ini_value).strip(), f"ini {opt.ini}", base
    return opt.default, "default", None


def settings_from_config(config: pytest.Config) -> Settings:
    by_dest = {opt.dest: opt for opt in OPTIONS}
    device, device_source, _ = _resolve(config, by_dest["gpubench_device"])
    profiles, _, base = _resolve(config, by_dest["gpubench_profiles"])
    plan, _, _ = _resolve(config, by_dest["gpubench_plan"])
    profiles_path = None
    if profiles:
        profiles_path = Path(profiles).expanduser()
        if not profiles_path.is_absolute() and base is not None:
            profiles_path = base / profiles_path
    tolerance_raw, tolerance_source, _ = _resolve(config, by_dest["gpubench_tolerance"])
    try:
        tolerance = float(tolerance_raw)
        if not 0 <= tolerance < 10:
            raise ValueError
    except ValueError:
        raise GpubenchError(
            f"{tolerance_source}: tolerance must be a fraction such as 0.05 (5%), "
            f"got {tolerance_raw!r}"
        ) from None
    baselines_dir = Path(str(_resolve(config, by_dest["gpubench_baselines_dir"])[0]))
    if not baselines_dir.is_absolute():
        baselines_dir = config.rootpath / baselines_dir
    compare_to = config.getoption("gpubench_compare_to", default=None) or ""
    weights, weights_from, _ = _resolve(config, by_dest["gpubench_weights"])
    if weights not in ("auto", "random", "hub"):
        raise GpubenchError(
            f"{weights_from}: weights {weights!r} must be auto, random or hub "
            "(random: built from the catalog config; hub: the real checkpoint)"
        )
    images, images_from, _ = _resolve(config, by_dest["gpubench_images"])
    if images is not None:
        try:
            images = int(images)
        except ValueError:
            images = 0
        if images < 1:
            raise GpubenchError(f"{images_from}: the image count must be a whole number >= 1")
    return Settings(
        device=str(device),
        device_source=device_source,
        profiles_file=profiles_path,
        plan=bool(plan),
        baseline=_check_optional_value(config, "gpubench_baseline"),
        save_baseline=_check_optional_value(config, "gpubench_save_baseline"),
        force_baseline=bool(config.getoption("gpubench_force_baseline", default=None)),
        tolerance=tolerance,
        baselines_dir=baselines_dir,
        compare_to=tuple(p.strip() for p in str(compare_to).split(",") if p.strip()),
        measure_ceilings=bool(config.getoption("gpubench_measure_ceilings", default=None)),
        weights=str(weights),
        images=images,
        confirm_runs=_confirm_runs(config, by_dest),
        gpu_per_worker=bool(config.getoption("gpubench_gpu_per_worker", default=None)),
        save_invalid=bool(config.getoption("gpubench_save_invalid", default=None)),
        fail_invalid=bool(config.getoption("gpubench_fail_invalid", default=None)),
        **_server_settings(config, by_dest),
        **_serving_settings(config, by_dest),
    )


def _confirm_runs(config: pytest.Config, by_dest: dict[str, Option]) -> int:
    raw, source, _ = _resolve(config, by_dest["gpubench_confirm_runs"])
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = -1
    if not 0 <= value <= 10:
        raise GpubenchError(
            f"{source}: confirmation re-runs must be a whole number from 0 to 10, got {raw!r}"
        )
    return value


def _serving_settings(config: pytest.Config, by_dest: dict[str, Option]) -> dict[str, Any]:
    max_error_rate, rate_source, _ = _resolve(config, by_dest["gpubench_max_error_rate"])
    try:
        max_error_rate = float(max_error_rate)
    except (TypeError, ValueError):
        max_error_rate = -1.0
    if not 0.0 <= max_error_rate <= 1.0:
        raise GpubenchError(
            f"{rate_source}: max error rate must be a number from 0 to 1 (a fraction of requests)"
        )
    progress, progress_source, _ = _resolve(config, by_dest["gpubench_progress"])
    progress = str(progress).strip().lower()
    if progress not in ("auto", "on", "off"):
        raise GpubenchError(
            f"{progress_source}: progress must be on, off or auto, got {progress!r}"
        )
    return {"max_error_rate": max_error_rate, "progress": progress}


def _server_settings(config: pytest.Config, by_dest: dict[str, Option]) -> dict[str, Any]:
    url, _, _ = _resolve(config, by_dest["gpubench_server_url"])
    launcher, launcher_from, _ = _resolve(config, by_dest["gpubench_launcher"])
    if str(launcher) not in LAUNCHERS:
        raise GpubenchError(
            f"{launcher_from}: unknown launcher {launcher!r}: choose one of {', '.join(LAUNCHERS)}"
        )
    timeout, timeout_from, _ = _resolve(config, by_dest["gpubench_server_timeout"])
    try:
        timeout_s = float(timeout)
        if timeout_s <= 0:
            raise ValueError
    except ValueError:
        raise GpubenchError(
            f"{timeout_from}: server timeout {timeout!r} is not a positive number of seconds"
        ) from None
    log_dir, _, base = _resolve(config, by_dest["gpubench_log_dir"])
    log_path = None
    if log_dir:
        log_path = Path(log_dir).expanduser()
        if not log_path.is_absolute() and base is not None:
            log_path = base / log_path
    return {
        "server_url": str(url) if url else None,
        "launcher": str(launcher),
        "server_timeout_s": timeout_s,
        "log_dir": log_path,
    }


def _check_optional_value(config: pytest.Config, dest: str) -> str | bool | None:
    """An optional-value flag swallows the next word; catch '--gpubench-baseline tests/'."""
    value = config.getoption(dest, default=None)
    if isinstance(value, str) and not value.endswith(".json") and Path(value).is_dir():
        flag = "--" + dest.replace("_", "-")
        raise GpubenchError(
            f"{flag} took {value!r} (a folder) as its value; write {flag}=DEVICE|PATH, or put "
            f"{flag} after the test paths"
        )
    return value
