"""Bundle files an untrusted bundle may name: relative, inside the bundle folder, listed, hashed.

`inside(root, name)` is the one place a manifest's file name becomes a path: no absolute paths,
no `..`, no backslashes or drive letters, and the resolved path (symlinks followed) must stay in
the bundle folder. `onnx_external_locations(path)` reads an ONNX file's external-data locations
without onnx or onnxruntime (a protobuf walk), so they are checked the same way before ONNX Runtime
or TensorRT opens the graph.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath

from cmer_edge.bundle.errors import BundleError


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_name(name: str, what: str) -> str:
    """`name` if it is a safe relative file name (posix separators), else BundleError."""
    if not isinstance(name, str) or not name:
        raise BundleError(f"{what}: file name must be a non-empty string, got {name!r}")
    pure = PurePosixPath(name)
    if ("\\" in name or "\x00" in name or pure.is_absolute() or re.match(r"^[A-Za-z]:", name)
            or any(part in ("..", "") for part in name.split("/")) or name.startswith("~")):
        raise BundleError(f"{what}: {name!r} is not a relative path inside the bundle")
    return name


def inside(root: Path, name: str, what: str) -> Path:
    """root/name after `check_name`, refusing anything that resolves (via symlinks) outside root."""
    path = Path(root) / check_name(name, what)
    base = Path(root).resolve()
    try:
        path.resolve().relative_to(base)
    except ValueError:
        raise BundleError(f"{what}: {name!r} resolves outside the bundle folder {base}") from None
    return path


# -- ONNX external data: a minimal protobuf walk ------------------------------------------------
# ModelProto.graph = 7, ModelProto.functions = 25 (FunctionProto.node = 7); GraphProto.node = 1,
# .initializer = 5, .sparse_initializer = 15; NodeProto.attribute = 5; AttributeProto.t = 5, .g = 6,
# .tensors = 10, .graphs = 11, .sparse_tensor = 22, .sparse_tensors = 23; SparseTensorProto.values = 1,
# .indices = 2; TensorProto.external_data = 13 (StringStringEntryProto key = 1, value = 2).

def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(buf):
            raise BundleError("truncated protobuf varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise BundleError("malformed protobuf varint")


def _fields(buf: memoryview):
    """(field number, wire type, value) for each field; length-delimited values as memoryviews."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 5:
            value, pos = None, pos + 4
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        else:
            raise BundleError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise BundleError("truncated protobuf field")
        yield number, wire, value


_CHILDREN = {  # message kind -> {field: child kind}
    "model": {7: "graph", 25: "function"},
    "function": {7: "node"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}


def _walk(buf: memoryview, kind: str, out: list[str]) -> None:
    for number, wire, value in _fields(buf):
        if wire != 2:
            continue
        if kind == "tensor":
            if number == 13:
                entry = {n: bytes(v).decode("utf-8", "replace") for n, w, v in _fields(value) if w == 2}
                if entry.get(1) == "location":
                    out.append(entry.get(2, ""))
            continue
        child = _CHILDREN.get(kind, {}).get(number)
        if child is not None:
            _walk(value, child, out)


def onnx_external_locations(path: Path) -> list[str]:
    """The external-data file names an ONNX model refers to (empty for a self-contained graph)."""
    data = Path(path).read_bytes()
    out: list[str] = []
    try:
        _walk(memoryview(data), "model", out)
    except BundleError as exc:
        raise BundleError(f"{path}: not a readable ONNX model ({exc})") from exc
    return sorted(set(out))
