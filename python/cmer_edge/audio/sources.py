"""Audio sources: iterables of `AudioBlock` (float32 mono 16 kHz, fixed size) and context managers.

    with FileSource("talk.wav", realtime=True) as source:
        for block in source:            # block.samples [512], block.start_s on the stream clock
            ...
    print(source.stats)                 # SourceStats: dropped blocks, clipping, device errors...

`ArraySource` and `FileSource` stream their input through the same converter as the microphone
(channel mean, stateful resampling, blocking), so all three yield identical blocks for the same
sound. `realtime=True` paces blocks at the rate a microphone would deliver them (a block is
yielded when its last sample would have arrived); `realtime=False` runs as fast as the consumer
reads. `max_seconds` stops after that much stream time. `MicrophoneSource` lives in
`cmer_edge.audio.microphone` and is imported here (sounddevice itself is imported only when a
microphone is opened). `source.live` is True for a microphone and for `realtime=True`: only live
sources may drop audio when the consumer is slow; the others make it wait (back-pressure).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from cmer_edge.audio.blocks import DEFAULT_BLOCK_MS, AudioBlock
from cmer_edge.audio.checks import check_finite_nonempty, fix_scale, frames_by_channels
from cmer_edge.audio.convert import AudioError
from cmer_edge.audio.microphone import (AudioDeviceError, InputDevice, MicrophoneSource, NoInputDeviceError,
                                        RecoveryPolicy, list_input_devices)
from cmer_edge.audio.resampler import StreamConverter
from cmer_edge.audio.source_base import BlockSource

__all__ = ["BlockSource", "ArraySource", "FileSource", "MicrophoneSource", "NoInputDeviceError", "AudioDeviceError",
           "InputDevice", "RecoveryPolicy", "list_input_devices"]

log = logging.getLogger("cmer_edge")


class _ChunkedSource(BlockSource):
    """A source fed by a generator of raw chunks ([frames, channels] at `_input_rate_hz`)."""

    _input_rate_hz: int
    _what: str

    def __init__(self, *, realtime: bool, block_ms: float, max_seconds: float | None) -> None:
        super().__init__(block_ms=block_ms, max_seconds=max_seconds)
        self.realtime = bool(realtime)
        self._started = False

    @property
    def live(self) -> bool:
        """Paced like a microphone: it stands for one, so a slow consumer drops (see BlockSource)."""
        return self.realtime

    def _chunks(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[AudioBlock]:
        if self._started:
            raise RuntimeError(f"{type(self).__name__} can be iterated once; create a new source")
        self._started = True
        converter = StreamConverter(self._input_rate_hz, self.block_samples, self._counter, self._what)
        t0 = time.monotonic()
        index = 0

        def blocks():
            for chunk in self._chunks():
                yield from converter.push(chunk)
                if self.closed:
                    return
            yield from converter.flush()

        try:
            for samples in blocks():
                if self.closed or self._past_limit(index):
                    break
                if self.realtime:
                    self._closed.wait(max(0.0, t0 + (index + 1) * self.block_s - time.monotonic()))
                    if self.closed:
                        break
                self._counter.add(blocks_out=1)
                yield self._block(samples, index)
                index += 1
        finally:
            self._release()

    def _release(self) -> None:
        """Free what the source holds (files); called when iteration ends."""


class ArraySource(_ChunkedSource):
    """Blocks from an in-memory array [n] or [n, channels] at `sample_rate_hz`.

    The array is validated up front (cmer_edge.audio.checks): empty or non-finite audio is an
    AudioError; a channels-first `[channels, n]` array is transposed and float audio at int16 scale
    divided by 32768, each with a warning (`notes`); clipping is counted (see
    `stats.clipped_fraction`) and warned about, never refused."""

    def __init__(self, samples: np.ndarray, sample_rate_hz: int, *, realtime: bool = False,
                 block_ms: float = DEFAULT_BLOCK_MS, max_seconds: float | None = None,
                 chunk_frames: int = 4096) -> None:
        super().__init__(realtime=realtime, block_ms=block_ms, max_seconds=max_seconds)
        x, self.notes = frames_by_channels(samples, "ArraySource samples")
        check_finite_nonempty(x, "ArraySource samples")
        x, scale_notes = fix_scale(x, "ArraySource samples")
        self.notes += scale_notes
        if isinstance(sample_rate_hz, bool) or int(sample_rate_hz) != sample_rate_hz or sample_rate_hz <= 0:
            raise AudioError(f"sample_rate_hz must be a positive integer, got {sample_rate_hz}")
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        self._samples = x
        self._input_rate_hz = int(sample_rate_hz)
        self._chunk_frames = int(chunk_frames)
        self._what = f"array ({sample_rate_hz} Hz, {x.shape[1]} ch)"

    def _chunks(self) -> Iterator[np.ndarray]:
        for i in range(0, self._samples.shape[0], self._chunk_frames):
            yield self._samples[i:i + self._chunk_frames]


class FileSource(_ChunkedSource):
    """Blocks streamed from any file libsndfile reads (wav, flac, ogg...), never loaded whole, so
    hours of audio run in bounded memory. Unreadable or empty files are an AudioError at
    construction; NaN samples in float files are zeroed and counted; clipping is counted."""

    def __init__(self, path: str | Path, *, realtime: bool = False, block_ms: float = DEFAULT_BLOCK_MS,
                 max_seconds: float | None = None, chunk_frames: int = 16384) -> None:
        super().__init__(realtime=realtime, block_ms=block_ms, max_seconds=max_seconds)
        self.path = Path(path)
        if not self.path.is_file():
            raise AudioError(f"audio file not found: {self.path}")
        try:
            self._file = sf.SoundFile(str(self.path))
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise AudioError(f"cannot read audio file {self.path}: {exc}") from exc
        if self._file.frames == 0:
            self._file.close()
            raise AudioError(f"audio file {self.path} is empty (0 samples)")
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        self._input_rate_hz = int(self._file.samplerate)
        self._frames = int(self._file.frames)
        self._chunk_frames = int(chunk_frames)
        self._what = f"file {self.path.name} ({self._input_rate_hz} Hz, {self._file.channels} ch)"

    @property
    def duration_s(self) -> float:
        return self._frames / self._input_rate_hz

    def _chunks(self) -> Iterator[np.ndarray]:
        while True:
            try:
                chunk = self._file.read(self._chunk_frames, dtype="float32", always_2d=True)
            except (RuntimeError, sf.LibsndfileError) as exc:
                raise AudioError(f"error reading {self.path} mid-stream: {exc}") from exc
            if chunk.shape[0] == 0:
                return
            yield chunk

    def _release(self) -> None:
        self._file.close()

    def close(self) -> None:
        super().close()
        if not self._started:
            self._file.close()
