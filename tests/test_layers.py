"""Which way imports point: the package layers as a test, and no module import cycles.

An arrow means "may import"; nothing imports a higher layer or a package beside it:

    layer 0   schema, hardware   nothing of the project
    layer 1   sync, web, banking schema
    layer 2   agent              schema, sync, web, hardware
              hq                 schema, sync, web, banking
    layer 3   loyalty            everything (the composition root); nobody imports it

Below the services no web or CLI framework (fastapi, starlette, uvicorn, jinja2, click),
except that web/ is where the shared HTTP plumbing uses the web ones.

Every import counts wherever it is written: at module level, inside a function, or under
`if TYPE_CHECKING:`. A function-level import hides a cycle from the interpreter, not from a
reader or from mypy, so it is not a way out of one. (An `importlib` call is not seen: do not
use one to get round this test.)

What needs both sides (the `loyalty` command, HQ's default programme, the demo chain) is
wired in loyalty/, the composition root. PENDING_WP3, the allow-set kept while that package
was built, is empty and stays so.

Plain `ast` over the source files, nothing imported: it runs in well under a second.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYER = {"schema": 0, "hardware": 0, "sync": 1, "web": 1, "banking": 1, "agent": 2, "hq": 2,
         "loyalty": 3}
MAY_IMPORT: dict[str, frozenset[str]] = {
    "schema": frozenset(),
    "hardware": frozenset(),
    "sync": frozenset({"schema"}),
    "web": frozenset({"schema"}),
    "banking": frozenset({"schema"}),
    "agent": frozenset({"schema", "sync", "web", "hardware"}),
    "hq": frozenset({"schema", "sync", "web", "banking"}),
    "loyalty": frozenset({"schema", "hardware", "sync", "web", "banking", "agent", "hq"}),
}
# Web and CLI frameworks belong to the services and the composition root. Below them only
# web/ may serve HTTP (its error rendering and server runner), and nothing below renders a
# command line. Other libraries are free: sync keeps requests and serial (transports, the
# modem), hardware keeps smartcard and serial (readers), schema keeps pydantic.
FRAMEWORKS = frozenset({"fastapi", "starlette", "uvicorn", "jinja2", "click"})
FRAMEWORKS_ALLOWED: dict[str, frozenset[str]] = {
    "schema": frozenset(),
    "hardware": frozenset(),
    "sync": frozenset(),
    "web": frozenset({"fastapi", "starlette", "uvicorn", "jinja2"}),
    "banking": frozenset(),
    "agent": FRAMEWORKS,
    "hq": FRAMEWORKS,
    "loyalty": FRAMEWORKS,
}
NOT_PACKAGES = frozenset({"tests", "bench"})

# (importer, imported) module pairs allowed against the rules while work package WP3 moved
# the `loyalty` command and the demo into loyalty/ (the composition root). Empty since then:
# do not add to it; wire agent and hq together in loyalty/ instead.
PENDING_WP3: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Import:
    importer: str  # module name, e.g. agent.sales
    target: str  # the project module it names, or the top-level name of a library
    path: str  # relative to the repository root
    line: int
    text: str  # the import statement's first line
    where: str  # "module level", "in function f", "under TYPE_CHECKING"
    name: str  # what it takes from the target: a name, or "" for the module itself

    @property
    def site(self) -> str:
        return f"{self.path}:{self.line} `{self.text}` ({self.where})"


@dataclass(frozen=True)
class Tree:
    modules: frozenset[str]
    imports: tuple[Import, ...]

    @property
    def project(self) -> list[Import]:
        return [i for i in self.imports if i.target.split(".")[0] in LAYER]

    @property
    def libraries(self) -> list[Import]:
        return [i for i in self.imports if i.target.split(".")[0] not in LAYER]


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class _Collector(ast.NodeVisitor):
    """Every import statement of one file, with where it sits."""

    def __init__(self) -> None:
        self.found: list[tuple[ast.Import | ast.ImportFrom, str]] = []
        self._where: list[str] = []

    def _here(self) -> str:
        return self._where[-1] if self._where else "module level"

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._where.append(f"in function {node.name}")
        self.generic_visit(node)
        self._where.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
        if name == "TYPE_CHECKING":
            self._where.append("under TYPE_CHECKING")
            for child in node.body:
                self.visit(child)
            self._where.pop()
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self._here()))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append((node, self._here()))


def _resolve(name: str, modules: frozenset[str]) -> str:
    """The longest prefix of a dotted name that is a project module (else its top name)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return parts[0]


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool,
             modules: frozenset[str]) -> Iterator[tuple[str, str]]:
    """(target, name) for each name the statement imports."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield _resolve(alias.name, modules), ""
        return
    base = node.module or ""
    if node.level:
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, *([base] if base else [])])
    if base == "__future__":
        return
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if submodule in modules:
            yield submodule, ""
        else:
            yield _resolve(base, modules), alias.name


def scan(root: Path, packages: Iterable[str]) -> Tree:
    files = {module_name(root, p): p for pkg in packages if (root / pkg).is_dir()
             for p in sorted((root / pkg).rglob("*.py"))}
    modules = frozenset(files)
    imports: list[Import] = []
    for name, path in files.items():
        source = path.read_text(encoding="utf-8")
        collector = _Collector()
        collector.visit(ast.parse(source, filename=str(path)))
        lines = source.splitlines()
        for node, where in collector.found:
            text = lines[node.lineno - 1].strip()
            for target, what in _targets(node, name, path.name == "__init__.py", modules):
                if target != name:
                    imports.append(Import(name, target, path.relative_to(root).as_posix(),
                                          node.lineno, text, where, what))
    return Tree(modules, tuple(imports))


@cache
def project() -> Tree:
    return scan(ROOT, LAYER)


# --- the three rules -------------------------------------------------------------------
def _advice(importer_pkg: str, target_pkg: str) -> str:
    if target_pkg == "loyalty":
        return ("loyalty is the composition root and nothing imports it: move what you need "
                "out of loyalty/ into the lowest package that owns it")
    if LAYER[target_pkg] > LAYER[importer_pkg]:
        return (f"{importer_pkg} sits below {target_pkg}: move the code you need down into "
                f"{importer_pkg} (or lower), or let the caller pass it in (a parameter, or a "
                f"Protocol like sync.client.Replica)")
    return (f"{importer_pkg} and {target_pkg} sit side by side and must not know each other: "
            f"move the shared code down into a package both may import "
            f"({', '.join(sorted(MAY_IMPORT[importer_pkg] & MAY_IMPORT[target_pkg])) or 'none'}), "
            f"or do the wiring in loyalty/ (the composition root)")


def layer_violations(tree: Tree, pending: frozenset[tuple[str, str]]) -> list[str]:
    found = []
    for imp in tree.project:
        mine, theirs = imp.importer.split(".")[0], imp.target.split(".")[0]
        if mine == theirs or theirs in MAY_IMPORT[mine] or (imp.importer, imp.target) in pending:
            continue
        allowed = ", ".join(sorted(MAY_IMPORT[mine])) or "nothing of the project"
        found.append(f"{imp.site}: {mine} may import {allowed}, not {theirs}. "
                     f"{_advice(mine, theirs)}.")
    return list(dict.fromkeys(found))


def framework_violations(tree: Tree) -> list[str]:
    found = []
    for imp in tree.libraries:
        mine, lib = imp.importer.split(".")[0], imp.target
        if lib in FRAMEWORKS and lib not in FRAMEWORKS_ALLOWED[mine]:
            home = "web/" if lib != "click" else "agent/, hq/ or loyalty/"
            found.append(f"{imp.site}: {mine} must not import {lib}. Move the code that needs "
                         f"it up into {home} and keep {imp.importer} free of it.")
    return list(dict.fromkeys(found))


def cycles(tree: Tree, pending: frozenset[tuple[str, str]]) -> list[str]:
    """One message per group of modules that import each other (a strongly connected
    component of the module graph), with a cycle through it and every import line inside."""
    sites: dict[tuple[str, str], list[Import]] = defaultdict(list)
    for imp in tree.project:
        if imp.target in tree.modules and (imp.importer, imp.target) not in pending:
            sites[imp.importer, imp.target].append(imp)
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in sites:
        graph[a].add(b)
    found = []
    for group in _components(sorted(tree.modules), graph):
        if len(group) < 2:
            continue
        members = set(group)
        loop = _shortest_cycle(min(group), graph, members)
        edges = sorted((a, b) for a in group for b in graph[a] & members)
        lines = "\n".join(f"    {a} -> {b}: " + "; ".join(_sites(sites[a, b])) for a, b in edges)
        ways = "\n".join(f"    - {_move(sites[a, b])}" for a, b in pairwise(loop))
        found.append(f"import cycle among {', '.join(sorted(group))}\n"
                     f"  its imports:\n{lines}\n"
                     f"  Break {' -> '.join(loop)} by removing one of its arrows (an import in a "
                     f"function or under TYPE_CHECKING still counts):\n{ways}")
    return found


def _sites(imports: list[Import]) -> list[str]:
    return list(dict.fromkeys(i.site for i in imports))


def _move(imports: list[Import]) -> str:
    a, b = imports[0].importer, imports[0].target
    names = list(dict.fromkeys(f"`{i.name}`" for i in imports if i.name))
    what = ", ".join(names) if len(names) == len(imports) else f"what {a} uses of it"
    where = ", ".join(dict.fromkeys(f"{i.path}:{i.line}" for i in imports))
    return (f"{a} -> {b} ({where}): move {what} from {b} into {a}, or into a new module "
            f"that imports neither")


def _components(nodes: list[str], graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                out.append(sorted(group))
    return out


def _shortest_cycle(start: str, graph: dict[str, set[str]], members: set[str]) -> list[str]:
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    return [start]


def _report(title: str, problems: list[str]) -> str:
    return f"{title} ({len(problems)}):\n" + "\n".join(f"- {p}" for p in problems)


# --- the tests -------------------------------------------------------------------------
def test_every_package_of_the_project_has_a_place_in_the_layers() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - NOT_PACKAGES
    assert packages <= set(LAYER), (
        f"new top-level package(s) {sorted(packages - set(LAYER))}: give each a layer in "
        f"LAYER/MAY_IMPORT/FRAMEWORKS_ALLOWED in {Path(__file__).name} and in docs/design.md")


def test_no_module_import_cycles() -> None:
    problems = cycles(project(), PENDING_WP3)
    assert not problems, _report("module import cycles", problems)


def test_imports_point_down_the_layers() -> None:
    problems = layer_violations(project(), PENDING_WP3)
    assert not problems, _report("imports against the layers", problems)


def test_schema_hardware_sync_and_web_import_no_web_or_cli_framework_they_must_not() -> None:
    problems = framework_violations(project())
    assert not problems, _report("framework imports below the services", problems)


def test_pending_wp3_lists_only_imports_that_still_exist() -> None:
    present = {(i.importer, i.target) for i in project().project}
    gone = sorted(PENDING_WP3 - present)
    assert not gone, (f"these PENDING_WP3 entries no longer occur, remove them from "
                      f"{Path(__file__).name}: {gone}")


def test_the_scan_counts_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    for name, body in {
        "schema/__init__.py": "",
        "schema/a.py": "def f():\n    from schema import b\n",
        "schema/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n",
        "sync/__init__.py": "",
        "sync/c.py": "import fastapi\nfrom agent.outbox import append\n",
    }.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(body)
    tree = scan(tmp_path, LAYER)
    [cycle] = cycles(tree, frozenset())
    assert "schema.a, schema.b" in cycle and "schema/a.py:2" in cycle and "(in function f)" in cycle
    assert "schema/b.py:3 `from . import a` (under TYPE_CHECKING)" in cycle
    [wrong_way] = layer_violations(tree, frozenset())
    assert wrong_way.startswith("sync/c.py:2 `from agent.outbox import append`")
    assert "sync may import schema, not agent" in wrong_way
    [framework] = framework_violations(tree)
    assert "sync must not import fastapi" in framework
