"""No module reaches into another one's private names.

A name with a leading underscore is its module's own: the module may rename, split or drop
it without looking elsewhere.  A name two modules share is part of the package's inner API
and is spelled without the underscore, where a reader of the owning module sees that others
depend on it (ARCHITECTURE.md: one owner for each concern).  The check reads the sources with
:mod:`ast` and flags, in every module of the package:

* ``from pkg.mod import _name`` where ``_name`` is not a submodule (``from pkg import _addr``,
  a module kept private to the package, is fine: its public names are for the package);
* ``alias._name`` where ``alias`` is a module of the package, bound by an import in the same
  scope or an enclosing one and not assigned anything else in the scope that reads it.

Dunder names (``__version__``) are not private.  Like test_architecture, the checker is a
function of a root directory and a package name, and is tested on a small package of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = "sockscope"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` by dotted name; a package is its ``__init__``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _assigned(scope: ast.AST) -> set[str]:
    """The names a scope binds other than by import (assignments, loop and ``with`` targets, its
    arguments, the functions and classes it defines), its nested functions' own left out."""
    names: set[str] = set()
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        a = scope.args
        names |= {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if x is not None}
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue  # (its own scope)
        todo.extend(ast.iter_child_nodes(node))
    return names


class _Checker:
    def __init__(self, modules: dict[str, Path], package: str, name: str, path: Path) -> None:
        self.modules, self.package, self.name, self.path = modules, package, name, path
        self.found: list[tuple[str, int, str]] = []

    def _base(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        here = self.name.split(".")
        if self.path.name != "__init__.py":
            here = here[:-1]
        here = here[: len(here) - node.level + 1]
        return ".".join(here + ([node.module] if node.module else []))

    def _imports(self, node: ast.AST, bound: dict[str, str]) -> None:
        """The module aliases an import statement binds into ``bound``; private names flagged."""
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in self.modules and alias.asname:
                    bound[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = self._base(node)
            if base != self.package and not base.startswith(self.package + "."):
                return
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in self.modules:
                    bound[alias.asname or alias.name] = full
                elif _private(alias.name):
                    self.found.append((str(self.path), node.lineno, f"from {base} import {alias.name}"))

    def scope(self, scope: ast.AST, outer: dict[str, str]) -> None:
        """Check ``scope`` (a module or a function), its module aliases those of ``outer`` and its own."""
        assigned = _assigned(scope)
        bound = dict(outer)
        nested: list[ast.AST] = []
        reads: list[ast.Attribute] = []
        todo = list(ast.iter_child_nodes(scope))
        while todo:
            node = todo.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                nested.append(node)
                # (decorators, defaults and annotations are read in this scope)
                todo.extend(getattr(node, "decorator_list", []))
                todo.extend(d for d in [*node.args.defaults, *node.args.kw_defaults] if d is not None)
                continue
            self._imports(node, bound)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                reads.append(node)
            todo.extend(ast.iter_child_nodes(node))
        for name in assigned:  # (a name also assigned in the scope may not be the module where it is read)
            bound.pop(name, None)
        for node in reads:
            assert isinstance(node.value, ast.Name)
            module = bound.get(node.value.id)
            if module is not None and _private(node.attr) and f"{module}.{node.attr}" not in self.modules:
                self.found.append((str(self.path), node.lineno, f"{node.value.id}.{node.attr} ({module})"))
        for inner in nested:
            self.scope(inner, bound)


def private_uses(root: Path, package: str) -> list[tuple[str, int, str]]:
    """(file, line, what) of every use of another module's private name in ``package`` under ``root``."""
    modules = _modules(root, package)
    found: list[tuple[str, int, str]] = []
    for name, path in modules.items():
        checker = _Checker(modules, package, name, path)
        checker.scope(ast.parse(path.read_text(), str(path)), {})
        found += checker.found
    return sorted(found)


def test_no_module_uses_another_ones_private_names() -> None:
    assert len(_modules(SRC, PACKAGE)) > 10  # the package was found where it is
    found = private_uses(SRC, PACKAGE)
    assert not found, "private names used across modules (make the shared name public, in its owner):\n" + \
        "\n".join(f"  {Path(f).relative_to(ROOT)}:{line}: {what}" for f, line, what in found)


def test_the_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/_inner.py": "value = 1\n_hidden = 2\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/own.py": "_x = 1\ndef _f():\n    return _x\n",
        "pkg/a.py": (
            "from pkg import _inner\n"  # a private module: fine
            "from pkg._inner import value\n"  # its public name: fine
            "from pkg.sub.own import _f\n"  # 3: flagged
            "from pkg.sub import own as o\n"
            "def g():\n"
            "    return o._x, _inner._hidden, _inner.value\n"  # 6: two flagged
            "def h(o):\n"
            "    return o._x\n"  # an argument of that name: not the module
            "def k():\n"
            "    from .sub import own\n"
            "    own = object()\n"  # assigned in this scope: not the module
            "    return own._x, o.__name__\n"
            "def m():\n"
            "    from .sub import own\n"
            "    return lambda: own._x\n"  # 15: the enclosing scope's import
        ),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = [(Path(f).name, line, what) for f, line, what in private_uses(tmp_path, "pkg")]
    assert found == [
        ("a.py", 3, "from pkg.sub.own import _f"),
        ("a.py", 6, "_inner._hidden (pkg._inner)"),
        ("a.py", 6, "o._x (pkg.sub.own)"),
        ("a.py", 15, "own._x (pkg.sub.own)"),
    ]
