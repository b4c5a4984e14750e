"""On-disk feature store: per split, an index of utterances and one float32 matrix per feature.

Layout:
  manifest.json            format, corpus, feature specs {name: spec with "dim"}, package versions,
                           clip_cut (what each clip's audio was cut to before its features: "speech_span")
  <split>/index.json       rows: [{dialogue_id, utterance_id, label, speaker, ...}] in store order
  <split>/<feature>.npy    [rows, dim] float32 (memory-mapped while writing)
  <split>/<feature>.done.npy  [rows] bool: rows written; extraction resumes from the missing rows
  <split>/<feature>.ok.npy    [rows] bool: rows with a usable value (False: missing/broken input)

Writers fill rows in any order and flush as they go, so an interrupted extraction resumes where
it stopped. Readers get plain arrays plus the ok mask (missing inputs stay zeros and are masked).
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "cmer_edge.features"
FORMAT_VERSION = 1


class StoreError(ValueError):
    """A feature store that is missing, inconsistent, or asked for what it does not hold."""


def package_versions(names: tuple[str, ...] = ("cmer_edge", "numpy", "opensmile", "torch", "transformers",
                                              "onnxruntime")) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


class FeatureStore:
    def __init__(self, root: str | Path, manifest: dict[str, Any]) -> None:
        self.root = Path(root)
        self.manifest = manifest

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path, *, create: bool = False, corpus: str | None = None) -> "FeatureStore":
        root = Path(root)
        path = root / "manifest.json"
        if path.is_file():
            manifest = json.loads(path.read_text())
            if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
                raise StoreError(f"{path}: not a cmer_edge feature store of format version {FORMAT_VERSION}")
            if corpus is not None and manifest.get("corpus") != corpus:
                raise StoreError(f"{root} holds corpus {manifest.get('corpus')!r}, not {corpus!r}")
            return cls(root, manifest)
        if not create:
            raise StoreError(f"no feature store at {root} (manifest.json missing)")
        root.mkdir(parents=True, exist_ok=True)
        store = cls(root, {"format": FORMAT, "format_version": FORMAT_VERSION, "corpus": corpus,
                           "features": {}, "splits": {}, "versions": package_versions()})
        store._save_manifest()
        return store

    def _save_manifest(self) -> None:
        tmp = self.root / "manifest.json.tmp"
        tmp.write_text(json.dumps(self.manifest, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.root / "manifest.json")

    # -- index ---------------------------------------------------------------------------------
    def set_index(self, split: str, rows: list[dict[str, Any]]) -> None:
        """Define a split's rows. Re-setting an identical index keeps the extracted features."""
        split_dir = self.root / split
        path = split_dir / "index.json"
        if path.is_file() and json.loads(path.read_text()) == rows:
            return
        if path.is_file() and any(split_dir.glob("*.npy")):
            raise StoreError(f"{split}: the index differs from the stored one; use a new store directory")
        split_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows) + "\n")
        self.manifest["splits"][split] = len(rows)
        self._save_manifest()

    def index(self, split: str) -> list[dict[str, Any]]:
        path = self.root / split / "index.json"
        if not path.is_file():
            raise StoreError(f"{self.root} has no split {split!r} (has: {sorted(self.manifest['splits'])})")
        return json.loads(path.read_text())

    # -- features ------------------------------------------------------------------------------
    def declare(self, name: str, spec: dict[str, Any]) -> None:
        """Record a feature's spec (must include "dim"); a different spec under the same name is refused."""
        if "dim" not in spec:
            raise StoreError(f"feature {name!r}: spec needs a 'dim'")
        known = self.manifest["features"].get(name)
        if known is not None and known != spec:
            raise StoreError(f"feature {name!r} already stored with another spec:\n{known}\nvs\n{spec}")
        self.manifest["features"][name] = spec
        self._save_manifest()

    def require_clip_cut(self, cut: str) -> None:
        """Record that audio features are computed on clips cut to `cut`; a store whose audio features were
        computed otherwise (a store from before clips were cut: no clip_cut) is refused."""
        known = self.manifest.get("clip_cut")
        audio_stored = any("kind" in spec for spec in self.manifest["features"].values())  # text specs: no kind
        if known != cut and (known is not None or audio_stored):
            raise StoreError(f"{self.root} holds audio features of clips cut to {known or 'the whole file'!r}, "
                             f"this cmer_edge cuts every clip to its {cut!r} (as listen hears it); use a new "
                             "store directory")
        if known != cut:
            self.manifest["clip_cut"] = cut
            self._save_manifest()

    def dim(self, name: str) -> int:
        if name not in self.manifest["features"]:
            raise StoreError(f"{self.root} has no feature {name!r} (has: {sorted(self.manifest['features'])})")
        return int(self.manifest["features"][name]["dim"])

    def writer(self, split: str, name: str) -> "FeatureWriter":
        return FeatureWriter(self.root / split, name, len(self.index(split)), self.dim(name))

    def load(self, split: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(values [rows, dim] float32, ok [rows] bool); refuses incomplete extractions."""
        base = self.root / split / name
        if not (base.parent / f"{name}.npy").is_file():
            raise StoreError(f"feature {name!r} was never extracted for split {split!r} in {self.root}")
        done = np.load(base.parent / f"{name}.done.npy")
        if not done.all():
            raise StoreError(f"feature {name!r} of split {split!r} is incomplete: {int((~done).sum())} of "
                             f"{done.size} rows missing (re-run the extraction to resume)")
        values = np.load(base.parent / f"{name}.npy")
        ok = np.load(base.parent / f"{name}.ok.npy")
        return np.asarray(values, np.float32), ok


class FeatureWriter:
    """Random-access row writer with resume: `pending()` lists rows still to do."""

    def __init__(self, split_dir: Path, name: str, rows: int, dim: int) -> None:
        self.paths = {k: split_dir / f"{name}{k}.npy" for k in ("", ".done", ".ok")}
        if self.paths[""].is_file():
            self.values = np.load(self.paths[""], mmap_mode="r+")
            if self.values.shape != (rows, dim):
                raise StoreError(f"{self.paths['']} has shape {self.values.shape}, expected {(rows, dim)}")
            self.done = np.load(self.paths[".done"])
            self.ok = np.load(self.paths[".ok"])
        else:
            self.values = np.lib.format.open_memmap(self.paths[""], mode="w+", dtype=np.float32, shape=(rows, dim))
            self.done = np.zeros(rows, bool)
            self.ok = np.zeros(rows, bool)

    def pending(self) -> np.ndarray:
        return np.flatnonzero(~self.done)

    def put(self, row: int, value: np.ndarray | None) -> None:
        """Store a row; None marks an unusable input (kept as zeros, ok=False)."""
        if value is not None:
            value = np.asarray(value, np.float32).reshape(-1)
            if value.shape[0] != self.values.shape[1]:
                raise StoreError(f"row {row}: got {value.shape[0]} values, feature dim is {self.values.shape[1]}")
            if not np.isfinite(value).all():
                raise StoreError(f"row {row}: non-finite feature values")
            self.values[row] = value
        self.ok[row] = value is not None
        self.done[row] = True

    def flush(self) -> None:
        self.values.flush()
        np.save(self.paths[".done"], self.done)
        np.save(self.paths[".ok"], self.ok)
