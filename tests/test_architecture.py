"""The package's imports point one way, with no cycles (see docs/architecture.md).

Every module of ``hierot/`` is parsed with :mod:`ast` (nothing is imported), and each import of
another hierot module becomes an edge of a graph: module-level imports *and* imports inside
functions (a lazy import still runs, so it counts both for cycles and for direction). Not edges:

* imports under ``if TYPE_CHECKING:`` (never executed: annotations only);
* the registries' loading of their built-ins by a module *name* (``importlib``), which is how a
  registry reaches the components registered into it, exactly as it reaches plug-ins;
* the packages that enclose the importing module: importing ``a.b.c`` from ``a.b.d`` runs no
  ``a.b/__init__`` that is not already running, so a package may re-export its own parts.

Importing ``a.b.c`` from anywhere else also runs ``a/__init__`` and ``a/b/__init__``: those
packages are edges too (a package ``__init__`` that imports its parts is where half-loaded-module
loops hide).

``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hierot"

LAYERS: dict[str, tuple[str, ...]] = {
    # bottom first; a module may import its own layer (without cycles) and the layers below
    "foundations": ("hierot.errors", "hierot._utils", "hierot._version", "hierot._yaml",
                    "hierot._docstrings", "hierot.distributions", "hierot.precision"),
    "contracts and registries": ("hierot.components", "hierot._registry", "hierot.registry"),
    "components": (
        "hierot.networks", "hierot.costs", "hierot.divergences", "hierot.penalties",
        "hierot.datasets", "hierot.model", "hierot.objectives", "hierot.schedules",
        "hierot.optimizers", "hierot.samplers",
    ),
    "spec": ("hierot.spec",),
    "run directory": ("hierot.run",),
    "build": ("hierot.builder",),
    "training": ("hierot.training",),
    "evaluation": ("hierot.evaluation",),
    "trackers": ("hierot.callbacks",),
    "sweeps": ("hierot.sweeps",),
    "api": ("hierot.api",),
    "cli": ("hierot.cli", "hierot.__main__"),
    "package": ("hierot",),
}
"""The layer order of docs/architecture.md, bottom first; a module's layer is its longest prefix."""

MAX_LINES = 400
"""No module of the package or of the benchmarks is longer (one job per module)."""

MAX_FUNCTION_LINES = 60
"""No function of the package has more lines of code (see :func:`code_lines`)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for index, prefixes in enumerate(LAYERS.values()):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    if rank < 0:
        raise AssertionError(f"{module} is in no layer of LAYERS: add it (and to the docs)")
    return rank


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str, tree: ast.AST, is_package: bool,
               type_only: bool = False) -> list[tuple[str, int]]:
    """(imported hierot module, line) for every import statement that runs (``type_only``: and
    those under ``if TYPE_CHECKING:``)."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_only:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((candidate if candidate in MODULES else base, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return [(name, line) for name, line in found if name == "hierot" or name.startswith("hierot.")]


def with_packages(module: str, edges: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Each import and the packages it runs on the way, less those that enclose ``module``."""
    enclosing = {".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 2)}
    result = []
    for target, line in edges:
        parts = target.split(".")
        for k in range(1, len(parts) + 1):
            step = ".".join(parts[:k])
            on_the_way = k < len(parts) and step in enclosing
            if not on_the_way and (step, line) not in result:
                result.append((step, line))
    return result


def import_graph(type_only: bool = False) -> dict[str, list[tuple[str, int]]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found = imports_of(name, tree, path.name == "__init__.py", type_only)
        edges = with_packages(name, found)
        graph[name] = [(target, line) for target, line in edges if target != name]
    return graph


def find_cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, _ in graph.get(node, []):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return cycles


def upward_imports(graph: dict[str, list[tuple[str, int]]]) -> list[str]:
    names = list(LAYERS)
    problems = []
    for module, edges in sorted(graph.items()):
        for target, line in edges:
            if target not in MODULES:
                problems.append(f"{module}:{line} imports {target}, which is not a module")
            elif layer_of(target) > layer_of(module):
                problems.append(
                    f"{module}:{line} ({names[layer_of(module)]}) imports {target} "
                    f"({names[layer_of(target)]}), a layer above"
                )
    return problems


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_cycles():
    assert find_cycles(import_graph()) == []


def test_no_import_cycles_through_annotations():
    """A cycle that only ``if TYPE_CHECKING:`` hides is still two modules that need each other
    (``distributed._ddp`` named ``_runtime``'s class, which wraps with it; ``spec._checks`` was
    typed with the ``Spec`` whose validator calls it): none anywhere in the package."""
    assert find_cycles(import_graph(type_only=True)) == []


def test_imports_point_down_the_layers():
    assert upward_imports(import_graph()) == []


def test_the_checks_catch_a_loop_and_an_upward_import():
    """The old loop (the CLI imported the evaluation commands, which imported the CLI) is caught."""
    graph = import_graph()
    graph["hierot.cli._evaluation"] = [*graph["hierot.cli._evaluation"], ("hierot.cli", 19)]
    assert ["hierot.cli", "hierot.cli._evaluation"] in find_cycles(graph)
    lazy = ast.parse("def f():\n    from hierot.cli import main\n")
    graph["hierot.evaluation.report"] = imports_of("hierot.evaluation.report", lazy, False)
    assert any("hierot.evaluation.report:2" in p for p in upward_imports(graph))
    guarded = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                        "    import hierot.cli\n")
    assert imports_of("hierot.errors", guarded, False) == []


@pytest.mark.parametrize("folder", ["hierot", "benchmarks"])
def test_modules_are_short(folder):
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def code_lines(source: str, function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The lines of code of ``function`` in ``source``: its whole extent (nested functions
    included) less blank lines, comment lines and docstrings (its own and nested ones)."""
    lines = set(range(function.lineno, (function.end_lineno or function.lineno) + 1))
    for node in ast.walk(function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                lines -= set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    text = source.splitlines()
    return sum(1 for n in lines if text[n - 1].strip() and not text[n - 1].strip().startswith("#"))


def test_code_lines_leaves_out_docstrings_comments_and_blank_lines():
    source = ('def f(x):\n    """Doc,\n    two lines."""\n    # a comment\n\n    y = x\n'
              '    def g():\n        """Nested doc."""\n        return 1\n    return y  # kept\n')
    (function,) = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
    assert code_lines(source, function) == 5  # def f, y = x, def g, return 1, return y


def test_functions_are_short():
    long = {
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name}": n
        for path in sorted(PACKAGE.rglob("*.py"))
        for source in [path.read_text(encoding="utf-8")]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (n := code_lines(source, node)) > MAX_FUNCTION_LINES
    }
    assert long == {}


def test_the_command_line_starts_without_torch():
    """``hierot --help`` imports neither torch nor matplotlib (the commands import them lazily)."""
    import subprocess
    import sys

    code = ("import sys\nfrom hierot.cli import make_parser\nmake_parser().format_help()\n"
            "print(sorted(m for m in ('torch', 'matplotlib', 'pydantic') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=ROOT)
    assert done.stdout.strip() == "[]"
