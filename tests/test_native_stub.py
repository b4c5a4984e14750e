"""The checked-in _native.pyi lists exactly the functions the compiled module exports."""

from __future__ import annotations

import ast
from pathlib import Path

import cmer_edge
from cmer_edge import _native


def _stub_names() -> set[str]:
    stub = Path(cmer_edge.__file__).with_name("_native.pyi")
    tree = ast.parse(stub.read_text())
    return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def test_stub_matches_module():
    exported = {name for name in dir(_native) if not name.startswith("_")}
    assert _stub_names() == exported
