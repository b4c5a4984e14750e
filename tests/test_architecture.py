"""The package's import rules (docs/architecture.md): no import cycles among its modules and no
import from a lower layer into a higher one. Every import counts, function-local ones included;
only `if TYPE_CHECKING:` blocks are left out (they never run)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "cmer_edge"

# Layer of each top-level part of the package: a module may import its own layer and lower ones.
LAYERS: dict[str, int] = {
    "_version": 0, "_native": 0, "audio": 0, "model": 0, "bundle": 0,
    "backends": 1,
    "features": 2, "asr": 2, "data": 2,
    "runtime": 3,
    "serve": 4, "training": 4, "export": 4, "cli_common": 4, "cli_recognizer": 4,
    "bench": 5, "": 5, "__main__": 5, "commands": 5, "listen": 5, "extract": 5, "train": 5, "evaluate": 5,
    "finetune": 5,
    "testing": 6,
}
# The one sanctioned upward import: benchmarks generate their speech with the testing tools.
ALLOWED_UP = {("bench", "testing")}
# Cycles owned by work in flight elsewhere; remove the entry when it is fixed (the test then keeps it out).
KNOWN_CYCLES: list[set[str]] = []  # none left
DATA_DIRS = {"bundles", "examples", "web", "static", "templates"}


def _modules() -> dict[str, Path]:
    mods = {"cmer_edge._native": PACKAGE / "_native.pyi"}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    def resolve(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
        for target in targets:
            if target.split(".")[0] == "cmer_edge":
                resolved = resolve(target)
                if resolved and resolved != name:
                    out.add(resolved)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items() if path.suffix == ".py"}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_every_part_of_the_package_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.is_dir() and p.name not in DATA_DIRS and not p.name.startswith("__")) or p.suffix == ".py"}
    parts = {"" if p == "__init__" else p for p in parts}
    assert parts - set(LAYERS) == set(), "place new modules in LAYERS here and in docs/architecture.md"


def test_no_import_cycles():
    cycles = [c for c in _cycles(_graph()) if c not in KNOWN_CYCLES]
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def test_no_import_from_a_lower_layer_to_a_higher_one():
    upward = []
    for module, targets in sorted(_graph().items()):
        for target in sorted(targets):
            a, b = _part(module), _part(target)
            if LAYERS[b] > LAYERS[a] and (a, b) not in ALLOWED_UP:
                upward.append(f"{module} (layer {LAYERS[a]}) imports {target} (layer {LAYERS[b]})")
    assert upward == [], "\n".join(upward)


def test_the_checks_see_function_local_imports_and_skip_type_checking(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cmer_edge.serve import x\n"
                    "def f():\n    from cmer_edge.runtime.recognizer import Recognizer\n")
    known = {"cmer_edge.runtime.recognizer": path, "cmer_edge.serve": path}
    assert _imports("cmer_edge.audio.m", path, known) == {"cmer_edge.runtime.recognizer"}
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_the_package_graph_between_layers_has_no_cycles():
    parts: dict[str, set[str]] = defaultdict(set)
    for module, targets in _graph().items():
        for target in targets:
            if _part(module) != _part(target) and (_part(module), _part(target)) not in ALLOWED_UP:
                parts[_part(module)].add(_part(target))
    assert _cycles(dict(parts)) == []
