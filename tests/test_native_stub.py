"""The checked-in _native.pyi lists exactly what the compiled module exports: its functions,
classes (with their public methods and properties) and the `testing` submodule."""

from __future__ import annotations

import ast
from pathlib import Path

import cmer_edge
from cmer_edge import _native


def _stub() -> ast.Module:
    return ast.parse(Path(cmer_edge.__file__).with_name("_native.pyi").read_text())


def _stub_names() -> set[str]:
    names = set()
    for node in _stub().body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_stub_matches_module():
    exported = {name for name in dir(_native) if not name.startswith("_")}
    assert _stub_names() == exported


def test_stub_classes_list_their_members():
    for node in _stub().body:
        if not isinstance(node, ast.ClassDef) or node.name == "CudaError":
            continue
        stubbed = {n.name for n in node.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")}
        stubbed |= {n.target.id for n in node.body if isinstance(n, ast.AnnAssign)}
        exported = {name for name in dir(getattr(_native, node.name)) if not name.startswith("_")}
        assert stubbed == exported, node.name


def test_cuda_error_is_a_runtime_error():
    assert issubclass(_native.CudaError, RuntimeError)
