"""hierot's public boundary: what a plug-in or a benchmark may import is what an ``__all__`` names.

Private modules are named ``_x.py``; each package exports its public names with ``__all__``
(see "What a plug-in may import" in docs/architecture.md). Every file under ``plugins/`` and
``benchmarks/`` and every Python block of ``docs/*.md`` is parsed with :mod:`ast` and each use of
hierot is resolved, one dotted step at a time, from the module it starts at:

* a step into a module is allowed when the module is public (no part of its name starts with
  ``_``);
* a step to a name is allowed when the module's ``__all__`` lists it (a public name of a module
  without ``__all__`` is not part of the boundary: import it from the package that exports it).

Uses are ``import hierot.x``, ``from hierot.x import name`` and attribute chains on a bound module
(``hierot.evaluation.evaluate``, ``figures.samples`` after ``from hierot.evaluation import
figures``), scope by scope: a function's parameter or assignment hides a module of the same name.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = sorted([*(ROOT / "plugins").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")])
DOCS = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


@cache
def is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@cache
def exported(module: str) -> frozenset[str] | None:
    """``module.__all__`` (``None`` where it has none)."""
    names = getattr(importlib.import_module(module), "__all__", None)
    return None if names is None else frozenset(names)


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def step(module: str, name: str) -> tuple[str | None, str | None]:
    """Resolve ``module.name``: (the module it is, if one; the problem, if any)."""
    if private(name):
        return None, f"{module}.{name} is private"
    if is_module(f"{module}.{name}"):
        return f"{module}.{name}", None
    names = exported(module)
    if names is None:
        return None, f"{module} has no __all__: import {name} from the package that exports it"
    if name not in names:
        return None, f"{name} is not in {module}.__all__"
    return None, None


def check_module(dotted: str) -> tuple[str, list[str]]:
    """Walk ``hierot.a.b`` from ``hierot``: the module reached and the problems on the way."""
    parts = dotted.split(".")
    module, problems = parts[0], []
    for part in parts[1:]:
        reached, problem = step(module, part)
        if problem or reached is None:
            return module, [problem or f"{module}.{part} is no module"]
        module = reached
    return module, problems


def _scope_names(scope: ast.AST) -> set[str]:
    """Names a function binds itself (parameters, assignments): they hide outer modules."""
    if not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        return set()
    arguments = scope.args
    bound = {a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]}
    bound |= {a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None}
    for node in _own_nodes(scope):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    return bound


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``scope``, not descending into nested functions or classes."""
    for child in ast.iter_child_nodes(scope):
        yield child
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                  ast.ClassDef)):
            yield from _own_nodes(child)


def _chain(node: ast.Attribute) -> tuple[str, list[str]] | None:
    """``a.b.c`` -> ("a", ["b", "c"]); ``None`` unless the chain starts at a name."""
    attributes: list[str] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        attributes.insert(0, current.attr)
        current = current.value
    return (current.id, attributes) if isinstance(current, ast.Name) else None


def _imports(node: ast.AST, bound: dict[str, str], where: str) -> Iterator[str]:
    """Check one import statement; record the modules it binds in ``bound``."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] != "hierot":
                continue
            module, problems = check_module(alias.name)
            yield from (f"{where}:{node.lineno}: {p}" for p in problems)
            if alias.asname:
                bound[alias.asname] = module
            else:
                bound["hierot"] = "hierot"
    elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
        if node.module.split(".")[0] != "hierot":
            return
        module, problems = check_module(node.module)
        yield from (f"{where}:{node.lineno}: {p}" for p in problems)
        if problems:
            return
        for alias in node.names:
            reached, problem = step(module, alias.name)
            if problem:
                yield f"{where}:{node.lineno}: {problem}"
            elif reached:
                bound[alias.asname or alias.name] = reached


def violations(tree: ast.AST, where: str, outer: dict[str, str] | None = None) -> Iterator[str]:
    """Every import or attribute chain of hierot in ``tree`` that crosses the boundary."""
    bound = {k: v for k, v in (outer or {}).items() if k not in _scope_names(tree)}
    for node in _own_nodes(tree):  # imports first: a module bound anywhere in the scope
        yield from _imports(node, bound, where)
    checked: set[int] = set()
    for node in _own_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            yield from violations(node, where, bound)
        elif isinstance(node, ast.Attribute) and id(node) not in checked:
            chain = _chain(node)
            inner: ast.expr = node
            while isinstance(inner, ast.Attribute):  # only the outermost chain is checked
                checked.add(id(inner))
                inner = inner.value
            if chain and chain[0] in bound:
                yield from _attributes(bound[chain[0]], chain[1], f"{where}:{node.lineno}")


def _attributes(module: str, attributes: list[str], where: str) -> Iterator[str]:
    for name in attributes:
        reached, problem = step(module, name)
        if problem:
            yield f"{where}: {problem}"
        if reached is None:
            return  # past a name: an object's attributes are its own business
        module = reached


def client_files() -> list[tuple[str, str]]:
    files = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in CLIENTS]
    for page in DOCS:
        for k, block in enumerate(FENCE.findall(page.read_text(encoding="utf-8"))):
            files.append((f"{page.relative_to(ROOT)} (python block {k + 1})", block))
    return files


def test_plugins_benchmarks_and_docs_import_only_public_names():
    found = []
    for where, text in client_files():
        try:
            tree = ast.parse(text)
        except SyntaxError:  # a docs block with an ellipsis or a shell prompt: not code
            continue
        found.extend(violations(tree, where))
    assert not found, "imports past hierot's public boundary:\n" + "\n".join(found)


def test_the_checker_sees_private_modules_names_and_unexported_names():
    """The rule itself: each kind of crossing is caught, the public ways pass."""
    code = """
import hierot
import hierot._utils
from hierot.evaluation._metrics import objective_terms
from hierot.training.trainer import Trainer as T
from hierot.registry import _private_name
from hierot.evaluation import figures, load_run
from hierot.training import Trainer

def uses(figures_dict):
    figures.samples, figures.not_exported, hierot.evaluation.evaluate, hierot.spec.schema.Spec
    figures_dict.items()

def shadows(figures):
    return figures.anything
"""
    found = [v.split(": ", 1)[1] for v in violations(ast.parse(code), "example")]
    assert found == [
        "hierot._utils is private",
        "hierot.evaluation._metrics is private",
        "hierot.training.trainer has no __all__: import Trainer from the package that exports it",
        "hierot.registry._private_name is private",
        "not_exported is not in hierot.evaluation.figures.__all__",
        "hierot.spec.schema has no __all__: import Spec from the package that exports it",
    ]


PACKAGE = ROOT / "hierot"
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
)
WITH_ALL = [m for m in MODULES if "__all__" in {
    t.id for node in ast.walk(ast.parse((ROOT / (m.replace(".", "/") + (
        "/__init__.py" if (ROOT / m.replace(".", "/")).is_dir() else ".py"))).read_text()))
    if isinstance(node, (ast.Assign, ast.AnnAssign))
    for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
    if isinstance(t, ast.Name)
}]
PACKAGES = [m for m in MODULES if (ROOT / m.replace(".", "/")).is_dir()]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_package_declares_its_public_names(package):
    if any(private(part) for part in package.split(".")):
        pytest.skip("a private package")
    assert package in WITH_ALL, f"{package}/__init__.py has no __all__"


@pytest.mark.parametrize("module", WITH_ALL)
def test_every_name_in_all_exists(module):
    names = list(importlib.import_module(module).__all__)
    assert len(names) == len(set(names)), f"{module}.__all__ names one twice"
    assert not [n for n in names if private(n)], f"{module}.__all__ names a private name"
    loaded = importlib.import_module(module)
    missing = [n for n in names if not hasattr(loaded, n)]
    assert not missing, f"{module}.__all__ names what it does not have: {missing}"
