"""A baseline or reference file of the wrong shape is one line naming the file and the field.

Through real pytest runs (``--gpubench-baseline``, ``--gpubench-compare-to``,
``--gpubench-save-baseline`` over an existing file) and the ``pytest-gpubench compare`` CLI:
never INTERNALERROR, never a traceback.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_gpubench.cli.main import main
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.report import compare
from pytest_gpubench.results.baseline import from_document, load

GOOD: dict[str, Any] = {
    "datetime": "2025-01-01T00:00:00",
    "benchmarks": [
        {
            "fullname": "test_x.py::test_x",
            "extra_info": {
                "metrics": {"tok_s": {"value": 10.0, "unit": "tok/s", "higher_is_better": True}},
                "gpubench": {"key": "test_x.py::test_x", "date": "2025-01-01"},
            },
        }
    ],
    "gpubench": {
        "schema": 1,
        "kind": "measured",
        "device": {"profile": "cpu", "gpu": "none (CPU)"},
        "environment": {"python": "3.11"},
        "skipped": {},
    },
}


def _set(*where: Any, value: Any) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        obj = doc
        for key in where[:-1]:
            obj = obj[key]
        obj[where[-1]] = value

    return mutate


EXTRA = "benchmarks[0].extra_info"
# (id, how the file is broken, the field the message must name)
SHAPES = [
    (
        "extra_info-string",
        _set("benchmarks", 0, "extra_info", value="abc"),
        "benchmarks[0].extra_info",
    ),
    (
        "extra_info-list",
        _set("benchmarks", 0, "extra_info", value=[1, 2]),
        "benchmarks[0].extra_info",
    ),
    (
        "gpubench-meta-string",
        _set("benchmarks", 0, "extra_info", "gpubench", value="abc"),
        "benchmarks[0].extra_info.gpubench",
    ),
    (
        "conditions-list",
        _set("benchmarks", 0, "extra_info", "gpubench", "conditions", value=["a", "b"]),
        "benchmarks[0].extra_info.gpubench.conditions",
    ),
    ("environment-list", _set("gpubench", "environment", value=[1, 2]), "gpubench.environment"),
]


def _duplicate_entry(doc: dict) -> None:
    """The one entry twice (a hand merge of two files): the last one silently won."""
    doc["benchmarks"].append(copy.deepcopy(doc["benchmarks"][0]))
    doc["benchmarks"][1]["extra_info"]["metrics"]["tok_s"]["value"] = 99.0


def write_shape(path: Path, mutate: Callable[[dict], None] | str | None) -> Path:
    doc = copy.deepcopy(GOOD)
    if mutate == "deep":  # nested past the JSON parser's recursion limit
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif mutate is None:  # not UTF-8: a Latin-1 'é' in the device's GPU name
        text = json.dumps(doc).replace("none (CPU)", "caf\u00e9", 1)
        path.write_bytes(text.encode("latin-1"))
    else:
        assert callable(mutate)
        mutate(doc)
        path.write_text(json.dumps(doc))
    return path


ALL_SHAPES = [
    *SHAPES,
    ("not-utf8", None, "line 1: not UTF-8 text"),
    ("duplicate-entry", _duplicate_entry, "benchmarks[1]: entry 'test_x.py::test_x' is already"),
    ("nested-too-deep", "deep", "top level: not valid JSON (nested too deeply)"),
]
IDS = [s[0] for s in ALL_SHAPES]


@pytest.fixture(params=ALL_SHAPES, ids=IDS)
def broken(request, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    _, mutate, field = request.param
    yield write_shape(tmp_path / "broken.json", mutate), field


def assert_one_line(result: pytest.RunResult, path: Path, field: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    out = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in out and "Traceback" not in out, out
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: {path}: {field}"), lines


@pytest.mark.parametrize("flag", ["--gpubench-baseline", "--gpubench-compare-to"])
def test_pytest_run_gives_one_line(pytester: pytest.Pytester, broken, flag: str) -> None:
    path, field = broken
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    assert_one_line(pytester.runpytest("--device=cpu", f"{flag}={path}"), path, field)


def test_saving_over_a_broken_file_gives_one_line(pytester: pytest.Pytester, broken) -> None:
    path, field = broken
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("--device=cpu", f"--gpubench-save-baseline={path}")
    assert_one_line(result, path, field)


def test_cli_compare_gives_one_line(broken, capsys) -> None:
    path, field = broken
    assert main(["compare", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pytest-gpubench: error: {path}: {field}")
    assert err.count("\n") == 1, err


def test_unreadable_and_folder_paths_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(GpubenchError, match=r"is a folder; give a \.json file"):
        load(tmp_path)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(GpubenchError, match=r"deep\.json: top level: not valid JSON"):
        load(deep)


SUBSTITUTES = ["abc", [1], None, 1.5, True, {}, {"a": 1}, [], float("nan")]


def _paths(obj: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _paths(value, (*prefix, i))


def test_any_field_of_any_json_type_is_an_error_or_a_usable_baseline() -> None:
    """Every field of a valid file replaced by every JSON type: either a GpubenchError, or a
    Baseline the comparison table can be built from (nothing else escapes)."""
    doc = copy.deepcopy(GOOD)
    doc["gpubench"]["skipped"] = {"test_y.py::test_y": {"reason": "did not fit"}}
    doc["benchmarks"][0]["extra_info"]["metrics"]["tok_s"]["spread"] = {"n": 3}
    plain = {k: v for k, v in doc.items() if k != "gpubench"}
    plain["machine_info"] = {"gpu": {"name": "x", "profile": "cpu"}}
    accepted = []
    for base in (doc, plain):
        for where in list(_paths(base)):
            for value in SUBSTITUTES:
                variant = copy.deepcopy(base)
                if where:
                    _set(*where, value=value)(variant)
                else:
                    variant = value
                with contextlib.suppress(GpubenchError):
                    accepted.append(from_document(Path("f.json"), variant))
    assert accepted
    frame = compare.comparison_frame(accepted)  # every accepted shape, side by side
    assert list(compare.to_text(frame))
