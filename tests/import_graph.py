"""The tree's structural checks: its import graph, its layering and its named constants.

Every ``.py`` file of a tree is parsed with :mod:`ast` (never imported). The imports of
a module are all of its ``import x`` and ``from x import y`` statements, at module level
and inside functions and classes, plus ``importlib.import_module("x")`` with a literal
name. ``from pkg import name`` is an import of the submodule ``pkg.name`` when that is a
module of the tree, else of ``pkg``. Importing ``a.b`` is recorded as an import of
``a.b`` only (not of the package ``a``), except by :func:`transitive_violations`, which
also follows the parent packages that Python loads first.

A module is named by its path from the tree's root (``schedules/subbit_tir.py`` is
``schedules.subbit_tir``, ``tests/common.py`` is ``tests.common``). Files under a folder
of :data:`SCRIPT_FOLDERS` also import their siblings by bare name (``benchmarks/`` runs
as scripts; pytest puts ``tests/`` on the path).

Each ``*_violations`` function returns a list of :class:`Violation`; an empty list means
the rule holds.
"""

import ast
import dataclasses
import os
import re
from pathlib import Path

FIRST_PARTY = ("tvm_snn", "relay_passes", "schedules", "hw_targets", "benchmarks")
# Folders that are not packages, whose files import each other by bare name.
SCRIPT_FOLDERS = ("tests", "benchmarks")
# Folders the scan never enters, besides hidden ones (``.venv``, ``.git``).
SKIPPED_FOLDERS = ("__pycache__", "build", "dist", "node_modules")
UPPER_CASE = re.compile(r"^_*[A-Z][A-Z0-9_]*$")
TOLERANCE = re.compile(r"(^|_)[RA]TOL$")
TOLERANCE_HOME = "tests.common"
TEST_MODULE = re.compile(r"^test_.*\.py$")


@dataclasses.dataclass(frozen=True)
class Import:
    """One import statement's edge.

    Parameters
    ----------
    source : str
        The importing module.
    target : str
        The imported module: a module of the tree when ``first_party``, else the name as
        written (``tvm.tirx``).
    path : pathlib.Path
        The importing file.
    line : int
        The statement's line.
    scope : str or None
        The enclosing function or class, qualified (``"Tree.imports"``), None at module level.
    first_party : bool
        Whether ``target`` is a module of the tree.
    """

    source: str
    target: str
    path: Path
    line: int
    scope: str | None
    first_party: bool

    def where(self):
        """``path:line``, with the enclosing function when there is one."""
        place = f"{self.path}:{self.line}"
        return place if self.scope is None else f"{place} (in {self.scope})"


@dataclasses.dataclass(frozen=True)
class Violation:
    """A broken rule, where it is, and what is wrong.

    Parameters
    ----------
    path : pathlib.Path
        The file to change.
    line : int
        Where in it.
    message : str
        What is wrong, in words a failing assertion can show.
    """

    path: Path
    line: int
    message: str

    def __str__(self):
        return f"{self.path}:{self.line}: {self.message}"


@dataclasses.dataclass(frozen=True)
class LayerRule:
    """What the modules of one layer may import.

    Parameters
    ----------
    layer : str
        The importing modules: this module and its submodules.
    allowed : tuple of str or None
        First-party modules (with their submodules) the layer may import; None for any.
    forbidden : tuple of str
        Modules (first or third party, with their submodules) the layer never imports.
    transitive : bool
        Whether ``forbidden`` also holds for every first-party module the layer loads,
        directly or through others.
    """

    layer: str
    allowed: tuple[str, ...] | None = None
    forbidden: tuple[str, ...] = ()
    transitive: bool = False


# The layering of docs/DESIGN.md: imports go tvm_snn -> relay_passes -> schedules and
# tvm_snn -> hw_targets -> schedules; tvm_snn.errors and tvm_snn.schema import nothing
# and are importable from every layer; the training frontend never loads TVM.
SHARED = ("tvm_snn.errors", "tvm_snn.schema")
LAYER_RULES = (
    LayerRule("schedules", allowed=("schedules", *SHARED)),
    LayerRule("relay_passes", allowed=("relay_passes", "schedules", *SHARED)),
    LayerRule("relay_passes", forbidden=("hw_targets",)),
    LayerRule("hw_targets", allowed=("hw_targets", "schedules", *SHARED)),
    LayerRule("tvm_snn.train", forbidden=("tvm", "tvm_ffi", "relay_passes", "schedules"), transitive=True),
    LayerRule("tvm_snn.errors", allowed=()),
    LayerRule("tvm_snn.schema", allowed=()),
)


def within(name, prefixes):
    """Whether module ``name`` is one of ``prefixes`` or a submodule of one.

    Parameters
    ----------
    name : str
    prefixes : iterable of str

    Returns
    -------
    bool
    """
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def python_files(root):
    """Every ``.py`` file under ``root``, hidden folders and caches left out.

    Parameters
    ----------
    root : pathlib.Path

    Returns
    -------
    list of pathlib.Path
        Relative to ``root``, sorted.
    """
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and d not in SKIPPED_FOLDERS and not d.endswith(".egg-info")
        )
        found += [Path(folder, f).relative_to(root) for f in files if f.endswith(".py")]
    return sorted(found)


def module_name(path):
    """The dotted name of the module at ``path`` (relative to the tree's root).

    Parameters
    ----------
    path : pathlib.Path

    Returns
    -------
    str
        ``a/b/c.py`` is ``a.b.c``; ``a/b/__init__.py`` is ``a.b``.
    """
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class Tree:
    """The Python files of a source tree, parsed.

    Parameters
    ----------
    root : pathlib.Path or str
        The tree's root (the repository).
    """

    def __init__(self, root):
        self.root = Path(root)
        self.paths = {module_name(p): p for p in python_files(self.root)}
        self.syntax = {name: ast.parse((self.root / p).read_text(), str(p)) for name, p in self.paths.items()}
        self._imports = {name: list(_imports_of(self, name)) for name in self.paths}

    def imports(self, module=None):
        """The imports of ``module``, or of every module of the tree.

        Parameters
        ----------
        module : str, optional

        Returns
        -------
        list of Import
        """
        if module is not None:
            return self._imports[module]
        return [edge for name in sorted(self._imports) for edge in self._imports[name]]

    def resolve(self, name, importer):
        """The module of the tree that ``import name`` in ``importer`` loads, or None.

        Parameters
        ----------
        name : str
            An absolute dotted name; its longest prefix that is a module is taken
            (``import a.b.attr`` cannot occur, ``a.b`` can be a namespace folder).
        importer : str
            The importing module, which decides the search path.

        Returns
        -------
        str or None
        """
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            found = self.module(".".join(parts[:end]), importer)
            if found is not None:
                return found
        return None

    def module(self, name, importer):
        """The module of the tree that is exactly ``name`` on ``importer``'s search path, or None.

        Parameters
        ----------
        name : str
            An absolute dotted name.
        importer : str
            The importing module: one under a folder of :data:`SCRIPT_FOLDERS` also finds
            its folder's modules by bare name.

        Returns
        -------
        str or None
        """
        top = importer.split(".")[0]
        bases = [top + ".", ""] if top in SCRIPT_FOLDERS and top != importer else [""]
        return next((base + name for base in bases if base + name in self.paths), None)

    def is_package(self, module):
        """Whether ``module`` is a package (an ``__init__.py``)."""
        return self.paths[module].name == "__init__.py"


def _absolute(tree, module, level, name):
    """The absolute name of ``from <level dots><name> import ...`` written in ``module``."""
    if level == 0:
        return name
    package = module.split(".")
    if not tree.is_package(module):
        package.pop()
    package = package[: len(package) - (level - 1)]
    return ".".join([*package, name] if name else package)


def _edge(tree, module, target, node, scope):
    resolved = tree.resolve(target, module)
    return Import(
        source=module,
        target=resolved if resolved is not None else target,
        path=tree.paths[module],
        line=node.lineno,
        scope=scope,
        first_party=resolved is not None,
    )


def _import_module_name(node):
    """The literal module name of ``importlib.import_module("x")``/``__import__("x")``, or None."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def _imports_of(tree, module):
    """Yield the :class:`Import` edges of ``module``, at every depth."""
    stack = [(tree.syntax[module], None)]
    while stack:
        node, scope = stack.pop()
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _edge(tree, module, alias.name, node, scope)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(tree, module, node.level, node.module or "")
            targets = []
            for alias in node.names:
                submodule = f"{base}.{alias.name}" if base else alias.name
                is_submodule = alias.name != "*" and tree.module(submodule, module) is not None
                target = submodule if is_submodule else base
                if target not in targets:  # one edge per module a statement imports
                    targets.append(target)
                    yield _edge(tree, module, target, node, scope)
        elif isinstance(node, ast.Call) and _import_module_name(node) is not None:
            yield _edge(tree, module, _import_module_name(node), node, scope)
        inner = scope
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            inner = node.name if scope is None else f"{scope}.{node.name}"
        stack += [(child, inner) for child in reversed(list(ast.iter_child_nodes(node)))]


def first_party_graph(tree, packages=FIRST_PARTY):
    """The import graph between the modules of ``packages``.

    Parameters
    ----------
    tree : Tree
    packages : tuple of str

    Returns
    -------
    dict of str to list of Import
        Each module of ``packages`` to its imports of modules of ``packages`` (itself
        left out: ``from pkg import name`` in ``pkg/__init__.py`` is not a cycle).
    """
    graph = {name: [] for name in tree.paths if within(name, packages)}
    for edge in tree.imports():
        if edge.source in graph and edge.target in graph and edge.target != edge.source:
            graph[edge.source].append(edge)
    return graph


def _strongly_connected(graph):
    """Tarjan's strongly connected components of ``graph`` (module -> edges), iteratively."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted({e.target for e in graph[start]})))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted({e.target for e in graph[succ]}))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def _cycle_through(graph, start, members):
    """The shortest cycle from ``start`` back to it inside ``members``, as a list of edges."""
    paths = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in graph[node]:
                if edge.target == start:
                    return paths[node] + [edge]
                if edge.target in members and edge.target not in paths:
                    paths[edge.target] = paths[node] + [edge]
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"{start} is in a strongly connected component but on no cycle")


def cycle_violations(tree, packages=FIRST_PARTY):
    """One violation per import cycle between the modules of ``packages``.

    Parameters
    ----------
    tree : Tree
    packages : tuple of str

    Returns
    -------
    list of Violation
        The message names the cycle's modules in order and where each import is.
    """
    graph = first_party_graph(tree, packages)
    found = []
    for component in _strongly_connected(graph):
        if len(component) < 2:
            continue
        cycle = _cycle_through(graph, component[0], set(component))
        names = " -> ".join([cycle[0].source, *(edge.target for edge in cycle)])
        steps = "; ".join(f"{edge.source} imports {edge.target} at {edge.where()}" for edge in cycle)
        others = sorted(set(component) - {edge.source for edge in cycle})
        also = f" (the cycle's component also holds {', '.join(others)})" if others else ""
        found.append(Violation(cycle[0].path, cycle[0].line, f"import cycle {names}: {steps}{also}"))
    return found


def _loaded(tree, module):
    """The first-party modules ``import module`` loads first: its parent packages."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts)) if ".".join(parts[:end]) in tree.paths]


def transitive_violations(tree, rule):
    """Forbidden imports reached from ``rule.layer`` through other first-party modules.

    Parameters
    ----------
    tree : Tree
    rule : LayerRule

    Returns
    -------
    list of Violation
        For every forbidden import of a module outside the layer that a module of the
        layer loads, the chain from the layer to it (direct imports are reported by
        :func:`layer_violations`).
    """
    found = []
    seen = set()
    for start in sorted(name for name in tree.paths if within(name, (rule.layer,))):
        chains = {start: [start]}
        frontier = [start]
        while frontier:
            following = []
            for node in frontier:
                edges = [e for e in tree.imports(node) if e.first_party]
                nexts = [(e.target, e) for e in edges] + [(parent, None) for parent in _loaded(tree, node)]
                for target, _edge in nexts:
                    if target not in chains:
                        chains[target] = chains[node] + [target]
                        following.append(target)
            frontier = following
        for module, chain in chains.items():
            if within(module, (rule.layer,)):
                continue
            for edge in tree.imports(module):
                if within(edge.target, rule.forbidden) and (edge.source, edge.target) not in seen:
                    seen.add((edge.source, edge.target))
                    message = (
                        f"{rule.layer} never loads {', '.join(rule.forbidden)}, but {' -> '.join(chain)} "
                        f"imports {edge.target} at {edge.where()}"
                    )
                    found.append(Violation(edge.path, edge.line, message))
    return found


def layer_violations(tree, rules=LAYER_RULES):
    """Imports that break a layer's rule.

    Parameters
    ----------
    tree : Tree
    rules : tuple of LayerRule

    Returns
    -------
    list of Violation
    """
    found = []
    for rule in rules:
        for edge in tree.imports():
            if not within(edge.source, (rule.layer,)):
                continue
            if within(edge.target, rule.forbidden):
                message = f"{edge.source} imports {edge.target}: {rule.layer} never imports {', '.join(rule.forbidden)}"
                found.append(Violation(edge.path, edge.line, message + _scope(edge)))
            elif rule.allowed is not None and edge.first_party and not within(edge.target, rule.allowed):
                allowed = ", ".join(f"{name}[.*]" for name in rule.allowed)
                rule_text = f"may import only {allowed}" if allowed else "imports no first-party module"
                message = f"{edge.source} imports {edge.target}: {rule.layer} {rule_text}"
                found.append(Violation(edge.path, edge.line, message + _scope(edge)))
        if rule.transitive:
            found += transitive_violations(tree, rule)
    return found


def _scope(edge):
    return "" if edge.scope is None else f" (in {edge.scope})"


def is_test_module(module, tree):
    """Whether ``module`` is a test module (``tests/**/test_*.py``)."""
    return module.startswith("tests.") and TEST_MODULE.match(tree.paths[module].name) is not None


def cross_test_import_violations(tree):
    """Test modules that import another test module (shared helpers belong in helper modules).

    Parameters
    ----------
    tree : Tree

    Returns
    -------
    list of Violation
    """
    return [
        Violation(edge.path, edge.line, f"test module {edge.source} imports test module {edge.target}{_scope(edge)}")
        for edge in tree.imports()
        if edge.first_party and is_test_module(edge.source, tree) and is_test_module(edge.target, tree)
    ]



def _sys_aliases(syntax):
    """The names ``sys`` and ``sys.path`` are bound to in a module (``import sys as s``)."""
    modules, paths = set(), set()
    for node in ast.walk(syntax):
        if isinstance(node, ast.Import):
            modules |= {alias.asname or alias.name for alias in node.names if alias.name == "sys"}
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and node.level == 0:
            paths |= {alias.asname or alias.name for alias in node.names if alias.name == "path"}
    return modules, paths


def sys_path_violations(tree):
    """Every use of ``sys.path`` (and ``site.addsitedir``) in the tree.

    Parameters
    ----------
    tree : Tree

    Returns
    -------
    list of Violation
        Reading ``sys.path`` counts as well: nothing in the tree needs it except to
        change it.
    """
    found = []
    for module, syntax in sorted(tree.syntax.items()):
        modules, paths = _sys_aliases(syntax)
        for node in ast.walk(syntax):
            uses_sys_path = (
                isinstance(node, ast.Attribute)
                and node.attr == "path"
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
            ) or (isinstance(node, ast.Name) and node.id in paths)
            adds_site = isinstance(node, ast.Attribute) and node.attr == "addsitedir"
            if uses_sys_path or adds_site:
                what = "site.addsitedir" if adds_site else "sys.path"
                message = f"{module} uses {what}: import through installed packages or pytest's pythonpath instead"
                found.append(Violation(tree.paths[module], node.lineno, message))
    return found


def top_level_assignments(syntax):
    """The names a module assigns at its top level (also inside top-level ``if``/``try``/``with``).

    Parameters
    ----------
    syntax : ast.Module

    Returns
    -------
    list of tuple of (str, int)
        Each name with the line that assigns it.
    """
    found = []
    pending = list(syntax.body)
    while pending:
        node = pending.pop(0)
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):
            for field in ("body", "orelse", "finalbody"):
                pending += getattr(node, field, [])
            for handler in getattr(node, "handlers", []):
                pending += handler.body
        for target in targets:
            found += [(n.id, node.lineno) for n in ast.walk(target) if isinstance(n, ast.Name)]
    return found


def constant_violations(tree, packages=FIRST_PARTY):
    """UPPER_CASE names assigned at the top level of more than one module of ``packages``.

    Parameters
    ----------
    tree : Tree
    packages : tuple of str

    Returns
    -------
    list of Violation
        One per duplicated name, at its first definition, naming every module that
        assigns it. Re-exports by import do not count.
    """
    definitions = {}
    for module in sorted(tree.paths):
        if not within(module, packages):
            continue
        first = {}
        for name, line in top_level_assignments(tree.syntax[module]):
            first.setdefault(name, line)
        for name, line in first.items():
            if UPPER_CASE.match(name):
                definitions.setdefault(name, []).append((tree.paths[module], line))
    found = []
    for name, places in sorted(definitions.items()):
        if len(places) > 1:
            where = ", ".join(f"{path}:{line}" for path, line in places)
            message = f"{name} is defined in {len(places)} modules ({where}): define it once and import it"
            found.append(Violation(places[0][0], places[0][1], message))
    return found


def tolerance_violations(tree, home=TOLERANCE_HOME):
    """``*_RTOL``/``*_ATOL`` names assigned in a test module other than ``home``.

    Parameters
    ----------
    tree : Tree
    home : str
        The one module that names the tests' tolerances.

    Returns
    -------
    list of Violation
    """
    found = []
    for module in sorted(tree.paths):
        if not within(module, ("tests",)) or module == home:
            continue
        for name, line in top_level_assignments(tree.syntax[module]):
            if TOLERANCE.search(name):
                message = f"{module} defines the tolerance {name}: tolerances live in {home}; import it from there"
                found.append(Violation(tree.paths[module], line, message))
    return found


def report(violations):
    """The violations as one message, grouped by file.

    Parameters
    ----------
    violations : list of Violation

    Returns
    -------
    str
    """
    by_file = {}
    for violation in sorted(violations, key=lambda v: (str(v.path), v.line)):
        by_file.setdefault(str(violation.path), []).append(f"  line {violation.line}: {violation.message}")
    lines = [f"{len(violations)} violation(s):"]
    for path, entries in by_file.items():
        lines += [path, *entries]
    return "\n".join(lines)
