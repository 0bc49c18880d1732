"""The shape of `core`: no import cycles, no function over 100 lines, numpy-only modules stay torch-free."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CORE = ROOT / "core"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, all_imports: bool) -> set[str]:
    """``core`` modules imported at module level (or anywhere, with ``all_imports``)."""
    nodes = ast.walk(tree) if all_imports else tree.body
    out = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("core"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("core")}
    return out


def _graph(all_imports: bool) -> dict[str, set[str]]:
    graph = {}
    for path in CORE.rglob("*.py"):
        graph[_module_name(path)] = _imports(ast.parse(path.read_text()), all_imports)
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return [*stack[stack.index(d) :], d]
            if d not in state and (found := visit(d)):
                return found
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle_among_core_modules():
    # every import, function-level ones included (package __init__ files re-export their children, skipped)
    full = _graph(all_imports=True)
    modules = {m for m in full if not (CORE / Path(*m.split(".")[1:]) / "__init__.py").is_file()}
    graph = {m: full[m] & modules for m in modules}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_function_over_100_lines():
    long = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 100:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not long


def test_light_modules_do_not_import_torch():
    code = (
        "import sys, core, core.config, core.vectors, core.forward, core.workspace, core.explore, core.maps, core.zeroshot;"
        "import core.cli;"
        "core.cli.build_parser(); print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_decoding_workers_import_neither_torch_nor_pandas():
    """A decoding process (spawned per fit on a GPU) imports only the image decoder: no torch, no pandas."""
    code = (
        "import sys, core.data.images; import core.data as d; d.ImageError;"
        "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
