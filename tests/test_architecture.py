"""The package's import structure (issue 13): read from the source with ``ast``, never imported.

Rules, and the decisions behind them:

(a) **No import cycle** among ``mfm_store`` modules. The graph holds the imports that run when
    a module is imported: module-level statements, including those under ``if``/``try`` at
    module level. Two kinds are left out, on purpose:

    - ``if TYPE_CHECKING:`` imports never run; they let a helper module name its owner's type
      (``sqlite/_follow.py`` annotates with ``SqliteStore``) without a runtime dependency;
    - imports inside a function run on the first call, after every module is loaded. Most are
      there to keep an optional extra or a heavy module off the import path. A lazy import
      whose target already reaches the importer at module level *is* a cycle, dodged: each such
      import must be listed in ``LAZY_CYCLE_BREAKS`` with the reason it is acceptable.

    Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``; those implicit parent
    imports are not edges (every module would otherwise be in a cycle through the package's
    ``__init__``, which re-exports the public names). ``from a.b import name`` is an edge to
    ``a.b.name`` when that is a module, else to ``a.b`` itself.

(b) **No reaching into another package's private module.** A module is private if a component
    of its dotted name starts with ``_`` (``mfm_store.sqlite._verify``, ``mfm_store._rules``);
    it may be imported only from inside the package that holds that component (its
    subpackages included): ``mfm_store.sqlite._verify`` from ``mfm_store.sqlite.*``,
    ``mfm_store._rules`` from anywhere in ``mfm_store``. ``benchmarks/`` is a user of the
    library and may import only public modules. ``tests/`` may import private modules:
    white-box tests of internals (the writer, the checksums, the schema loader) are allowed.

(c) **No private name imported from another module** (``from x import _name``), tests
    included: a name with a leading underscore is that module's own business; a name another
    module needs loses its underscore, or moves.

``KNOWN`` lists today's violations, each with who fixes it; it is to be emptied. An entry
that no longer occurs does not fail the test (others fix theirs while this list is read);
``known_but_fixed()`` names them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("mfm_store", "benchmarks", "tests")

# (importer, imported module, imported name or None): reason it is acceptable.
LAZY_CYCLE_BREAKS: dict[tuple[str, str, str | None], str] = {
}

# Today's violations: (rule, importer, imported module, name for rule c) -> who fixes it.
KNOWN: dict[tuple[str, str, str, str | None], str] = {
}


@attrs.frozen
class Import:
    importer: str
    module: str
    name: str | None
    lazy: bool  # inside a function
    typing_only: bool  # under ``if TYPE_CHECKING:``
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, lazy: bool, typing_only: bool
          ) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, lazy, typing_only
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, True, typing_only)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), lazy, True)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), lazy, typing_only)
        else:
            yield from _walk(child, lazy, typing_only)


def _imports_of(name: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node, lazy, typing_only in _walk(tree, False, False):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, None, lazy, typing_only, node.lineno)
            continue
        if node.level:
            base = package[:len(package) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for alias in node.names:
            if f"{target}.{alias.name}" in MODULES:
                yield Import(name, f"{target}.{alias.name}", None, lazy, typing_only,
                             node.lineno)
            else:
                yield Import(name, target, alias.name, lazy, typing_only, node.lineno)


IMPORTS = [imp for name, path in MODULES.items() for imp in _imports_of(name, path)]


def _ours(module: str) -> bool:
    return module == "mfm_store" or module.startswith("mfm_store.")


def _runtime_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES if _ours(m)}
    for imp in IMPORTS:
        if (_ours(imp.importer) and _ours(imp.module) and not imp.lazy
                and not imp.typing_only):
            graph[imp.importer].add(imp.module)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or with a self-loop (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        v = todo.pop()
        if v == goal:
            return True
        for w in graph.get(v, ()) - seen:
            seen.add(w)
            todo.append(w)
    return False


def _private_package(module: str) -> str | None:
    """The package a private module belongs to (``None`` for a public module)."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and part not in ("__init__", "__main__"):
            return ".".join(parts[:i])
    return None


def _violations() -> dict[tuple[str, str, str, str | None], int]:
    found: dict[tuple[str, str, str, str | None], int] = {}
    for imp in IMPORTS:
        if not _ours(imp.module):
            continue
        owner = _private_package(imp.module)
        if (owner is not None and not imp.importer.startswith("tests.")
                and imp.importer != owner and not imp.importer.startswith(owner + ".")):
            found.setdefault(("b", imp.importer, imp.module, None), imp.line)
        if imp.name is not None and imp.name.startswith("_"):
            found[("c", imp.importer, imp.module, imp.name)] = imp.line
    return found


def test_the_scan_sees_the_package() -> None:
    assert {"mfm_store", "mfm_store.sqlite.store", "mfm_store.cli", "benchmarks"} <= set(MODULES)
    assert any(imp.lazy for imp in IMPORTS) and any(imp.typing_only for imp in IMPORTS)


def test_the_runtime_import_graph_has_no_cycle() -> None:
    assert _cycles(_runtime_graph()) == []


def test_every_lazy_import_that_dodges_a_cycle_is_justified() -> None:
    graph = _runtime_graph()
    dodging = {(imp.importer, imp.module, imp.name) for imp in IMPORTS
               if imp.lazy and _ours(imp.importer) and _ours(imp.module)
               and _reaches(graph, imp.module, imp.importer)}
    assert dodging == set(LAZY_CYCLE_BREAKS)


def test_no_private_module_or_name_is_imported_across_packages() -> None:
    found = _violations()
    new = {f"{key} (line {line})" for key, line in found.items() if key not in KNOWN}
    assert not new, "\n".join(sorted(new))


def test_test_files_share_helpers_through_tests_helpers() -> None:
    """A helper two test files need lives in ``tests/helpers/``, not in a ``test_*`` file."""
    reaching = sorted(f"{imp.importer} -> {imp.module}" for imp in IMPORTS
                      if imp.importer.startswith("tests.")
                      and imp.module.split(".")[-1].startswith("test_"))
    assert reaching == []


def known_but_fixed() -> list[tuple[str, str, str, str | None]]:
    """The ``KNOWN`` entries that no longer occur (to remove from the list)."""
    return sorted(set(KNOWN) - set(_violations()))


def test_the_rules_catch_what_they_describe() -> None:
    assert _private_package("mfm_store.sqlite._verify") == "mfm_store.sqlite"
    assert _private_package("mfm_store._rules") == "mfm_store"
    assert _private_package("mfm_store.sqlite") is None
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"a"}}) == [["a"]]
