"""The console script on a user's bad input: one ``pytest-gpubench: error:`` line naming the
file or the flag and the fix, exit 2 (argparse's usage-error status), never a traceback.

Each case runs the real script in a subprocess (``python -m pytest_gpubench.cli``) on files
written here: a traceback, a silent exit 0 or another status is what these would catch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LLAMA_LIKE = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16",
}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_gpubench.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_error(proc: subprocess.CompletedProcess[str], *parts: str) -> None:
    """Exit 2 and exactly one stderr line holding every part (in order)."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pytest-gpubench: error: "), lines
    at = 0
    for part in parts:
        found = lines[0].find(part, at)
        assert found >= 0, (part, lines[0])
        at = found + len(part)


def write_config(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**LLAMA_LIKE, **fields}))
    return path


def test_fit_of_a_good_config_works(tmp_path: Path) -> None:
    """The control for the cases below: the same config, unbroken, gives its estimate."""
    proc = cli("fit", str(write_config(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert "weights" in proc.stdout


@pytest.mark.parametrize(
    ("field", "value", "low"),
    [
        ("num_attention_heads", 0, 1),  # was a ZeroDivisionError (hidden_size // heads)
        ("num_attention_heads", -8, 1),
        ("num_hidden_layers", -1, 0),  # was accepted: a negative weight size
    ],
)
def test_fit_names_a_config_field_out_of_range(tmp_path: Path, field, value, low) -> None:
    path = write_config(tmp_path, **{field: value})
    proc = cli("fit", str(path))
    assert_one_error(proc, str(path), f"field {field!r} must be a whole number >= {low}")


def test_fit_of_a_vision_config_with_patch_size_0_names_the_field(tmp_path: Path) -> None:
    """A Gemma-3-style config whose vision tower has ``patch_size: 0`` (image // patch)."""
    from pytest_gpubench.models.catalog import resolve_model

    config = json.loads(resolve_model("google/gemma-3-27b-it").config_path.read_text())
    config["vision_config"]["patch_size"] = 0
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert_one_error(cli("fit", str(path)), "field 'vision_config.patch_size' must be")


def deep_json(path: Path, depth: int = 100_000) -> Path:
    path.write_text("[" * depth + "]" * depth)
    return path


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("fit", "not a JSON model config (nested too deeply to read)"),
        ("compare", "top level: not valid JSON (nested too deeply)"),
        ("pareto", "top level: not valid JSON (nested too deeply)"),
    ],
)
def test_deeply_nested_json_is_one_line_naming_the_file(tmp_path, command, message) -> None:
    """Was a RecursionError traceback from the JSON parser (fit: the model config reader;
    compare and pareto: the peer-format sniffing before our own reader)."""
    path = deep_json(tmp_path / "deep.json")
    assert_one_error(cli(command, str(path)), str(path), message)


def test_pareto_refuses_a_percentile_it_has_no_figure_for(tmp_path: Path) -> None:
    """``--percentile 42`` without ``--slo`` was accepted and ignored: a user reading the
    chart took it for the 42nd percentile's."""
    proc = cli("pareto", str(tmp_path / "any.json"), "--percentile", "42")
    assert_one_error(proc, "--percentile", "must be one of 50, 90, 95, 99, got 42")


def test_deeply_nested_profiles_toml_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """``--profiles`` of a TOML file nested past the TOML parser's recursion limit."""
    path = tmp_path / "profiles.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    proc = cli("devices", "--profiles", str(path))
    assert_one_error(proc, f"device profile file {path} is not valid TOML: nested too deeply")
