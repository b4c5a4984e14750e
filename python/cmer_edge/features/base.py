"""The audio extractor interface, input checks and chaining (torch-free); the factory that builds
extractors by name is `cmer_edge.features.registry.make_audio_extractor`.

Every audio extractor maps one utterance in the pipeline format (16 kHz mono float32, see
`cmer_edge.audio.convert`) to one float32 vector of a fixed `dim`:

    ext = make_audio_extractor(  # cmer_edge.features.registry"opensmile.eGeMAPSv02")
    x = ext(audio)                        # float32 [88]
    ext.spec()                            # JSON-able: name, dim, params, versions, weights sha256

Names (see `AUDIO_EXTRACTORS`):
  opensmile.eGeMAPSv02 (88), opensmile.ComParE_2016 (6373),
  opensmile.emo_large (6552; config path via `config_path=` or $CMER_EDGE_EMO_LARGE_CONF),
  l3.mel256.6144, l3.mel256.512, l3.mel128.6144, l3.mel128.512 (OpenL3 audio network; `weights=`
  an OpenL3 Keras .h5[.gz], or "random" for a random-init network of the real shape),
  edgel3.sea.64/128/256/512 (EdgeL3 SEA students; `weights=` the EdgeL3 .h5[.gz]),
  whisper.tiny.en (768: Whisper encoder states, mean ⊕ std; CTranslate2, the `asr` extra),
  whisper.tiny.en.l2 (768: the same after the encoder's layer 2 of 4),
  whisper.base, whisper.base.l2 (1024 each: multilingual Whisper base after its layer 6 of 6 / 2 of 6;
  the `whisper-base` extra, joined by features.split_model).
An L3/EdgeL3 name with `onnx=path` runs an exported graph through ONNX Runtime without torch.
Names joined by "+" build a `ChainExtractor` whose vector is the concatenation, e.g. the paper's
x_a = "opensmile.emo_large+l3.mel256.6144" (6552 + 6144 = 12696); its options are given per part:
`make_audio_extractor("a+b", **{"a": {...}, "b": {...}})`.

Input policy (all extractors): a 1-D floating array; empty, non-finite, or shorter than
`MIN_AUDIO_S` (20 ms) raises `AudioInputError` (a ValueError) naming the value. Audio shorter than
an extractor's own minimum (`min_samples`) is zero-padded, centred, to that minimum: openSMILE
needs ~0.1 s for finite functionals (we pad to 0.25 s); the L3 networks pad to one 1-s window
inside the graph, as OpenL3 does. Silence is accepted (finite output).
"""

from __future__ import annotations

import importlib
import logging
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Protocol, runtime_checkable

import numpy as np

from cmer_edge.audio.convert import PIPELINE_RATE_HZ, AudioError

log = logging.getLogger("cmer_edge")

MIN_AUDIO_S = 0.02
MIN_AUDIO_SAMPLES = int(round(MIN_AUDIO_S * PIPELINE_RATE_HZ))


class AudioInputError(AudioError):
    """Audio an extractor refuses: wrong shape or dtype, empty, non-finite, or too short."""


@runtime_checkable
class AudioExtractor(Protocol):
    """16 kHz mono float32 [n] -> float32 [dim]; `spec()` identifies the features it computes."""

    name: str
    dim: int

    def spec(self) -> dict: ...

    def __call__(self, audio: np.ndarray) -> np.ndarray: ...


def check_audio(audio: np.ndarray, *, name: str, min_samples: int = MIN_AUDIO_SAMPLES) -> np.ndarray:
    """Validate pipeline-format audio for extractor `name`; zero-pad (centred) to `min_samples`.

    Returns a contiguous float32 [max(n, min_samples)] array.
    """
    if not isinstance(audio, np.ndarray):
        raise AudioInputError(f"{name}: audio must be a numpy array, got {type(audio).__name__}")
    if audio.ndim != 1:
        raise AudioInputError(
            f"{name}: audio must be mono [samples] at {PIPELINE_RATE_HZ} Hz, got shape {audio.shape} "
            "(use cmer_edge.audio.convert.to_pipeline_format)")
    if not np.issubdtype(audio.dtype, np.floating):
        raise AudioInputError(f"{name}: audio must be floating point in [-1, 1], got dtype {audio.dtype}")
    n = audio.shape[0]
    if n == 0:
        raise AudioInputError(f"{name}: audio is empty (0 samples)")
    bad = ~np.isfinite(audio)
    if bad.any():
        raise AudioInputError(
            f"{name}: audio holds {int(bad.sum())} non-finite samples (first at index {int(np.argmax(bad))})")
    if n < MIN_AUDIO_SAMPLES:
        raise AudioInputError(
            f"{name}: audio of {n} samples ({n / PIPELINE_RATE_HZ * 1e3:.1f} ms) is shorter than the "
            f"minimum {MIN_AUDIO_SAMPLES} samples ({MIN_AUDIO_S * 1e3:.0f} ms at {PIPELINE_RATE_HZ} Hz)")
    x = np.ascontiguousarray(audio, dtype=np.float32)
    if n < min_samples:
        left = (min_samples - n) // 2
        log.debug("%s: zero-padding %d samples to %d", name, n, min_samples)
        x = np.pad(x, (left, min_samples - n - left))
    return x


def check_output(vector: np.ndarray, *, name: str, dim: int, samples: int) -> np.ndarray:
    """The extractor contract on the way out: float32 [dim], finite."""
    y = np.asarray(vector, dtype=np.float32).reshape(-1)
    if y.shape[0] != dim:
        raise RuntimeError(f"{name}: produced {y.shape[0]} values, expected {dim}")
    if not np.isfinite(y).all():
        raise AudioInputError(
            f"{name}: produced {int((~np.isfinite(y)).sum())} non-finite values for audio of {samples} samples")
    return y


class ChainExtractor:
    """Several extractors; their vectors concatenated in order (e.g. emo_large ⊕ OpenL3-6144).

    `parallel=True` (the live runtime) runs the parts at once, the first in the calling thread and
    the others in a small pool of their own: openSMILE (ctypes) and ONNX Runtime release the GIL,
    so an utterance's features cost the slowest part, not the sum. Calls must not overlap (one
    utterance at a time), as each part keeps its own state."""

    def __init__(self, parts: list[AudioExtractor], *, parallel: bool = False) -> None:
        if not parts:
            raise ValueError("ChainExtractor needs at least one extractor")
        names = [p.name for p in parts]
        if len(set(names)) != len(names):
            raise ValueError(f"ChainExtractor: duplicate extractor names {names}")
        self.parts = list(parts)
        self.name = "+".join(names)
        self.dim = sum(int(p.dim) for p in parts)
        self._pool = None
        if parallel and len(parts) > 1:
            self._pool = ThreadPoolExecutor(max_workers=len(parts) - 1, thread_name_prefix="cmer_edge-audio")

    def offsets(self) -> dict[str, tuple[int, int]]:
        """{part name: (start, stop)} of each part inside the concatenated vector."""
        out, start = {}, 0
        for p in self.parts:
            out[p.name] = (start, start + int(p.dim))
            start += int(p.dim)
        return out

    def spec(self) -> dict:
        return {"name": self.name, "dim": self.dim, "kind": "chain", "parts": [p.spec() for p in self.parts]}

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        check_audio(audio, name=self.name)
        if self._pool is None:
            vectors = [p(audio) for p in self.parts]
        else:
            others = [self._pool.submit(p, audio) for p in self.parts[1:]]
            vectors = [self.parts[0](audio)] + [f.result() for f in others]
        return np.concatenate(vectors).astype(np.float32, copy=False)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def package_version(dist: str) -> str | None:
    """Installed version of distribution `dist`, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def lazy_import(module: str, hint: str):
    """Import `module` or raise ImportError saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is needed here: {hint}") from exc
