"""The first L layers of a CTranslate2 Whisper encoder, as a CTranslate2 model of its own.

CTranslate2 returns only the encoder's last states, but emotion is read better from the middle of
the encoder than from its end, which is tuned to what the decoder transcribes (docs/results.md:
Whisper tiny.en's layer 2 of 4 next to its last layer adds 3-6 UAR on the dev speakers).
CTranslate2 sizes a model from the variables in its `model.bin`, so a copy without encoder layers
L.. is an encoder that stops after layer L (its final layer norm still applied), run by the same
engine:

    path = encoder_prefix(Path(".../tiny.en"), 2, source_sha256)   # derived once, then reused

The copy is derived locally from the installed model (no download), written atomically into the
user's cache (`features.user_cache`: $CMER_EDGE_CACHE, default ~/.cache/cmer_edge) under the
source's sha256, so a changed source model never reuses a stale copy.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import tempfile
from pathlib import Path
from typing import BinaryIO

from cmer_edge.features.user_cache import cache_root

MIN_FORMAT = 4  # the first model.bin version with per-variable dtypes (CTranslate2 >= 2.0)
ENCODER_LAYER = re.compile(r"encoder/layer_(\d+)/")
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json", "preprocessor_config.json")


class PrefixError(OSError):
    """The encoder copy cannot be written (an unwritable or full cache folder)."""


def encoder_prefix(model_dir: Path, layers: int, source_sha256: str) -> Path:
    """A CTranslate2 Whisper model directory whose encoder is `model_dir`'s first `layers` layers."""
    target = cache_root() / "whisper" / f"{source_sha256[:16]}-encoder{layers}"
    if (target / "model.bin").is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    except OSError as exc:
        raise PrefixError(f"cannot write the Whisper encoder copy under {target.parent} ({exc.strerror or exc}); "
                          "set CMER_EDGE_CACHE to a writable folder") from exc
    try:
        kept, total = _write_prefix(model_dir / "model.bin", tmp / "model.bin", layers)
        for name in SIDE_FILES:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, tmp / name)
        (tmp / "prefix.json").write_text(json.dumps({"source": str(model_dir), "source_sha256": source_sha256,
                                                     "encoder_layers": layers, "of": total, "variables": kept}))
        tmp.chmod(0o755)
        try:
            tmp.rename(target)
        except OSError:  # another process derived it first
            if not (target / "model.bin").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_model_bin(src: Path) -> tuple[int, str, int, list[tuple[str, tuple[int, ...], int, bytes]],
                                        list[tuple[str, str]]]:
    """A CTranslate2 model.bin: (format version, spec, revision, [(name, dims, dtype code, raw bytes)],
    [(alias, name)])."""
    with src.open("rb") as f:
        version = _u32(f)
        if version < MIN_FORMAT:
            raise ValueError(f"{src}: CTranslate2 model format {version} is older than {MIN_FORMAT}")
        spec, revision = _string(f), _u32(f)
        variables = []
        for _ in range(_u32(f)):
            name = _string(f)
            rank = f.read(1)[0]
            dims = struct.unpack(f"<{rank}I", f.read(4 * rank))
            dtype = f.read(1)[0]
            variables.append((name, dims, dtype, f.read(_u32(f))))
        aliases = [(_string(f), _string(f)) for _ in range(_u32(f))]
    return version, spec, revision, variables, aliases


def _write_prefix(src: Path, dst: Path, layers: int) -> tuple[int, int]:
    """Copy a model.bin without the variables of encoder layers >= `layers`; (variables kept, layers in src)."""
    version, spec, revision, variables, aliases = read_model_bin(src)
    layer_of = {n: int(m.group(1)) for n, *_ in variables if (m := ENCODER_LAYER.match(n))}
    depth = 1 + max(layer_of.values(), default=-1)
    if not 0 < layers <= depth:
        raise ValueError(f"{src}: the encoder has {depth} layers; cannot keep the first {layers}")
    kept = [v for v in variables if layer_of.get(v[0], -1) < layers]
    with dst.open("wb") as out:
        out.write(struct.pack("<I", version))
        _put_string(out, spec)
        out.write(struct.pack("<II", revision, len(kept)))
        for name, dims, dtype, data in kept:
            _put_string(out, name)
            out.write(struct.pack(f"<B{len(dims)}IBI", len(dims), *dims, dtype, len(data)))
            out.write(data)
        out.write(struct.pack("<I", len(aliases)))
        for alias, name in aliases:
            _put_string(out, alias)
            _put_string(out, name)
    return len(kept), depth


def _u32(f: BinaryIO) -> int:
    return struct.unpack("<I", f.read(4))[0]


def _string(f: BinaryIO) -> str:
    return f.read(struct.unpack("<H", f.read(2))[0]).rstrip(b"\0").decode()


def _put_string(out: BinaryIO, text: str) -> None:
    data = text.encode() + b"\0"
    out.write(struct.pack("<H", len(data)) + data)
