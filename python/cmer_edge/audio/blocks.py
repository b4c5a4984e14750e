"""The unit every audio source yields: fixed-size float32 mono 16 kHz blocks on the stream clock.

Stream clock: seconds since the stream started, `start_s = index * block_samples / 16000`. Block
indices count every block the source *produced*, including blocks dropped by the overrun policy
and blocks skipped while a device was being reopened, so the clock never drifts: a consumer that
sees index 7 after index 4 knows 3 blocks (96 ms at 512 samples) are missing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, fields

import numpy as np

from cmer_edge.audio.convert import PIPELINE_RATE_HZ, AudioError

log = logging.getLogger("cmer_edge")

DEFAULT_BLOCK_MS = 32.0  # 512 samples at 16 kHz: exactly one Silero VAD frame
CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped (full scale after int16 -> float)


def block_samples_for(block_ms: float, sample_rate_hz: int = PIPELINE_RATE_HZ) -> int:
    """Samples per block for `block_ms`; refuses sizes that are not a whole number of samples."""
    n = block_ms * sample_rate_hz / 1000.0
    if not block_ms > 0 or abs(n - round(n)) > 1e-6:
        raise ValueError(f"block_ms must give a positive whole number of samples at {sample_rate_hz} Hz, got {block_ms}")
    return int(round(n))


@dataclass(frozen=True, eq=False)
class AudioBlock:
    """`samples`: float32 [block_samples] mono at `sample_rate_hz`; `index`: block number on the stream clock."""

    samples: np.ndarray
    index: int
    start_s: float
    sample_rate_hz: int = PIPELINE_RATE_HZ

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class SourceStats:
    """Counters of a source, as a snapshot. Rates and fractions are over the whole stream so far."""

    blocks_out: int = 0  # blocks handed to the consumer
    dropped_blocks: int = 0  # blocks dropped by the overrun policy (queue full: oldest dropped)
    overruns: int = 0  # overrun episodes: runs of drops without the consumer catching up in between
    input_overflows: int = 0  # callbacks where PortAudio reported that the device itself lost input
    device_errors: int = 0  # stream failures seen (finished unexpectedly, stalled, failed to open)
    reopens: int = 0  # successful reopens after a device error
    lost_s: float = 0.0  # stream time skipped while the device was down (blocks never produced)
    input_samples: int = 0  # raw samples (frames) read from the device/file/array
    clipped_samples: int = 0  # raw samples at or beyond full scale (|x| >= 0.999, any channel)
    nonfinite_samples: int = 0  # raw NaN/inf samples, replaced by 0

    @property
    def clipped_fraction(self) -> float:
        return self.clipped_samples / self.input_samples if self.input_samples else 0.0


class StatsCounter:
    """Thread-safe mutable counters behind `SourceStats` (written by capture threads, read anywhere)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = {f.name: f.default for f in fields(SourceStats)}

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, delta in deltas.items():
                self._values[name] += delta

    def snapshot(self) -> SourceStats:
        with self._lock:
            return SourceStats(**self._values)


class InputMonitor:
    """Counts clipped and non-finite raw input, replaces non-finite samples by 0, warns at most every
    `warn_every_s` seconds. Clipped audio is kept (the caller reports the fraction, never refuses)."""

    def __init__(self, counter: StatsCounter, what: str, warn_every_s: float = 10.0) -> None:
        self._counter = counter
        self._what = what
        self._warn_every_s = warn_every_s
        self._last_warn = {"clip": -np.inf, "nan": -np.inf}

    def check(self, raw: np.ndarray) -> np.ndarray:
        """`raw` [frames, channels] float32 -> the same with non-finite samples zeroed."""
        clipped = int(np.count_nonzero(np.abs(raw) >= CLIP_LEVEL, axis=0).max()) if raw.size else 0
        finite = np.isfinite(raw)
        nonfinite = int(raw.size - np.count_nonzero(finite))
        if nonfinite:
            raw = np.where(finite, raw, np.float32(0.0))
        self._counter.add(input_samples=raw.shape[0], clipped_samples=clipped, nonfinite_samples=nonfinite)
        if clipped and raw.shape[0] and clipped / raw.shape[0] > 0.01:
            self._warn("clip", f"{self._what}: {clipped}/{raw.shape[0]} samples clipped at full scale "
                               "(emotion features are distorted; lower the input gain)")
        if nonfinite:
            self._warn("nan", f"{self._what}: {nonfinite} non-finite samples replaced by 0")
        return raw

    def _warn(self, key: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warn[key] >= self._warn_every_s:
            self._last_warn[key] = now
            log.warning("%s", message)


class Blocker:
    """Cuts a stream of arbitrary-length 1-D chunks into fixed-size blocks."""

    def __init__(self, block_samples: int) -> None:
        if block_samples < 1:
            raise ValueError(f"block_samples must be >= 1, got {block_samples}")
        self.block_samples = block_samples
        self._pending = np.zeros(0, np.float32)

    def push(self, x: np.ndarray) -> list[np.ndarray]:
        buf = np.concatenate([self._pending, np.asarray(x, np.float32)]) if len(self._pending) else np.asarray(x, np.float32)
        n_full = len(buf) // self.block_samples
        cut = n_full * self.block_samples
        out = [buf[i:i + self.block_samples].copy() for i in range(0, cut, self.block_samples)]
        self._pending = buf[cut:].copy()
        return out

    def flush(self) -> np.ndarray | None:
        """The last partial block zero-padded to full size, or None when nothing is pending."""
        if not len(self._pending):
            return None
        out = np.zeros(self.block_samples, np.float32)
        out[: len(self._pending)] = self._pending
        self._pending = np.zeros(0, np.float32)
        return out


def as_frames_by_channels(raw: np.ndarray, what: str) -> np.ndarray:
    """[n] or [n, channels] float -> float32 [n, channels]; anything else is an AudioError."""
    x = np.asarray(raw)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise AudioError(f"{what} must be [samples] or [samples, channels], got shape {np.asarray(raw).shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise AudioError(f"{what} must be floating point in [-1, 1], got dtype {x.dtype}")
    return x.astype(np.float32, copy=False)
