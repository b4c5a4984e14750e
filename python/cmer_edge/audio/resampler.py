"""Streaming format conversion: any rate and channel count -> fixed float32 mono 16 kHz blocks.

`StreamResampler` is a stateful polyphase FIR resampler. It uses the same filter as
`scipy.signal.resample_poly` (Kaiser-windowed sinc, beta 5, 10 zero crossings per side of the
slower rate) and the same zero-phase alignment, so feeding a signal in chunks of any sizes and
calling `flush()` gives the one-shot `resample_poly` result (to float rounding): no edge effects at
chunk boundaries. Output sample k needs input up to index (k*down + half_len) // up, so the
look-ahead delay is about 10 input-rate periods of the slower rate (< 1 ms for 44.1/48 -> 16 kHz).
"""

from __future__ import annotations

from math import ceil, gcd

import numpy as np

from cmer_edge.audio.blocks import Blocker, InputMonitor, StatsCounter, as_frames_by_channels
from cmer_edge.audio.convert import PIPELINE_RATE_HZ, AudioError

_OUT_CHUNK = 2048  # output samples computed per vectorised step


class StreamResampler:
    """Resample a mono stream chunk by chunk; `push(x)` returns the samples that are complete."""

    def __init__(self, from_hz: int, to_hz: int = PIPELINE_RATE_HZ) -> None:
        if int(from_hz) != from_hz or int(to_hz) != to_hz or from_hz <= 0 or to_hz <= 0:
            raise AudioError(f"sample rates must be positive integers, got {from_hz} -> {to_hz}")
        g = gcd(int(from_hz), int(to_hz))
        self.from_hz, self.to_hz = int(from_hz), int(to_hz)
        self.up, self.down = self.to_hz // g, self.from_hz // g
        self._passthrough = self.up == self.down == 1
        self._n_in = 0  # input samples received
        self._k = 0  # next output sample to produce
        self._flushed = False
        if self._passthrough:
            return
        from scipy.signal import firwin

        max_rate = max(self.up, self.down)
        self._half_len = 10 * max_rate
        h = firwin(2 * self._half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * self.up
        self._taps = ceil(len(h) / self.up)
        h = np.concatenate([h, np.zeros(self._taps * self.up - len(h))])
        # phase p, tap t -> h[p + up*t]; stored reversed in t so a gather over ascending input works
        self._phases = h.reshape(self._taps, self.up).T[:, ::-1].copy()
        self._buf = np.zeros(self._taps - 1, np.float64)  # history: zeros before the stream starts
        self._buf_start = -(self._taps - 1)  # absolute input index of _buf[0]

    def _last_input_needed(self, k: np.ndarray | int):
        return (k * self.down + self._half_len) // self.up

    def push(self, x: np.ndarray) -> np.ndarray:
        """Feed mono samples; returns float32 output samples now computable (possibly none)."""
        if self._flushed:
            raise RuntimeError("StreamResampler.push after flush(); create a new resampler")
        x = np.asarray(x, np.float32).ravel()
        self._n_in += len(x)
        if self._passthrough:
            self._k += len(x)
            return x.copy()
        self._buf = np.concatenate([self._buf, x.astype(np.float64)])
        # largest k whose newest needed input index is < n_in
        k_end = (self._n_in * self.up - 1 - self._half_len) // self.down + 1
        return self._produce(max(k_end, self._k))

    def flush(self) -> np.ndarray:
        """The remaining output, treating the input after the end as zeros (as resample_poly does)."""
        if self._flushed:
            return np.zeros(0, np.float32)
        self._flushed = True
        if self._passthrough:
            return np.zeros(0, np.float32)
        k_total = -(-self._n_in * self.up // self.down)
        if k_total <= self._k:
            return np.zeros(0, np.float32)
        need = int(self._last_input_needed(k_total - 1)) + 1 - (self._buf_start + len(self._buf))
        if need > 0:
            self._buf = np.concatenate([self._buf, np.zeros(need)])
        return self._produce(k_total)

    def _produce(self, k_end: int) -> np.ndarray:
        if k_end <= self._k:
            return np.zeros(0, np.float32)
        y = np.empty(k_end - self._k, np.float32)
        offsets = np.arange(-(self._taps - 1), 1)[None, :]
        for k0 in range(self._k, k_end, _OUT_CHUNK):  # bounded temporaries: [chunk, taps] per step
            ks = np.arange(k0, min(k0 + _OUT_CHUNK, k_end), dtype=np.int64)
            c = ks * self.down + self._half_len
            newest = c // self.up - self._buf_start  # position in _buf of each output's newest input
            y[k0 - self._k:k0 - self._k + len(ks)] = np.einsum(
                "kt,kt->k", self._phases[c % self.up], self._buf[newest[:, None] + offsets])
        self._k = k_end
        keep_from = int(self._last_input_needed(self._k)) - (self._taps - 1) - self._buf_start
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._buf_start += keep_from
        return y


class StreamConverter:
    """Raw chunks [frames] or [frames, channels] at `from_hz` -> fixed-size float32 mono blocks at
    16 kHz: checks (clipping, non-finite), channel mean, streaming resampling, blocking."""

    def __init__(self, from_hz: int, block_samples: int, counter: StatsCounter, what: str) -> None:
        self.from_hz = int(from_hz)
        self._resampler = StreamResampler(from_hz, PIPELINE_RATE_HZ)
        self._blocker = Blocker(block_samples)
        self._monitor = InputMonitor(counter, what)
        self._what = what

    def push(self, raw: np.ndarray) -> list[np.ndarray]:
        x = self._monitor.check(as_frames_by_channels(raw, self._what))
        mono = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)
        return self._blocker.push(self._resampler.push(mono))

    def flush(self) -> list[np.ndarray]:
        """End of stream: the resampler tail and the last block, zero-padded."""
        out = self._blocker.push(self._resampler.flush())
        last = self._blocker.flush()
        return out + ([last] if last is not None else [])
