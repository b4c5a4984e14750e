"""Bring any audio to the pipeline's format (float32 mono at a given rate), or say why not."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

PIPELINE_RATE_HZ = 16_000


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, non-finite, or of an unsupported layout."""


def to_mono(samples: np.ndarray) -> np.ndarray:
    """[n] or [n, channels] -> [n] float32 (channel mean)."""
    x = np.asarray(samples)
    if x.ndim == 1:
        return x.astype(np.float32, copy=False)
    if x.ndim == 2 and x.shape[1] >= 1:
        return x.mean(axis=1, dtype=np.float64).astype(np.float32)
    raise AudioError(f"audio must be [samples] or [samples, channels], got shape {x.shape}")


def resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Polyphase resampling of mono float audio; a no-op when the rates match."""
    if from_hz <= 0 or to_hz <= 0:
        raise AudioError(f"sample rates must be positive, got {from_hz} -> {to_hz}")
    x = np.asarray(samples, dtype=np.float32)
    if from_hz == to_hz:
        return x
    from scipy.signal import resample_poly

    g = gcd(int(from_hz), int(to_hz))
    return resample_poly(x, to_hz // g, from_hz // g).astype(np.float32)


def check_samples(samples: np.ndarray, what: str = "audio") -> np.ndarray:
    """Reject empty or non-finite audio with a message naming the problem."""
    x = np.asarray(samples)
    if x.size == 0:
        raise AudioError(f"{what} is empty (0 samples)")
    if not np.issubdtype(x.dtype, np.floating):
        raise AudioError(f"{what} must be floating point in [-1, 1], got dtype {x.dtype}")
    bad = ~np.isfinite(x)
    if bad.any():
        raise AudioError(f"{what} holds {int(bad.sum())} non-finite samples (first at index {int(np.argmax(bad.ravel()))})")
    return x


def to_pipeline_format(samples: np.ndarray, sample_rate_hz: int, target_hz: int = PIPELINE_RATE_HZ) -> np.ndarray:
    """Validate, mix to mono and resample to `target_hz`; returns float32 [n]."""
    x = check_samples(samples)
    return resample(to_mono(x), sample_rate_hz, target_hz)


def load_audio(path: str | Path, target_hz: int = PIPELINE_RATE_HZ) -> np.ndarray:
    """Read any file libsndfile reads (wav, flac, ogg...) as float32 mono at `target_hz`."""
    import soundfile as sf  # lazy: the head's import path (cli_common -> validate -> checks) needs no libsndfile
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(f"cannot read audio file {path}: {exc}") from exc
    if samples.shape[0] == 0:
        raise AudioError(f"audio file {path} is empty (0 samples)")
    return to_pipeline_format(samples, int(rate), target_hz)
