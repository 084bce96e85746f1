"""Dependencies point one way (engines ← calibration, engines ← streamer), and no package has an
import circle: read from the source, so a new import that breaks either turns this red."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engines", "calibration", "streamer")
MAY_IMPORT = {"engines": {"engines"}, "calibration": {"engines", "calibration"},
              "streamer": {"engines", "calibration", "streamer"}}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    # top level: the module's own imports, and those under an `if` (TYPE_CHECKING included:
    # a circle for the reader even where the interpreter never runs it)
    nodes = [n for top in tree.body for n in (ast.walk(top) if isinstance(top, ast.If) else [top])
             ] if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level:  # relative: within the package
            base = _module(path).split(".")
            base = base[: len(base) - node.level + (path.name == "__init__.py")]
            mod = ".".join(base + ([node.module] if node.module else []))
            found |= {mod} | {f"{mod}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _sources():
    return [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]


def test_dependencies_point_one_way():
    wrong = sorted(f"{_module(p)} imports {m}" for p in _sources()
                   for m in _imports(p, top_level_only=False)
                   if m.split(".")[0] not in MAY_IMPORT[_module(p).split(".")[0]])
    assert not wrong, wrong


def test_no_import_circles():
    modules = {_module(p): p for p in _sources()}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for m in _imports(path, top_level_only=True):
            while m and m not in modules:  # "pkg.mod.Name" -> "pkg.mod"
                m = m.rpartition(".")[0]
            if m and m != name and not name.startswith(m + "."):  # a package's own __init__
                targets.add(m)
        graph[name] = targets
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles
