"""The layer order of docs/architecture.md holds: `lint-imports` keeps every contract of pyproject.toml,
and no two packages of dualcam_rt import each other, directly or round a longer loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_lint_imports_keeps_every_layer_contract():
    r = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def package_graph() -> dict[str, set[str]]:
    """Top-level package (or ground-floor module) of dualcam_rt -> the ones it imports, anywhere inside."""
    graph = grimp.build_graph("dualcam_rt")

    def top(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else None  # the root package itself (its __version__) is no layer

    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        source = top(module)
        if source is None:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            target = top(imported)
            if target is not None and target != source:
                edges.setdefault(source, set()).add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One loop of the graph (as a path that returns to its start), or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (loop := visit(nxt)):
                return loop
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (loop := visit(node)):
            return loop
    return None


def test_no_import_cycle_between_packages():
    edges = package_graph()
    assert {"pipelines", "sessions", "devices", "dsp", "inference"} <= set(edges)  # the graph is really read
    assert "sessions" in edges["pipelines"] and "devices" not in edges.get("sessions", set())
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


def test_the_cycle_finder_finds_a_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
