"""Numpy constants of the L3 front-end: windowed DFT kernels and mel filterbanks (torch-free).

Written from the definitions, not copied: HTK mel = 2595 log10(1 + f/700); Slaney mel = linear
below 1 kHz (3 mels per 200 Hz), logarithmic above (27 mels per factor 6.4); triangular filters
between adjacent centre frequencies, area-normalised (2 / bandwidth, "Slaney" norm), as Kapre's
`librosa.filters.mel(..., norm=1 | 'slaney')` builds them. Hann window periodic ("fftbins"), as
both Kapre versions use. tests/test_l3_frontend.py checks these against librosa and against the
kernels Kapre 0.1.4 saved inside the real EdgeL3 weights file.
"""

from __future__ import annotations

import numpy as np

_SLANEY_F_SP = 200.0 / 3  # Hz per mel below the break
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(freq_hz: np.ndarray | float, scale: str) -> np.ndarray:
    f = np.asarray(freq_hz, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    if scale != "slaney":
        raise ValueError(f"mel scale must be 'htk' or 'slaney', got {scale!r}")
    mels = f / _SLANEY_F_SP
    brk = _SLANEY_BREAK_HZ / _SLANEY_F_SP
    high = f >= _SLANEY_BREAK_HZ
    return np.where(high, brk + np.log(np.maximum(f, 1e-30) / _SLANEY_BREAK_HZ) / _SLANEY_LOGSTEP, mels)


def mel_to_hz(mels: np.ndarray | float, scale: str) -> np.ndarray:
    m = np.asarray(mels, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if scale != "slaney":
        raise ValueError(f"mel scale must be 'htk' or 'slaney', got {scale!r}")
    brk = _SLANEY_BREAK_HZ / _SLANEY_F_SP
    return np.where(m >= brk, _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOGSTEP * (m - brk)), _SLANEY_F_SP * m)


def mel_filterbank(sample_rate_hz: int, n_fft: int, n_mels: int, *, scale: str, fmin_hz: float = 0.0,
                   fmax_hz: float | None = None) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular filters, area-normalised; float64."""
    fmax = sample_rate_hz / 2.0 if fmax_hz is None else float(fmax_hz)
    if not 0.0 <= fmin_hz < fmax <= sample_rate_hz / 2.0:
        raise ValueError(f"mel band limits must satisfy 0 <= fmin < fmax <= Nyquist, got {fmin_hz}, {fmax}")
    bins_hz = np.linspace(0.0, sample_rate_hz / 2.0, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin_hz, scale), hz_to_mel(fmax, scale), n_mels + 2), scale)
    width = np.diff(edges_hz)  # [n_mels + 1]
    dist = edges_hz[:, None] - bins_hz[None, :]  # [n_mels + 2, bins]
    rising = -dist[:-2] / width[:-1, None]
    falling = dist[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]


def hann_periodic(length: int) -> np.ndarray:
    n = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)


def dft_kernels(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Windowed real-input DFT as two [n_fft // 2 + 1, n_fft] matrices: Re and Im of
    sum_t w[t] x[t] exp(-2 pi i k t / n_fft)."""
    k = np.arange(n_fft // 2 + 1, dtype=np.float64)[:, None]
    t = np.arange(n_fft, dtype=np.float64)[None, :]
    phase = 2.0 * np.pi * ((k * t) % n_fft) / n_fft  # reduce first: exact phases for large k*t
    w = hann_periodic(n_fft)[None, :]
    return np.cos(phase) * w, -np.sin(phase) * w
