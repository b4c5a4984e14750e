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
from collections.abc import Mapping, Sequence
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
INT8_SCALE = ".int8_scale"  # suffix of the per-row scales of a head tensor stored as int8
_ABSOLUTE = re.compile(r"(?:^|(?<=[\s=\"']))(?:/|~/|[A-Za-z]:[\\/])[^\s\"']*")


@dataclass
class Bundle:
    path: Path
    manifest: Manifest
    _members: tuple[dict[str, np.ndarray], ...] | None = field(default=None, repr=False)

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

    def head_members(self) -> tuple[dict[str, np.ndarray], ...]:
        """Each member head's weights by PyTorch state-dict name, float32 numpy arrays (one member
        unless the bundle is an ensemble: `manifest.head_members`, probabilities averaged)."""
        if self._members is None:
            try:
                raw = load_file(str(self.file("head")))
            except Exception as exc:  # safetensors raises its own error types
                raise BundleError(f"cannot read head weights {self.file('head')}: {exc}") from exc
            self._members = split_members(dequantised(raw, self.file("head")), self.manifest.head_members,
                                          self.file("head"))
        return self._members

    def head_tensors(self) -> dict[str, np.ndarray]:
        """The head's weights, for a bundle of one head (an ensemble: BundleError; use head_members)."""
        members = self.head_members()
        if len(members) != 1:
            raise BundleError(f"bundle {self.path} is an ensemble of {len(members)} heads: this step takes one "
                              "head (build it per member, then combine them: cmer_edge.bundle.ensemble)")
        return members[0]


def member_prefix(i: int) -> str:
    """Name prefix of member i's tensors in the head file of an ensemble (none for a single head)."""
    return f"members.{i}."


def split_members(tensors: dict[str, np.ndarray], count: int, where: Path | str) -> tuple[dict[str, np.ndarray], ...]:
    """The head file's tensors as `count` member state dicts (a single head: unchanged)."""
    if count == 1:
        return (tensors,)
    members: list[dict[str, np.ndarray]] = [{} for _ in range(count)]
    for name, value in tensors.items():
        head, _, rest = name.partition(".")
        index, _, key = rest.partition(".")
        if head != "members" or not index.isdigit() or int(index) >= count or not key:
            raise BundleError(f"{where}: tensor {name!r} is not a member tensor 'members.<i>.<name>' with "
                              f"i < head_members = {count}")
        members[int(index)][key] = value
    names = set(members[0])
    for i, member in enumerate(members[1:], 1):
        if set(member) != names:
            raise BundleError(f"{where}: member {i} has other tensors than member 0: "
                              f"{sorted(set(member) ^ names)[:5]}")
    return tuple(members)


def quantised_int8(tensors: dict[str, np.ndarray], names: set[str]) -> dict[str, np.ndarray]:
    """`names` stored as int8, symmetric, one float32 scale per output row (`<name>.int8_scale`)."""
    out = dict(tensors)
    for name in names:
        w = np.asarray(tensors[name], np.float32)
        scale = np.abs(w).max(axis=1) / 127.0
        scale[scale == 0] = 1.0
        out[name] = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
        out[name + INT8_SCALE] = scale.astype(np.float32)
    return out


def dequantised(raw: dict[str, np.ndarray], where: Path | str) -> dict[str, np.ndarray]:
    """float32 weights from the head file: float tensors as they are, int8 ones times their row scales."""
    out = {}
    for name, value in raw.items():
        if name.endswith(INT8_SCALE):
            continue
        if value.dtype == np.int8:
            scale = raw.get(name + INT8_SCALE)
            if scale is None or value.ndim != 2 or scale.shape != (value.shape[0],):
                raise BundleError(f"{where}: int8 tensor {name!r} {value.shape} needs a float scale per row "
                                  f"({name + INT8_SCALE!r})")
            out[name] = value.astype(np.float32) * scale.astype(np.float32)[:, None]
        elif value.dtype.kind == "f":
            out[name] = value.astype(np.float32, copy=False)
        else:
            raise BundleError(f"{where}: tensor {name!r} has dtype {value.dtype} (float or int8 expected)")
    return out


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


def save_bundle(path: str | Path, *, head_config: HeadConfig,
                head_tensors: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]],
                manifest: dict[str, Any], extra_files: dict[str, Path] | None = None,
                local_paths: bool = False) -> Path:
    """Write manifest.json + head.safetensors (+ copies of `extra_files` by role) into `path`.

    `head_tensors`: one head's state dict, or a sequence of member heads' (an ensemble: the
    runtime averages their probabilities; stored as `members.<i>.<name>`, `head_members` = N).

    `manifest` holds the descriptive fields (name, features, metrics, ...). Absolute paths in it
    are refused unless `local_paths` (a working bundle that stays on this machine)."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    members = [head_tensors] if isinstance(head_tensors, Mapping) else list(head_tensors)
    if not members:
        raise BundleError("a bundle needs at least one head")
    prefixes = [""] if len(members) == 1 else [member_prefix(i) for i in range(len(members))]
    save_file({p + k: np.ascontiguousarray(v) for p, member in zip(prefixes, members) for k, v in member.items()},
              str(out / HEAD_FILE))
    files = {"head": HEAD_FILE}
    for role, src in (extra_files or {}).items():
        src = Path(src)
        if src.resolve() != (out / src.name).resolve():
            shutil.copy2(src, out / src.name)
        files[role] = src.name
    raw = {"format": FORMAT, "format_version": FORMAT_VERSION, "labels": list(EMOTIONS),
           **{k: v for k, v in manifest.items() if k != "head_members"},
           **({"head_members": len(members)} if len(members) > 1 else {}),
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
