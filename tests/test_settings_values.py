"""Settings precedence, by hand: command line, then environment, then ini file, then default.

A stand-in for ``pytest.Config`` answers ``getoption``/``getini`` from dictionaries, so each
source can be set alone; relative paths resolve against the directory of the source that gave
them (the working directory for a flag or the environment, the ini file's folder for ini).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.settings import OPTIONS, _resolve, settings_from_config

BY_DEST = {o.dest: o for o in OPTIONS}


class FakeConfig:
    def __init__(self, root: Path, options=None, ini=None, inipath: Path | None = None):
        self.options, self.ini = options or {}, ini or {}
        self.rootpath, self.inipath = root, inipath

    def getoption(self, dest, default=None):
        return self.options.get(dest, default)

    def getini(self, name):
        return self.ini.get(name, "")


@pytest.fixture
def clean_env(monkeypatch):
    for o in OPTIONS:
        if o.env:
            monkeypatch.delenv(o.env, raising=False)
    return monkeypatch


def test_flag_then_env_then_ini_then_default(tmp_path, clean_env) -> None:
    opt = BY_DEST["gpubench_device"]
    ini = tmp_path / "pytest.ini"
    cfg = FakeConfig(tmp_path / "root", {"gpubench_device": "h100"}, {"gpubench_device": "a100"})
    cfg.inipath = ini
    clean_env.setenv("GPUBENCH_DEVICE", "l4")
    assert _resolve(cfg, opt) == ("h100", "--device", Path.cwd())
    cfg.options = {}
    assert _resolve(cfg, opt) == ("l4", "GPUBENCH_DEVICE", Path.cwd())
    clean_env.delenv("GPUBENCH_DEVICE")
    assert _resolve(cfg, opt) == ("a100", "ini gpubench_device", tmp_path)
    cfg.ini = {}
    assert _resolve(cfg, opt) == ("auto", "default", None)


def test_empty_values_fall_through(tmp_path, clean_env) -> None:
    opt = BY_DEST["gpubench_device"]
    cfg = FakeConfig(tmp_path, {"gpubench_device": ""}, {"gpubench_device": []})
    clean_env.setenv("GPUBENCH_DEVICE", "")
    assert _resolve(cfg, opt) == ("auto", "default", None)
    cfg.ini = {"gpubench_device": "  a100 \n"}
    assert _resolve(cfg, opt) == ("a100", "ini gpubench_device", tmp_path)  # rootpath: no ini


def test_options_without_env_or_ini_ignore_them(tmp_path, clean_env) -> None:
    opt = BY_DEST["gpubench_compare_to"]
    cfg = FakeConfig(tmp_path, {}, {"gpubench_compare_to": "x"})
    assert _resolve(cfg, opt) == (None, "default", None)


def test_defaults(tmp_path, clean_env) -> None:
    s = settings_from_config(FakeConfig(tmp_path))
    assert (s.device, s.device_source) == ("auto", "default")
    assert s.tolerance == 0.10 and s.confirm_runs == 1
    assert s.baselines_dir == tmp_path / "baselines"
    assert s.weights == "auto" and s.images is None
    assert s.server_url is None and s.launcher == "process" and s.server_timeout_s == 600.0
    assert s.log_dir is None and s.profiles_file is None
    assert s.max_error_rate == 0.0 and s.progress == "auto"
    assert s.compare_to == () and s.plan is False and s.force_baseline is False
    assert s.measure_ceilings is False and s.baseline is None and s.save_baseline is None
    assert s.gpu_per_worker is False


def test_values_from_each_source(tmp_path, clean_env) -> None:
    ini_dir = tmp_path / "project"
    cfg = FakeConfig(
        tmp_path,
        {"gpubench_tolerance": "0.2", "gpubench_compare_to": " a.json, ,b.json ",
         "gpubench_plan": True, "gpubench_force_baseline": 1, "gpubench_measure_ceilings": 1},
        {"gpubench_profiles": "devices.toml", "gpubench_log_dir": "logs",
         "gpubench_max_error_rate": "0.25", "gpubench_images": "7"},
        ini_dir / "pytest.ini",
    )  # fmt: skip
    clean_env.setenv("GPUBENCH_CONFIRM_RUNS", " 3 ")
    clean_env.setenv("GPUBENCH_PROGRESS", " OFF ")
    clean_env.setenv("GPUBENCH_BASELINES_DIR", "/abs/baselines")
    clean_env.setenv("GPUBENCH_SERVER_TIMEOUT", "30.5")
    clean_env.setenv("GPUBENCH_SERVER_URL", "http://h:1")
    clean_env.setenv("GPUBENCH_LAUNCHER", "docker")
    clean_env.setenv("GPUBENCH_WEIGHTS", "random")
    s = settings_from_config(cfg)
    assert s.tolerance == 0.2
    assert s.compare_to == ("a.json", "b.json")
    assert s.plan is True and s.force_baseline is True and s.measure_ceilings is True
    assert s.gpu_per_worker is False  # not given
    assert s.profiles_file == ini_dir / "devices.toml"  # relative to the ini file
    assert s.log_dir == ini_dir / "logs"
    assert s.max_error_rate == 0.25 and s.images == 7
    assert s.confirm_runs == 3 and s.progress == "off"
    assert s.baselines_dir == Path("/abs/baselines")
    assert s.server_timeout_s == 30.5 and s.server_url == "http://h:1"
    assert s.launcher == "docker" and s.weights == "random"


def test_relative_paths_from_a_flag_are_relative_to_the_working_directory(
    tmp_path, clean_env
) -> None:
    cfg = FakeConfig(
        tmp_path / "root",
        {"gpubench_profiles": "p.toml", "gpubench_log_dir": "~/logs",
         "gpubench_baselines_dir": "bl"},
    )  # fmt: skip
    s = settings_from_config(cfg)
    assert s.profiles_file == Path.cwd() / "p.toml"
    assert s.log_dir == Path("~/logs").expanduser()
    assert s.baselines_dir == tmp_path / "root" / "bl"  # the baselines folder: the rootdir


@pytest.mark.parametrize(
    ("dest", "value", "message"),
    [
        ("gpubench_tolerance", "abc", "tolerance must be a fraction"),
        ("gpubench_tolerance", "-0.1", "tolerance must be a fraction"),
        ("gpubench_tolerance", "10", "tolerance must be a fraction"),
        ("gpubench_confirm_runs", "11", "confirmation re-runs must be"),
        ("gpubench_confirm_runs", "-1", "confirmation re-runs must be"),
        ("gpubench_confirm_runs", "x", "confirmation re-runs must be"),
        ("gpubench_max_error_rate", "1.5", "max error rate must be"),
        ("gpubench_max_error_rate", "-0.01", "max error rate must be"),
        ("gpubench_max_error_rate", "lots", "max error rate must be"),
        ("gpubench_progress", "maybe", "progress must be on, off or auto"),
        ("gpubench_launcher", "k8s", "unknown launcher 'k8s'"),
        ("gpubench_server_timeout", "0", "server timeout '0' is not"),
        ("gpubench_server_timeout", "soon", "server timeout 'soon' is not"),
        ("gpubench_weights", "some", "weights 'some' must be auto"),
        ("gpubench_images", "0", "the image count must be"),
        ("gpubench_images", "two", "the image count must be"),
    ],
)
def test_bad_values_name_their_source(tmp_path, clean_env, dest, value, message) -> None:
    flag = BY_DEST[dest].flags[0]
    with pytest.raises(GpubenchError, match="^" + re.escape(f"{flag}: {message}")):
        settings_from_config(FakeConfig(tmp_path, {dest: value}))


@pytest.mark.parametrize(
    ("dest", "value", "expected"),
    [
        ("gpubench_tolerance", "0", 0.0),
        ("gpubench_tolerance", "9.99", 9.99),
        ("gpubench_confirm_runs", "0", 0),
        ("gpubench_confirm_runs", "10", 10),
        ("gpubench_max_error_rate", "0", 0.0),
        ("gpubench_max_error_rate", "1", 1.0),
        ("gpubench_images", "1", 1),
    ],
)
def test_bounds_are_inclusive(tmp_path, clean_env, dest, value, expected) -> None:
    s = settings_from_config(FakeConfig(tmp_path, {dest: value}))
    assert getattr(s, dest.removeprefix("gpubench_")) == expected


def test_env_errors_name_the_variable(tmp_path, clean_env) -> None:
    clean_env.setenv("GPUBENCH_MAX_ERROR_RATE", "2")
    with pytest.raises(GpubenchError, match=r"^GPUBENCH_MAX_ERROR_RATE: max error rate"):
        settings_from_config(FakeConfig(tmp_path))


def test_a_baseline_flag_that_swallowed_a_folder(tmp_path, clean_env) -> None:
    folder = tmp_path / "tests"
    folder.mkdir()
    with pytest.raises(GpubenchError) as info:
        settings_from_config(FakeConfig(tmp_path, {"gpubench_baseline": str(folder)}))
    assert str(info.value) == (
        f"--gpubench-baseline took {str(folder)!r} (a folder) as its value; write "
        "--gpubench-baseline=DEVICE|PATH, or put --gpubench-baseline after the test paths"
    )
    s = settings_from_config(FakeConfig(tmp_path, {"gpubench_save_baseline": "h100"}))
    assert s.save_baseline == "h100"
    s = settings_from_config(FakeConfig(tmp_path, {"gpubench_baseline": True}))
    assert s.baseline is True


def test_the_gpu_per_worker_flag(tmp_path, clean_env) -> None:
    s = settings_from_config(FakeConfig(tmp_path, {"gpubench_gpu_per_worker": True}))
    assert s.gpu_per_worker is True


# Every value the options' help documents is accepted (as written, and for progress in any case)
@pytest.mark.parametrize(
    ("dest", "value", "expected"),
    [
        ("gpubench_weights", "auto", "auto"),
        ("gpubench_weights", "random", "random"),
        ("gpubench_weights", "hub", "hub"),
        ("gpubench_progress", "auto", "auto"),
        ("gpubench_progress", "on", "on"),
        ("gpubench_progress", " On ", "on"),
        ("gpubench_progress", "off", "off"),
        ("gpubench_launcher", "process", "process"),
        ("gpubench_launcher", "docker", "docker"),
        ("gpubench_launcher", "external", "external"),  # --help: 'external' (server URL)
    ],
)
def test_each_documented_choice_is_accepted(tmp_path, clean_env, dest, value, expected) -> None:
    s = settings_from_config(FakeConfig(tmp_path, {dest: value}))
    assert getattr(s, dest.removeprefix("gpubench_")) == expected


def test_a_server_timeout_under_a_second_is_positive(tmp_path, clean_env) -> None:
    s = settings_from_config(FakeConfig(tmp_path, {"gpubench_server_timeout": "0.5"}))
    assert s.server_timeout_s == 0.5
    s = settings_from_config(FakeConfig(tmp_path, {"gpubench_server_timeout": "1"}))
    assert s.server_timeout_s == 1.0


# The whole message, where it lists the choices: one line that says what would be accepted
@pytest.mark.parametrize(
    ("dest", "value", "message"),
    [
        (
            "gpubench_weights",
            "some",
            "--gpubench-weights: weights 'some' must be auto, random or hub "
            "(random: built from the catalog config; hub: the real checkpoint)",
        ),
        (
            "gpubench_launcher",
            "k8s",
            "--gpubench-launcher: unknown launcher 'k8s': choose one of process, docker, external",
        ),
        ("gpubench_progress", "loud", "--gpubench-progress: progress must be on, off or auto, "
         "got 'loud'"),
    ],
)  # fmt: skip
def test_choice_errors_list_the_choices(tmp_path, clean_env, dest, value, message) -> None:
    with pytest.raises(GpubenchError) as info:
        settings_from_config(FakeConfig(tmp_path, {dest: value}))
    assert str(info.value) == message


def test_a_baseline_value_ending_in_json_is_a_path_whatever_is_there(tmp_path, clean_env) -> None:
    """The swallowed-folder check is for bare words (``tests/``): ``=PATH.json`` is a baseline
    file by its name, as ``locations.baseline_file`` reads it."""
    odd = tmp_path / "old.json"
    odd.mkdir()
    s = settings_from_config(FakeConfig(tmp_path, {"gpubench_baseline": str(odd)}))
    assert s.baseline == str(odd)
