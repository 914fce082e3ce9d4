"""The package's shape: the one-way rule, no import circles, imports at the top, private names kept private."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pipeline"
# Optional or slow-to-import dependencies that a function may import when it first needs them.
DEFERRED = {"ultralytics", "mmpose", "mmengine", "mmcv", "mediapipe", "ray", "matplotlib"}
# Our own modules that import one of those at their top, so that importing them is deferred too.
DEFERRED_OWN = {"pipeline.twod.mmpose_compat"}


def _modules(folder: Path) -> list[tuple[Path, ast.Module]]:
    return [(f, ast.parse(f.read_text())) for f in sorted(folder.rglob("*.py"))]


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module (iterative: import graphs can be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
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
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_one_way_rule_and_layers():
    """pyproject's import-linter contracts: inference never imports training, evaluation, batch or the CLI."""
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_no_import_circles():
    graph = grimp.build_graph("pipeline", cache_dir=None)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    assert _strongly_connected(edges) == []


def test_circle_finder_finds_a_circle():
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_function_level_imports_only_defer_heavy_optional_dependencies():
    offenders = []
    for path, tree in _modules(PACKAGE):
        lines = path.read_text().splitlines()
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in top:
                continue
            name = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            if isinstance(node, ast.ImportFrom) and node.module == "pipeline.twod":
                name = f"pipeline.twod.{node.names[0].name}"
            commented = "#" in lines[node.lineno - 1] or lines[node.lineno - 2].lstrip().startswith("#")
            version_switch = name in ("numpy.core", "numpy._core")  # numpy 1 vs 2 spell this module differently
            heavy = name.split(".")[0] in DEFERRED or name in DEFERRED_OWN
            if not ((heavy and commented) or version_switch):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert offenders == []


def test_private_names_stay_inside_their_module():
    offenders = []
    for folder in (PACKAGE, ROOT / "tests", ROOT / "benchmarks"):
        for path, tree in _modules(folder):
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline"):
                    offenders += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}"
                                  for a in node.names if a.name.startswith("_") and a.name != "__version__"]
    assert offenders == []


def test_tests_mirror_the_package():
    """Every test folder names a sub-package (plus ``support`` for shared helpers)."""
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders - {"support"} <= packages
