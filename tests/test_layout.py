"""The package's layout stays as docs/ARCHITECTURE.md draws it: small modules, and no import cycle between them,
counting the imports made inside functions (a cycle hidden in a function is still a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "batchline"
MOST_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports anywhere in its body (TYPE_CHECKING imports too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import wire` names a module
    return {module for module in found if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imported(path, modules) for path in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while (member := stack.pop()) != node:
                group.append(member)
            group.append(node)
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_module_of_the_package_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MOST_LINES
    }
    assert long == {}


def test_no_import_cycle_even_through_imports_inside_functions() -> None:
    # A package's __init__ re-exporting its modules is not a cycle of logic: a module importing its own package
    # (`from . import wire` inside `provider/__init__`) is left out by looking at module -> module edges only.
    graph = import_graph()
    parents = {name: {m for m in targets if not name.startswith(f"{m}.")} for name, targets in graph.items()}
    assert cycles(parents) == []


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        ({"a": "from . import b", "b": "def f():\n    from .a import x"}, [["batchline.a", "batchline.b"]]),
        ({"a": "from . import b", "b": "import os"}, []),
    ],
)
def test_the_cycle_check_sees_a_cycle_hidden_in_a_function(
    sources: dict[str, str], expected: list[list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "batchline"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, source in sources.items():
        (package / f"{name}.py").write_text(source)
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", package)
    assert cycles(import_graph()) == expected


def test_no_tracked_text_file_holds_a_merge_conflict_marker() -> None:
    """A merge resolved by hand once left `<<<<<<<` in a doc that CI rendered nowhere; this catches the next one."""
    import subprocess

    root = PACKAGE.parent
    listed = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    markers = ("<<<<<<< ", "=======\n", ">>>>>>> ")
    found = []
    for name in listed:
        path = root / name
        if path.suffix not in {".py", ".md", ".toml", ".yml", ".yaml", ".txt", ".cfg", ".html", ".sh"}:
            continue
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(keepends=True), 1):
            if line.startswith(markers):
                found.append(f"{name}:{number}")
    assert not found, f"merge conflict markers left in: {found}"
