"""The package's structure: no import cycles between its modules, no module over 600 lines, no
dataclass without a docstring (see test_every_dataclass_has_a_docstring).

ARCHITECTURE.md gives every concern one owner (one decoder per family, one source of
batches, one owners service, one renderer per output…) and the data flows one way, from
``kernel/`` through ``query.py`` to the consumers.  A cycle in the imports means two
modules each need the other: the ownership has leaked, and neither can be read, tested or
changed alone.  A lazy import (inside a function, to keep start-up cheap) is still an
import: it runs when the function does, and a cycle through it is still a cycle.  Imports
under ``if TYPE_CHECKING:`` are for the type checker only and are left out.

The graph is read from the sources with :mod:`ast`; the package itself is not imported.
The checker is a function of a root directory and a package name, so that it is tested
on a small package of its own too.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = "sockscope"
MAX_LINES = 600  # the project's rule: a module longer than this owns more than one thing


@dataclass(frozen=True, order=True)
class Site:
    """Where an import is written: a file and a line."""

    path: Path
    line: int


@dataclass
class ImportGraph:
    """The runtime imports between the modules of one package."""

    root: Path
    modules: dict[str, Path]  # module name -> its file
    edges: dict[str, dict[str, set[Site]]]  # importer -> imported -> where
    unresolved: list[tuple[Site, str]] = field(default_factory=list)  # imports the checker could not follow

    def show(self, site: Site) -> str:
        """``site`` as ``path:line``, the path relative to the root's parent (``src/sockscope/…``)."""
        try:
            path = site.path.relative_to(self.root.parent)
        except ValueError:
            path = site.path
        return f"{path}:{site.line}"

    def show_edge(self, a: str, b: str) -> str:
        sites = sorted(self.edges[a][b])
        first = self.show(sites[0])
        more = [str(s.line) if s.path == sites[0].path else self.show(s) for s in sites[1:]]
        return ", ".join([first, *more])


def package_modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` (a directory under ``root``) by dotted name; a package is its ``__init__``."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _type_only(test: ast.expr) -> bool:
    """``TYPE_CHECKING``, ``_TYPE_CHECKING``, ``typing.TYPE_CHECKING``…: a block for the type checker."""
    if isinstance(test, ast.Name):
        return test.id.endswith("TYPE_CHECKING")
    return isinstance(test, ast.Attribute) and test.attr.endswith("TYPE_CHECKING")


class _Imports:
    """The imports of one module, wherever they are written (module level, functions, methods, classes,
    ``try``/``with``/loop bodies), except in the body of an ``if TYPE_CHECKING:``.

    Statements are walked, not every node: an import is a statement.  The expressions are searched
    only for ``__import__(…)`` / ``import_module(…)`` calls, and only in a file that names one."""

    def __init__(self, graph: ImportGraph, package: str, name: str, path: Path, calls: bool) -> None:
        self.graph, self.package, self.name, self.path, self.calls = graph, package, name, path, calls
        self.is_package = path.name == "__init__.py"
        self.out = graph.edges.setdefault(name, {})

    # -- where the names lead

    def _ours(self, name: str) -> bool:
        return name == self.package or name.startswith(self.package + ".")

    def _edge(self, node: ast.stmt | ast.expr, target: str) -> None:
        site = Site(self.path, node.lineno)
        if target in self.graph.modules:
            self.out.setdefault(target, set()).add(site)
        else:
            self.graph.unresolved.append((site, f"{target}: no such module in {self.package}"))

    def _unresolved(self, node: ast.stmt | ast.expr, what: str) -> None:
        self.graph.unresolved.append((Site(self.path, node.lineno), what))

    def _from(self, node: ast.ImportFrom, base: str) -> None:
        """``from base import names``: a name that is a submodule is an edge to it, any other to ``base``."""
        if not self._ours(base):
            return
        for alias in node.names:
            if alias.name != "*" and f"{base}.{alias.name}" in self.graph.modules:
                self._edge(node, f"{base}.{alias.name}")
            else:
                self._edge(node, base)

    # -- the statements

    def walk(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.If):
                test = stmt.test
                if _type_only(test):  # the body is for the type checker; the else branch runs
                    self.walk(stmt.orelse)
                    continue
                if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and _type_only(test.operand):
                    self.walk(stmt.body)
                    continue
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if self._ours(alias.name):
                        self._edge(stmt, alias.name)
            elif isinstance(stmt, ast.ImportFrom):
                self._import_from(stmt)
            for name, value in ast.iter_fields(stmt):
                if name in ("body", "orelse", "finalbody"):
                    self.walk(value)
                elif name == "handlers":  # try: except …:
                    for handler in value:
                        self.walk(handler.body)
                elif name == "cases":  # match: case …:
                    for case in value:
                        self._calls(case.guard)
                        self.walk(case.body)
                elif self.calls:
                    for item in value if isinstance(value, list) else [value]:
                        self._calls(item)

    def _import_from(self, node: ast.ImportFrom) -> None:
        if not node.level:
            self._from(node, node.module or "")
            return
        # relative: from the module's package, up level - 1 more
        anchor = self.name.split(".") if self.is_package else self.name.split(".")[:-1]
        if node.level > len(anchor):
            self._unresolved(node, f"relative import beyond the top-level package in {self.name}")
            return
        anchor = anchor[: len(anchor) - (node.level - 1)]
        self._from(node, ".".join(anchor + ([node.module] if node.module else [])))

    def _calls(self, node: object) -> None:
        """``__import__(…)`` and ``import_module(…)`` calls in an expression (decorators, defaults, values…)."""
        if not isinstance(node, ast.AST):
            return
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and sub.args:
                func = sub.func
                called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if called in ("__import__", "import_module"):
                    self._dynamic(sub, called, sub.args[0])

    def _dynamic(self, node: ast.Call, called: str, arg: ast.expr) -> None:
        """``__import__(NAME, …)`` / ``importlib.import_module(NAME)``: followed when NAME is a string
        known here (a literal, or an f-string whose parts are literals or ``__name__``)."""
        prefix, known = self._static_prefix(arg)
        if known and not prefix.startswith("."):
            if not self._ours(prefix):
                return
            self._edge(node, prefix)
            if called == "__import__":  # fromlist=[…]: those of its names that are submodules are imported too
                fromlist = node.args[3] if len(node.args) > 3 else next(
                    (k.value for k in node.keywords if k.arg == "fromlist"), None)
                if isinstance(fromlist, (ast.List, ast.Tuple)):
                    names = [item.value for item in fromlist.elts
                             if isinstance(item, ast.Constant) and isinstance(item.value, str)]
                    for name in names:
                        if f"{prefix}.{name}" in self.graph.modules:
                            self._edge(node, f"{prefix}.{name}")
            return
        # not known here: worth a note if it could name one of ours
        head = prefix[: len(self.package) + 1]
        if (self.package + ".").startswith(head) or prefix.startswith("."):
            self._unresolved(node, f"{called}({ast.unparse(arg)}): the module's name is made at run time")

    def _static_prefix(self, arg: ast.expr) -> tuple[str, bool]:
        """The start of the string ``arg`` that is known without running it, and whether that is all of it."""
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value, True
        if not isinstance(arg, ast.JoinedStr):
            return "", False
        prefix = ""
        for part in arg.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                prefix += part.value
            elif (isinstance(part, ast.FormattedValue) and part.conversion == -1 and part.format_spec is None
                  and isinstance(part.value, ast.Name) and part.value.id == "__name__"):
                prefix += self.name
            else:
                return prefix, False
        return prefix, True


def import_graph(root: Path, package: str) -> ImportGraph:
    """The runtime imports between the modules of ``package`` (the directory ``root/package``)."""
    graph = ImportGraph(root, package_modules(root, package), {})
    for name, path in graph.modules.items():
        source = path.read_bytes()
        calls = b"__import__" in source or b"import_module" in source
        _Imports(graph, package, name, path, calls).walk(ast.parse(source, filename=str(path)).body)
    return graph


def _components(edges: dict[str, dict[str, set[Site]]]) -> list[list[str]]:
    """The strongly connected components of the graph (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _shortest_path(edges: dict[str, dict[str, set[Site]]], start: str, goal: str, within: set[str]) -> list[str]:
    """The shortest path from ``start`` to ``goal`` through the modules ``within`` (there is one: a component)."""
    came: dict[str, str] = {start: start}
    todo = deque([start])
    while todo:
        v = todo.popleft()
        if v == goal:
            break
        for w in sorted(edges[v]):
            if w in within and w not in came:
                came[w] = v
                todo.append(w)
    path = [goal]
    while path[-1] != start:
        path.append(came[path[-1]])
    return path[::-1]


def import_cycles(graph: ImportGraph) -> list[list[str]]:
    """Cycles of the graph, each as ``[a, b, …, a]``: for every edge inside a strongly connected component of more
    than one module, the shortest cycle through it (so every edge that takes part in a cycle is shown), and every
    module importing itself."""
    cycles: list[list[str]] = []
    for component in _components(graph.edges):
        within = set(component)
        seen: set[tuple[str, ...]] = set()
        found = []
        for a in component:
            for b in sorted(graph.edges[a]):
                if b not in within or (a == b and len(component) > 1):
                    continue
                ring = [a] if a == b else [a, *_shortest_path(graph.edges, b, a, within)[:-1]]
                turn = ring.index(min(ring))
                key = tuple(ring[turn:] + ring[:turn])
                if key not in seen:
                    seen.add(key)
                    found.append([*key, key[0]])
        cycles += sorted(found, key=lambda c: (len(c), c))
    for a in sorted(graph.edges):  # a self-import inside a larger component
        if a in graph.edges[a] and [a, a] not in cycles:
            cycles.append([a, a])
    return cycles


def find_import_cycles(root: Path, package: str) -> tuple[ImportGraph, list[list[str]]]:
    """The import graph of ``package`` under ``root`` and its cycles (see :func:`import_cycles`)."""
    graph = import_graph(root, package)
    return graph, import_cycles(graph)


def describe_cycles(graph: ImportGraph, cycles: list[list[str]]) -> str:
    """The cycles as ``a -> b -> a``, each edge followed by the lines that make it."""
    out = [f"{len(cycles)} import cycle(s) between the package's modules (lazy imports count; "
           "`if TYPE_CHECKING:` ones do not).  Cut one edge of each:"]
    for cycle in cycles:
        out.append("")
        out.append("  " + " -> ".join(cycle))
        for a, b in zip(cycle, cycle[1:]):
            out.append(f"      {a} -> {b}: {graph.show_edge(a, b)}")
    if graph.unresolved:
        out.append("")
        out.append("Not followed (not known without running the code):")
        out += [f"  {graph.show(site)}: {what}" for site, what in sorted(graph.unresolved)]
    return "\n".join(out)


def count_lines(path: Path) -> int:
    """Lines as ``wc -l`` counts them, and a last line without its newline."""
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


# -- the package


def test_no_import_cycles() -> None:
    graph, cycles = find_import_cycles(SRC, PACKAGE)
    assert len(graph.modules) > 10  # the package was found where it is
    assert not cycles, describe_cycles(graph, cycles)


def test_no_module_over_600_lines() -> None:
    sizes = {path: count_lines(path) for path in sorted((SRC / PACKAGE).rglob("*.py"))}
    assert sizes
    over = [f"  {path.relative_to(ROOT)}: {n} lines" for path, n in sizes.items() if n > MAX_LINES]
    assert not over, f"modules over {MAX_LINES} lines (split by concern, see ARCHITECTURE.md):\n" + "\n".join(over)


def test_every_dataclass_has_a_docstring() -> None:
    """``dataclasses`` imports the real ``inspect`` (``ast``, ``dis``, ``tokenize``: ~6 ms of a start) to
    write a docstring for a class without one; ``_lazy_inspect`` keeps it a stub only while every
    dataclass has its own (``who :PORT`` paid that for one)."""
    bare = []
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and not ast.get_docstring(node) and any(
                    "dataclass" in ast.unparse(d) for d in node.decorator_list):
                bare.append(f"  {path.relative_to(ROOT)}: {node.name}")
    assert not bare, "dataclasses without a docstring:\n" + "\n".join(bare)


# -- the checker itself, on a package of its own


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    _write(tmp_path, {
        "pkg/__init__.py": "",
        # a -> b at module level; b -> a lazily, in a function: a cycle
        "pkg/a.py": (
            "from pkg import b\n"
            "TYPE_CHECKING = False\n"
            "if TYPE_CHECKING:\n"
            "    from pkg.c import C\n"  # c -> a below: type-only, no cycle
            "else:\n"
            "    from pkg import leaf\n"  # the else branch runs: an edge
        ),
        "pkg/b.py": "def f():\n    from pkg.a import thing\n    return thing\n",
        "pkg/c.py": (
            "import typing\n"
            "from pkg.a import x\n"
            "class C:\n"
            "    def m(self):\n"
            "        if typing.TYPE_CHECKING:\n"
            "            from pkg.c import C\n"  # a type-only self-import: not one
            "        return __import__('pkg.leaf')\n"
        ),
        "pkg/leaf.py": "",
        # `from pkg.sub import name` (a name, not a module) is an edge to pkg.sub: sub <-> other is a cycle
        "pkg/sub/__init__.py": "name = 1\ndef g():\n    from . import other\n    return other\n",
        "pkg/sub/other.py": "from pkg.sub import name\n",
        # a name made at run time cannot be followed: it is noted
        "pkg/dyn.py": "import importlib\ndef load(n):\n    return importlib.import_module(f'pkg.{n}')\n",
    })
    graph, cycles = find_import_cycles(tmp_path, "pkg")

    assert graph.edges["pkg.a"] == {"pkg.b": {Site(tmp_path / "pkg/a.py", 1)},
                                    "pkg.leaf": {Site(tmp_path / "pkg/a.py", 6)}}
    assert graph.edges["pkg.c"] == {"pkg.a": {Site(tmp_path / "pkg/c.py", 2)},
                                    "pkg.leaf": {Site(tmp_path / "pkg/c.py", 7)}}
    assert graph.edges["pkg.sub.other"] == {"pkg.sub": {Site(tmp_path / "pkg/sub/other.py", 1)}}
    assert graph.edges["pkg.sub"] == {"pkg.sub.other": {Site(tmp_path / "pkg/sub/__init__.py", 3)}}
    assert "pkg" not in graph.edges["pkg.sub"]  # no edge to a parent package for importing its child
    assert cycles == [["pkg.a", "pkg.b", "pkg.a"], ["pkg.sub", "pkg.sub.other", "pkg.sub"]]
    assert graph.edges["pkg.dyn"] == {}
    assert graph.unresolved == [(Site(tmp_path / "pkg/dyn.py", 3),
                                 "import_module(f'pkg.{n}'): the module's name is made at run time")]

    text = describe_cycles(graph, cycles)
    assert "  pkg.a -> pkg.b -> pkg.a\n" in text
    assert f"pkg.a -> pkg.b: {tmp_path.name}/pkg/a.py:1\n" in text
    assert f"pkg.b -> pkg.a: {tmp_path.name}/pkg/b.py:2\n" in text
    assert f"pkg.sub.other -> pkg.sub: {tmp_path.name}/pkg/sub/other.py:1" in text
    assert "pkg.c" not in text

    # with the lazy import gone, the type-only back-edge alone makes no cycle
    (tmp_path / "pkg/b.py").write_text("def f():\n    return 1\n")
    (tmp_path / "pkg/sub/__init__.py").write_text("name = 1\n")
    assert find_import_cycles(tmp_path, "pkg")[1] == []
