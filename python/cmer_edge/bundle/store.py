"""A bundle is a directory: manifest.json + head.safetensors (+ encoder artefacts).

Torch-free: the runtime loads bundles with numpy only. Weights are safetensors (never pickles).
Loading is safe for a bundle from an untrusted source: the manifest is validated into a typed
`Manifest`; only files it lists are opened, each a relative path inside the bundle folder (no
absolute paths, no `..`, no symlinks out) with its sha256 checked; ONNX graphs may refer to
external data only in files the manifest lists. A saved manifest holds no absolute path unless
the writer asks for a local working bundle (`local_paths=True`, what training runs write);
`pack` strips them for shipping.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from cmer_edge.bundle.errors import BundleError
from cmer_edge.bundle.files import inside, onnx_external_locations, sha256_of
from cmer_edge.bundle.manifest import FORMAT, FORMAT_VERSION, Manifest, freeze
from cmer_edge.model.config import EMOTIONS, HeadConfig

log = logging.getLogger("cmer_edge")
MANIFEST = "manifest.json"
HEAD_FILE = "head.safetensors"
_ABSOLUTE = re.compile(r"(?:^|(?<=[\s=\"']))(?:/|~/|[A-Za-z]:[\\/])[^\s\"']*")


@dataclass
class Bundle:
    path: Path
    manifest: Manifest
    _tensors: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def head_config(self) -> HeadConfig:
        return self.manifest.head

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def window_utts(self) -> int:
        return self.manifest.window_utts

    def has(self, role: str) -> bool:
        return role in self.manifest.files

    def file(self, role: str) -> Path:
        """Path of an artefact by role ("head", "text_encoder", ...); BundleError if absent."""
        files = self.manifest.files
        if role not in files:
            raise BundleError(f"bundle {self.path} has no '{role}' file (has: {sorted(files)})")
        return inside(self.path, files[role], f"files.{role}")

    def sha256(self, role: str) -> str | None:
        return self.manifest.sha256.get(self.manifest.files.get(role, ""))

    def head_tensors(self) -> dict[str, np.ndarray]:
        """Head weights by PyTorch state-dict name, float32 numpy arrays."""
        if self._tensors is None:
            try:
                raw = load_file(str(self.file("head")))
            except Exception as exc:  # safetensors raises its own error types
                raise BundleError(f"cannot read head weights {self.file('head')}: {exc}") from exc
            self._tensors = {k: v.astype(np.float32, copy=False) for k, v in raw.items()}
        return self._tensors


def _check_files(root: Path, manifest: Manifest, verify: bool) -> None:
    listed = set(manifest.files.values())
    for role, name in manifest.files.items():
        file = inside(root, name, f"files.{role}")
        if not file.is_file():
            raise BundleError(f"bundle file missing: {file}")
        if verify and sha256_of(file) != manifest.sha256[name]:
            raise BundleError(f"bundle file corrupt (sha256 mismatch): {file}")
        if name.endswith(".onnx"):
            for location in onnx_external_locations(file):
                where = f"files.{role} external data"
                inside(file.parent, location, where)
                rel = (file.parent / location).resolve().relative_to(root.resolve()).as_posix()
                if rel not in listed:
                    raise BundleError(f"{where}: {location!r} is not a file the manifest lists")


def read_manifest(path: str | Path) -> Manifest:
    """The validated manifest of the bundle at `path` (no file checks)."""
    manifest_path = Path(path) / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"not a bundle: {manifest_path} not found")
    try:
        raw = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"corrupt bundle manifest {manifest_path}: {exc}") from exc
    try:
        return Manifest.from_dict(raw)
    except BundleError as exc:
        raise BundleError(f"{manifest_path}: {exc}") from None


def load_bundle(path: str | Path, *, verify: bool = True) -> Bundle:
    """Read and check a bundle directory. verify=True checks every listed file's sha256."""
    root = Path(path)
    manifest = read_manifest(root)
    _check_files(root, manifest, verify)
    return Bundle(root, manifest)


def absolute_paths(value: Any, where: str = "") -> list[str]:
    """Dotted names of manifest fields whose strings hold an absolute path."""
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in absolute_paths(v, f"{where}.{k}" if where else k)]
    if isinstance(value, (list, tuple)):
        return [hit for i, v in enumerate(value) for hit in absolute_paths(v, f"{where}[{i}]")]
    return [where] if isinstance(value, str) and _ABSOLUTE.search(value) else []


def strip_absolute_paths(value: Any) -> Any:
    """The same JSON with every absolute path replaced by its last component (for shipping)."""
    if isinstance(value, dict):
        return {k: strip_absolute_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_absolute_paths(v) for v in value]
    if isinstance(value, str):
        return _ABSOLUTE.sub(lambda m: m.group(0).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1], value)
    return value


def _write_manifest(root: Path, raw: dict[str, Any], *, local_paths: bool) -> Manifest:
    if not local_paths:
        found = absolute_paths(raw)
        if found:
            raise BundleError(f"manifest field {found[0]} holds an absolute path of this machine; a bundle "
                              "must be portable (use paths relative to the bundle, or pack it)")
    manifest = Manifest.from_dict(raw)
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
    tmp.replace(root / MANIFEST)
    return manifest


def save_bundle(path: str | Path, *, head_config: HeadConfig, head_tensors: dict[str, np.ndarray],
                manifest: dict[str, Any], extra_files: dict[str, Path] | None = None,
                local_paths: bool = False) -> Path:
    """Write manifest.json + head.safetensors (+ copies of `extra_files` by role) into `path`.

    `manifest` holds the descriptive fields (name, features, metrics, ...). Absolute paths in it
    are refused unless `local_paths` (a working bundle that stays on this machine)."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in head_tensors.items()}, str(out / HEAD_FILE))
    files = {"head": HEAD_FILE}
    for role, src in (extra_files or {}).items():
        src = Path(src)
        if src.resolve() != (out / src.name).resolve():
            shutil.copy2(src, out / src.name)
        files[role] = src.name
    raw = {"format": FORMAT, "format_version": FORMAT_VERSION, "labels": list(EMOTIONS), **manifest,
           "head": head_config.to_dict(), "files": files,
           "sha256": {name: sha256_of(out / name) for name in files.values()}}
    _write_manifest(out, raw, local_paths=local_paths)
    return out


def add_artifacts(bundle_path: str | Path, files: dict[str, str]) -> Bundle:
    """Register files already inside the bundle directory under `files` {role: relative name},
    with their sha256, and return the reloaded bundle."""
    root = Path(bundle_path)
    manifest = read_manifest(root)
    names, sha = dict(manifest.files), dict(manifest.sha256)
    for role, name in files.items():
        file = inside(root, name, f"files.{role}")
        if not file.is_file():
            raise BundleError(f"cannot register {role!r}: {file} does not exist")
        old = names.get(role)
        if old and old != name and old not in {n for r, n in names.items() if r != role}:
            sha.pop(old, None)
        names[role] = name
        sha[name] = sha256_of(file)
    updated = replace(manifest, files=freeze(names), sha256=freeze(sha))
    _check_files(root, updated, verify=False)  # refuse before the manifest lists anything unsafe
    _write_manifest(root, updated.to_dict(), local_paths=True)  # the descriptive fields are unchanged
    return load_bundle(root)
