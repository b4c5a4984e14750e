"""A bundle is a directory: manifest.json + head.safetensors (+ encoder artefacts).

Torch-free: the runtime loads bundles with numpy only. Weights are safetensors (never pickles);
every file the manifest lists carries a sha256 checked at load, so a corrupt or mismatched bundle
fails with a message naming the file instead of producing garbage.

manifest.json keys:
  format, format_version, name, profile ("paper" | "edge" | anything), labels [7],
  head (HeadConfig fields), features ({"audio": {...}, "text": {...}} specs, free-form but with
  "dim"), window_utts, protocol ("paper" | "live"), metrics ({name: value}), files ({role: file}),
  sha256 ({file: digest}).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmer_edge.model.config import EMOTIONS, HeadConfig

FORMAT = "cmer_edge.bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
HEAD_FILE = "head.safetensors"


class BundleError(ValueError):
    """A bundle that is missing, corrupt, or does not match what loads it."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Bundle:
    path: Path
    manifest: dict[str, Any]
    head_config: HeadConfig
    _tensors: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.manifest["labels"])

    @property
    def window_utts(self) -> int:
        return int(self.manifest.get("window_utts", 16))

    def file(self, role: str) -> Path:
        """Path of an artefact by role ("head", "text_encoder", ...); BundleError if absent."""
        files = self.manifest.get("files", {})
        if role not in files:
            raise BundleError(f"bundle {self.path} has no '{role}' file (has: {sorted(files)})")
        return self.path / files[role]

    def head_tensors(self) -> dict[str, np.ndarray]:
        """Head weights by PyTorch state-dict name, float32 numpy arrays."""
        if self._tensors is None:
            from safetensors.numpy import load_file

            try:
                raw = load_file(str(self.file("head")))
            except Exception as exc:  # safetensors raises its own error types
                raise BundleError(f"cannot read head weights {self.file('head')}: {exc}") from exc
            self._tensors = {k: v.astype(np.float32, copy=False) for k, v in raw.items()}
        return self._tensors


def save_bundle(path: str | Path, *, head_config: HeadConfig, head_tensors: dict[str, np.ndarray],
                manifest: dict[str, Any], extra_files: dict[str, Path] | None = None) -> Path:
    """Write manifest.json + head.safetensors (+ copies of `extra_files` by role) into `path`."""
    import shutil

    from safetensors.numpy import save_file

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in head_tensors.items()}, str(out / HEAD_FILE))
    files = {"head": HEAD_FILE}
    for role, src in (extra_files or {}).items():
        src = Path(src)
        if src.resolve() != (out / src.name).resolve():
            shutil.copy2(src, out / src.name)
        files[role] = src.name
    full = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "labels": list(EMOTIONS),
        **manifest,
        "head": head_config.to_dict(),
        "files": files,
        "sha256": {name: sha256_of(out / name) for name in files.values()},
    }
    (out / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    return out


def load_bundle(path: str | Path, *, verify: bool = True) -> Bundle:
    """Read and check a bundle directory. verify=True checks every listed file's sha256."""
    root = Path(path)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"not a bundle: {manifest_path} not found")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"corrupt bundle manifest {manifest_path}: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{manifest_path}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{manifest_path}: format_version {manifest.get('format_version')!r} is not "
                          f"supported (this cmer_edge reads {FORMAT_VERSION})")
    try:
        head_config = HeadConfig.from_dict(manifest["head"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{manifest_path}: bad 'head' config: {exc}") from exc
    if len(manifest.get("labels", [])) != head_config.num_classes:
        raise BundleError(f"{manifest_path}: {len(manifest.get('labels', []))} labels for "
                          f"{head_config.num_classes} classes")
    for name in manifest.get("files", {}).values():
        file = root / name
        if not file.is_file():
            raise BundleError(f"bundle file missing: {file}")
        expected = manifest.get("sha256", {}).get(name)
        if verify and expected and sha256_of(file) != expected:
            raise BundleError(f"bundle file corrupt (sha256 mismatch): {file}")
    return Bundle(root, manifest, head_config)
