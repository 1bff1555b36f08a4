"""h3lab.bench's modules import one another without a cycle, lazy imports included.

The flat ``micro.py`` and ``wire.py`` once imported each other (the second
import hidden inside a function); the packages exist so that cannot recur.
"""

from __future__ import annotations

import ast
from pathlib import Path

import h3lab.bench

ROOT = Path(h3lab.bench.__file__).parent


def bench_modules(root: Path = ROOT) -> dict[str, Path]:
    """``{dotted name: path}`` of every module and package under ``root``."""
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(("h3lab.bench", *parts))] = path
    return modules


def imported(path: Path, modules: dict[str, Path]) -> set[str]:
    """The bench modules ``path`` imports anywhere (module level or inside a function).

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a
    module, else ``pkg`` itself.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (h3lab imports absolutely)"
            module = node.module or ""
            for alias in node.names:
                child = f"{module}.{alias.name}"
                found.add(child if child in modules else module)
    return found & set(modules)


def import_cycles(modules: dict[str, Path]) -> list[list[str]]:
    graph = {name: imported(path, modules) - {name} for name, path in modules.items()}
    cycles: list[list[str]] = []
    done: set[str] = set()
    stack: list[str] = []

    def visit(name: str) -> None:
        stack.append(name)
        for target in sorted(graph[name]):
            if target in stack:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in done:
                visit(target)
        stack.pop()
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name)
    return cycles


def test_bench_has_no_import_cycle() -> None:
    modules = bench_modules()
    # The graph is really read: the registry imports every micro target.
    assert "h3lab.bench.micro.protocol" in imported(modules["h3lab.bench.micro.targets"], modules)
    assert import_cycles(modules) == []


def test_a_cycle_is_found(tmp_path: Path) -> None:
    (tmp_path / "micro.py").write_text("def bench():\n    from h3lab.bench.wire import run\n")
    (tmp_path / "wire.py").write_text("from h3lab.bench.micro import bench\n")
    cycles = import_cycles(bench_modules(tmp_path))
    assert cycles == [["h3lab.bench.micro", "h3lab.bench.wire", "h3lab.bench.micro"]]
