"""The layers hold (docs/architecture.md): apps import downward only (``.importlinter``,
checked with import-linter), no two modules import each other even indirectly, no two apps
import each other, and no app module uses ``import *``."""

from __future__ import annotations

import ast
import configparser
import itertools
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def _packages() -> list[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    return config["importlinter"]["root_packages"].split()


PACKAGES = _packages()


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def _app_modules(graph: grimp.ImportGraph) -> set[str]:
    return {m for m in graph.modules if ".tests" not in m}


def _cycles(modules: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
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


def test_import_linter_contracts_are_kept() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--config", str(ROOT / ".importlinter")],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_import_cycles_between_modules() -> None:
    graph = _graph()
    modules = _app_modules(graph)
    edges = {m: {n for n in graph.find_modules_directly_imported_by(m) if n in modules} for m in modules}
    assert _cycles(modules, edges) == []


def test_no_two_apps_import_each_other() -> None:
    graph = _graph()
    ignored = _ignored_imports()
    both_ways = []
    for a, b in itertools.combinations(PACKAGES, 2):
        there = _imports_between(graph, a, b, ignored)
        back = _imports_between(graph, b, a, ignored)
        if there and back:
            both_ways.append((a, b, sorted(there)[:3], sorted(back)[:3]))
    assert both_ways == []


def _ignored_imports() -> set[tuple[str, str]]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    lines = config["importlinter:contract:layers"].get("ignore_imports", "").splitlines()
    pairs = (line.split("#")[0].split("->") for line in lines if "->" in line and "*" not in line)
    return {(a.strip(), b.strip()) for a, b in pairs}


def _imports_between(graph: grimp.ImportGraph, a: str, b: str, ignored: set[tuple[str, str]]) -> set[tuple[str, str]]:
    found = set()
    for module in graph.find_descendants(a) | {a}:
        if ".tests" in module:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            if (imported == b or imported.startswith(b + ".")) and (module, imported) not in ignored:
                found.add((module, imported))
    return found


def _star_imports(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names)]


def test_no_star_imports_in_app_code() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in _star_imports(path)
    ]
    assert offenders == []


def test_every_layer_is_a_root_package_of_the_contract() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    layers = config["importlinter:contract:layers"]["layers"].split()
    assert sorted(layers) == sorted(PACKAGES)
