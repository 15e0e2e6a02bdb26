"""The structure targets of the redesign (issue 29), checked on every test run so they stay true.

- no module of ``src/`` over 400 lines, no function over 60 lines or 8 parameters (``self``/``cls`` not
  counted): past those sizes a change costs two or three edits instead of one;
- no private name (leading underscore) imported from another module: a helper used in two modules is
  public, with a docstring, in one home;
- no import cycle between the package's modules;
- ``isinstance`` on the shape of the data (a pandas frame, an engine table, a parquet-backed input) at no
  more than four sites: the data has one path, and the places that still tell two shapes apart are few
  enough to name (docs/architecture.md).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import networkx as nx

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "ccss_pipeline"
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_PARAMETERS, MAX_SHAPE_DISPATCH = 400, 60, 8, 4
#: the names of the data's shapes: an isinstance against one of them is dispatch on the data's shape
SHAPES = {"DataFrame", "Table", "ModelInputs", "ParquetModelInput", "ParquetTable", "EngineSource", "ChunkedSource"}


def _modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text(), filename=str(path))


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    yield from (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))


def _parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = fn.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    return len(names) - (1 if names and names[0] in ("self", "cls") else 0)


def _imports(name: str, path: Path, tree: ast.Module) -> Iterator[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import of the package in ``tree``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])]
                )
            if base.split(".")[0] == "ccss_pipeline":
                yield base, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            yield from ((a.name, []) for a in node.names if a.name.split(".")[0] == "ccss_pipeline")


def test_modules_and_functions_stay_small() -> None:
    too_long = [
        f"{p.relative_to(SRC)} ({n} lines)"
        for _, p, _ in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    big = [
        f"{p.relative_to(SRC)}:{fn.name} ({lines} lines, {params} parameters)"
        for _, p, tree in _modules()
        for fn in _functions(tree)
        if (lines := (fn.end_lineno or fn.lineno) - fn.lineno + 1) > MAX_FUNCTION_LINES
        or (params := _parameters(fn)) > MAX_PARAMETERS
    ]
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"
    assert not big, f"functions over {MAX_FUNCTION_LINES} lines or {MAX_PARAMETERS} parameters: {big}"


def test_no_private_name_is_imported_from_another_module() -> None:
    crossing = [
        f"{p.relative_to(SRC)}: {target}.{n}"
        for name, p, tree in _modules()
        for target, names in _imports(name, p, tree)
        for n in names
        if n.startswith("_") and not n.startswith("__") and target != name
    ]
    assert not crossing, crossing


def test_the_package_has_no_import_cycle() -> None:
    """Between plain modules: a package's ``__init__`` re-exports its modules and is left out."""
    modules = {name: (p, tree) for name, p, tree in _modules() if p.name != "__init__.py"}
    graph = nx.DiGraph()
    for name, (p, tree) in modules.items():
        for target, names in _imports(name, p, tree):
            # ``from package import module`` imports the module
            hits = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules] or [target]
            graph.add_edges_from((name, h) for h in hits if h in modules and h != name)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, cycles[:5]


def test_isinstance_on_the_datas_shape_is_rare() -> None:
    def shape_names(node: ast.expr) -> set[str]:
        return {
            n.attr if isinstance(n, ast.Attribute) else n.id
            for n in ast.walk(node)
            if isinstance(n, ast.Attribute | ast.Name)
        }

    sites = [
        f"{p.relative_to(SRC)}:{node.lineno}"
        for _, p, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "isinstance"
        and len(node.args) == 2
        and shape_names(node.args[1]) & SHAPES
    ]
    assert len(sites) <= MAX_SHAPE_DISPATCH, sites
