"""Checks shared by every way audio enters the package (sources, `Recognizer.process`, CLIs).

Each returns the repaired array and human-readable notes (also logged as warnings), or raises
`AudioError` naming the problem. The rules (docs/live_audio.md, "Bad input"):
- shape: `[n]`, `[n, channels]`, or channels-first `[channels, n]` (channels <= MAX_CHANNELS < n,
  e.g. a `[2, n]` stereo array from librosa/torchaudio), which is transposed with a note; anything
  else (3-D, `[n, n]`-ish ambiguity with both sides > MAX_CHANNELS) is refused;
- dtype: floating point (integer PCM must be scaled by the caller, the scale is theirs to know);
- empty or non-finite: refused;
- scale: float audio whose peak is above INT16_SCALE_PEAK looks like int16 PCM stored as float
  (±32767): divided by 32768 with a warning, since as given it would be clipping everywhere;
- rate: anything but 16 kHz is resampled (scipy's resample_poly) with a note.
"""

from __future__ import annotations

import logging

import numpy as np

from cmer_edge.audio.convert import PIPELINE_RATE_HZ, AudioError, resample

log = logging.getLogger("cmer_edge")
MAX_CHANNELS = 8
INT16_SCALE_PEAK = 2.0  # a float peak above this is not clipping of [-1, 1] audio: it is PCM scale


def frames_by_channels(raw: np.ndarray, what: str) -> tuple[np.ndarray, list[str]]:
    """[n] / [n, c] / channels-first [c, n] float -> float32 [n, c], notes."""
    x = np.asarray(raw)
    notes: list[str] = []
    if x.ndim == 1:
        x = x[:, None]
    elif x.ndim == 2 and x.shape[0] <= MAX_CHANNELS < x.shape[1]:
        notes.append(f"{what}: shape {tuple(x.shape)} read as channels-first ({x.shape[0]} channels x "
                     f"{x.shape[1]} samples)")
        x = x.T
    if x.ndim != 2 or x.shape[1] < 1 or x.shape[1] > MAX_CHANNELS:
        raise AudioError(f"{what} must be [samples], [samples, channels] or [channels, samples] with at most "
                         f"{MAX_CHANNELS} channels, got shape {np.asarray(raw).shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise AudioError(f"{what} must be floating point in [-1, 1], got dtype {x.dtype} "
                         "(divide integer PCM by its full scale, e.g. 32768 for int16)")
    for note in notes:
        log.warning("%s", note)
    return np.ascontiguousarray(x, dtype=np.float32), notes


def check_finite_nonempty(x: np.ndarray, what: str) -> None:
    if x.size == 0:
        raise AudioError(f"{what} is empty (0 samples)")
    bad = ~np.isfinite(x)
    if bad.any():
        raise AudioError(f"{what} hold {int(bad.sum())} non-finite values (first at frame "
                         f"{int(np.argmax(bad.reshape(len(x), -1).any(axis=1)))})")


def fix_scale(x: np.ndarray, what: str) -> tuple[np.ndarray, list[str]]:
    """Float audio at int16 scale -> divided by 32768, with a note; otherwise unchanged."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak <= INT16_SCALE_PEAK:
        return x, []
    note = (f"{what}: peak {peak:.0f} looks like int16 PCM stored as float; divided by 32768 "
            "(give float audio in [-1, 1])")
    log.warning("%s", note)
    return (x / 32768.0).astype(np.float32), [note]


def mono_16k(raw: np.ndarray, sample_rate_hz: int, what: str = "audio") -> tuple[np.ndarray, list[str]]:
    """Any accepted audio -> float32 mono 16 kHz, notes on what was repaired."""
    if isinstance(sample_rate_hz, bool) or int(sample_rate_hz) != sample_rate_hz or sample_rate_hz <= 0:
        raise AudioError(f"{what}: sample_rate_hz must be a positive integer, got {sample_rate_hz!r}")
    x, notes = frames_by_channels(raw, what)
    check_finite_nonempty(x, what)
    x, scale_notes = fix_scale(x, what)
    notes += scale_notes
    mono = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if int(sample_rate_hz) != PIPELINE_RATE_HZ:
        notes.append(f"{what}: resampled {int(sample_rate_hz)} -> {PIPELINE_RATE_HZ} Hz")
        mono = resample(mono, int(sample_rate_hz), PIPELINE_RATE_HZ)
    return np.ascontiguousarray(mono, dtype=np.float32), notes
