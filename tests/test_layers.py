"""The package's layers, read from its imports: no import reaches up, and there is no cycle.

Every ``import``/``from ... import`` in the package's source counts, including those inside
functions and under ``TYPE_CHECKING`` (a lazy import is still a dependency). A package may
import only packages in lower layers, with no exception: the fixture modules, which read the
run's state, are one package (``fixtures``) above ``state``, loaded by the plugin by name.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import pytest_gpubench

PACKAGE = Path(pytest_gpubench.__file__).parent

# lowest first; a name is a top-level module or package of pytest_gpubench
LAYERS: list[set[str]] = [
    {"__init__", "errors"},
    {"settings"},
    {"progress"},
    {"devices"},
    {"models"},
    {"metrics"},
    {"engines"},
    {"selection"},
    {"results"},
    {"launch"},
    {"bench"},
    {"serving"},
    {"workloads"},
    {"distributed"},
    {"report"},
    {"advise"},
    {"cli"},
    {"testing"},
    {"state"},
    {"fixtures"},
    {"hookspec"},
    {"plugin"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
GLUE = {"__init__", "plugin", "hookspec", "state", "settings", "errors"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [f"{target}.{a.name}" for a in node.names] + [target]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    found.add(target)
                    break
        edges[name] = found
    return edges


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def test_every_top_level_name_has_a_layer() -> None:
    names = {layer_of(m) for m in graph()}
    assert names - set(RANK) == set(), "add new packages to LAYERS"


def test_the_top_level_holds_only_the_plugins_glue() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules <= GLUE, f"top-level modules that belong in a package: {modules - GLUE}"


def test_no_import_reaches_up_or_across() -> None:
    wrong = []
    for module, deps in graph().items():
        for dep in deps:
            a, b = layer_of(module), layer_of(dep)
            if a == b or b == "__init__":
                continue
            if RANK[b] >= RANK[a]:
                wrong.append(f"{module} -> {dep} ({a} is not above {b})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle() -> None:
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    assert not cycles, cycles


@pytest.mark.parametrize("bad", ["pytest_gpubench.plugin", "pytest_gpubench.state"])
def test_the_check_sees_an_upward_import(bad: str, monkeypatch) -> None:
    """The checks above can fail: a model module importing the plugin or the state is seen."""
    edges = graph()
    edges["pytest_gpubench.models.spec"] = {*edges["pytest_gpubench.models.spec"], bad}
    monkeypatch.setattr(sys.modules[__name__], "graph", lambda: edges)
    with pytest.raises(AssertionError):
        test_no_import_reaches_up_or_across()


def test_the_check_sees_a_cycle(monkeypatch) -> None:
    edges = graph()
    edges["pytest_gpubench.models.kvcache"] = {"pytest_gpubench.models.catalog"}
    edges["pytest_gpubench.models.catalog"] = {"pytest_gpubench.models.kvcache"}
    monkeypatch.setattr(sys.modules[__name__], "graph", lambda: edges)
    with pytest.raises(AssertionError):
        test_no_import_cycle()


#: private names of other libraries the package reaches on purpose, each for a reason:
#: pytest's parser groups (which plugin owns an option), its fixture request on an item (the
#: confirmation re-run), its option adder for xdist's lower-case -n, pytest-benchmark's file
#: numbering (the save lock), pytest-timeout's per-item setting, namedtuple's _asdict,
#: transformers' compile switch and aten's op names
FOREIGN_PRIVATE = {
    "_addoption", "_anonymous", "_groups", "_parser", "_request", "_initrequest",
    "_next_num", "_get_item_settings", "_asdict", "_compile_all_devices",
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_flash_attention_for_cpu_backward",
}  # fmt: skip


def private_reaches(source: str) -> list[str]:
    """``x._name`` where ``x`` is not the object itself (``self``/``cls``) nor a name this
    module defines at its top level: a reach into another module's or object's private part."""
    tree = ast.parse(source)
    own = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    } | {n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") or node.attr in FOREIGN_PRIVATE:
            continue
        base = node.value
        if isinstance(base, ast.Name) and (
            base.id in ("self", "cls", "sys", "os") or base.id in own
        ):
            continue
        found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_reaches_into_another_ones_private_parts() -> None:
    reaches = {
        str(path.relative_to(PACKAGE)): found
        for path in sorted(PACKAGE.rglob("*.py"))
        if (found := private_reaches(path.read_text()))
    }
    assert not reaches, reaches


def test_the_private_check_sees_a_reach() -> None:
    """The check above can fail: a call of another module's private function is seen."""
    assert private_reaches("from pytest_gpubench.launch import cleanup\ncleanup._depth\n")
    assert private_reaches("def f(bench):\n    return bench._model(None, None)\n")
    assert not private_reaches("class A:\n    def f(self):\n        return self._x\n")
