"""The package's size limits, read from its source with ``ast``: no module over 600 lines, no
function over 80 lines, no public function with more than 12 parameters (``self``/``cls`` not
counted; ``*args``/``**kwargs`` count) except the ``serve_bench`` facade's methods, whose
keywords are the documented workload options.

A violation is named by the module (relative to the package) and the function's qualified
name, e.g. ``launch/pool.py: ServerPool.get (82 lines > 80)``. ``PENDING`` lists the known
ones another change owns right now; the check fails when one of them is fixed, too, so the
list cannot go stale.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytest_gpubench

PACKAGE = Path(pytest_gpubench.__file__).parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
MAX_PUBLIC_PARAMETERS = 12
# The serve_bench fixture's object: its methods take the documented workload keywords.
FACADE = ("serving/bench.py", "ServeBench")

# (check, where): known violations, each to be fixed after the branches that touch them merge.
PENDING: set[tuple[str, str]] = set()  # none left


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    named = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if named and named[0].arg in ("self", "cls"):
        named = named[1:]
    return len(named) + (args.vararg is not None) + (args.kwarg is not None)


def _functions(
    tree: ast.AST, prefix: str = ""
) -> Iterator[tuple[str, str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method, nested ones too, as (qualified name, enclosing class, node)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            owner = prefix[:-1].rsplit(".", 1)[-1] if prefix else ""
            yield f"{prefix}{node.name}", owner, node
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def violations(package: Path) -> dict[tuple[str, str], str]:
    """{(check, 'module: function'): what is over} for every module under ``package``."""
    found: dict[tuple[str, str], str] = {}
    for path in sorted(package.rglob("*.py")):
        module = path.relative_to(package).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            found["module", module] = f"{lines} lines > {MAX_MODULE_LINES}"
        for name, owner, node in _functions(ast.parse(text, filename=str(path))):
            where = f"{module}: {name}"
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found["function", where] = f"{length} lines > {MAX_FUNCTION_LINES}"
            count = _parameters(node)
            public = not node.name.startswith("_")
            if public and count > MAX_PUBLIC_PARAMETERS and (module, owner) != FACADE:
                found["parameters", where] = f"{count} parameters > {MAX_PUBLIC_PARAMETERS}"
    return found


def _listing(items: dict[tuple[str, str], str]) -> str:
    return "\n".join(f"  {where} ({why})" for (_, where), why in sorted(items.items()))


def test_no_module_function_or_signature_over_its_limit() -> None:
    over = {k: v for k, v in violations(PACKAGE).items() if k not in PENDING}
    assert not over, (
        "over the size limits (split the module with re-exports, extract helpers, or group "
        "parameters):\n" + _listing(over)
    )


def test_pending_list_names_only_current_violations() -> None:
    current = violations(PACKAGE)
    fixed = sorted(f"{check}: {where}" for check, where in PENDING - set(current))
    assert not fixed, "no longer over the limit, remove from PENDING in tests/test_sizes.py: " + (
        ", ".join(fixed)
    )


def test_facade_is_where_the_exemption_says() -> None:
    """The exemption names a real class: renaming ServeBench must not widen it silently."""
    module, owner = FACADE
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    assert owner in {n.name for n in tree.body if isinstance(n, ast.ClassDef)}


def _write(package: Path, name: str, source: str) -> None:
    path = package / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


def _function(name: str, body_lines: int, params: int = 0, indent: str = "") -> str:
    """A function of exactly ``1 + body_lines`` lines and ``params`` parameters."""
    args = ", ".join(f"a{i}" for i in range(params))
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(body_lines))
    return f"{indent}def {name}({args}):\n{body}"


@pytest.mark.parametrize("over", [False, True])
def test_each_limit_is_seen_at_its_boundary(tmp_path: Path, over: bool) -> None:
    """Limits exactly met pass; one line or one parameter more is named, nested and methods
    included, while the facade's methods may take more parameters."""
    extra = int(over)
    _write(tmp_path, "big.py", "x = 0\n" * (MAX_MODULE_LINES + extra))
    _write(tmp_path, "sub/long.py", _function("work", MAX_FUNCTION_LINES - 1 + extra))
    method = _function("many", 1, MAX_PUBLIC_PARAMETERS + extra, indent="    ")
    _write(tmp_path, "sub/wide.py", "class Pool:\n" + method.replace("(", "(self, ", 1))
    nested = _function("inner", 1, MAX_PUBLIC_PARAMETERS + extra, indent="    ")
    last = f"a{MAX_PUBLIC_PARAMETERS + extra - 1})"
    nested = nested.replace(last, "**" + last)  # **kwargs is a parameter too
    _write(tmp_path, "sub/nested.py", "def outer():\n" + nested)
    _write(tmp_path, "sub/private.py", _function("_helper", 1, MAX_PUBLIC_PARAMETERS + 5))
    facade = _function("capacity", 1, MAX_PUBLIC_PARAMETERS + 5, indent="    ")
    _write(tmp_path, FACADE[0], f"class {FACADE[1]}:\n" + facade.replace("(", "(self, ", 1))
    expected = {
        ("module", "big.py"),
        ("function", "sub/long.py: work"),
        ("parameters", "sub/wide.py: Pool.many"),
        ("parameters", "sub/nested.py: outer.inner"),
    }
    assert set(violations(tmp_path)) == (expected if over else set())


def test_a_fixed_pending_item_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PENDING entry that is no longer a violation is reported, so the list stays honest."""
    monkeypatch.setattr(sys.modules[__name__], "PENDING", {*PENDING, ("module", "errors.py")})
    with pytest.raises(AssertionError, match=r"module: errors\.py"):
        test_pending_list_names_only_current_violations()
