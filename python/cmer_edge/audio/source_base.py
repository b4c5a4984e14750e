"""`BlockSource`: what every audio source shares (block size, stream clock, `max_seconds`, stats,
`close()`, context manager, and whether it is `live`). Its own module so that `sources` and
`microphone` both build on it without importing each other."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

from cmer_edge.audio.blocks import DEFAULT_BLOCK_MS, AudioBlock, SourceStats, StatsCounter, block_samples_for
from cmer_edge.audio.convert import PIPELINE_RATE_HZ


class BlockSource:
    """Base of all sources: block size, clock, `max_seconds`, stats, `close()`, context manager."""

    sample_rate_hz = PIPELINE_RATE_HZ
    # live: the audio arrives whether or not anyone reads it (a microphone, a file paced in real
    # time), so a slow consumer must drop (oldest first, counted). Not live (files, arrays): the
    # reader waits for the consumer (back-pressure) and nothing is ever dropped.
    live = False

    def __init__(self, *, block_ms: float = DEFAULT_BLOCK_MS, max_seconds: float | None = None) -> None:
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0 or None, got {max_seconds}")
        self.block_samples = block_samples_for(block_ms)
        self.block_ms = float(block_ms)
        self.max_seconds = max_seconds
        self._counter = StatsCounter()
        self._closed = threading.Event()

    @property
    def block_s(self) -> float:
        return self.block_samples / PIPELINE_RATE_HZ

    @property
    def stats(self) -> SourceStats:
        return self._counter.snapshot()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def _block(self, samples: np.ndarray, index: int) -> AudioBlock:
        return AudioBlock(samples, index, index * self.block_s)

    def _past_limit(self, index: int) -> bool:
        return self.max_seconds is not None and index * self.block_s >= self.max_seconds - 1e-9

    def __iter__(self) -> Iterator[AudioBlock]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop: iteration ends at the next block; safe to call twice and from another thread."""
        self._closed.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
