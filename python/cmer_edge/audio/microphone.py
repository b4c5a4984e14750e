"""Live capture: a PortAudio input stream (sounddevice) feeding fixed 16 kHz mono blocks through a
bounded drop-oldest queue, with device-error recovery.

    try:
        source = MicrophoneSource(device="USB", queue_blocks=160)
    except NoInputDeviceError as exc:       # carries exc.devices; the CLI prints it and exits 2
        ...
    with source:
        for block in source:                 # AudioBlock, 512 samples, start_s on the stream clock
            ...

Capture runs at the device's native rate and channel count (or the ones asked for); the callback
mixes to mono, resamples with a stateful filter (no block-edge artefacts) and cuts 512-sample
blocks, which go into the queue (see block_queue.py for the overrun policy).

Device errors: the stream finishing on its own, no callback for `stall_timeout_s`, or an error
in the callback is a device error. The consumer's iteration notices it (within ~0.1 s), counts
it, closes the stream and reopens the same device with exponential backoff (`RecoveryPolicy`).
Stream time lost while the device was down is skipped on the clock (`stats.lost_s`), so the
stream clock stays aligned with wall time since the first callback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from cmer_edge.audio.block_queue import DropOldestQueue
from cmer_edge.audio.blocks import DEFAULT_BLOCK_MS, AudioBlock
from cmer_edge.audio.devices import (AudioDeviceError, InputDevice, NoInputDeviceError, import_sounddevice,
                                     list_input_devices, reinit_portaudio, resolve_input_device)
from cmer_edge.audio.resampler import StreamConverter
from cmer_edge.audio.source_base import BlockSource

__all__ = ["MicrophoneSource", "RecoveryPolicy", "list_input_devices", "NoInputDeviceError",
           "AudioDeviceError", "InputDevice"]

log = logging.getLogger("cmer_edge")
DEFAULT_QUEUE_BLOCKS = 160  # 5.12 s of 32 ms blocks
_POLL_S = 0.1


@dataclass(frozen=True)
class RecoveryPolicy:
    """When a stream counts as failed, and how reopening backs off."""

    first_callback_timeout_s: float = 5.0  # PulseAudio may take ~2 s to deliver the first callback
    stall_timeout_s: float = 2.0  # no callback for this long after the first one = device error
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 2.0
    max_attempts: int | None = None  # consecutive failed reopen attempts before giving up; None = never
    reinit_portaudio: bool = True  # re-scan devices when reopening fails (re-plugged USB microphones)

    def __post_init__(self) -> None:
        for name in ("first_callback_timeout_s", "stall_timeout_s", "backoff_initial_s", "backoff_max_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RecoveryPolicy.{name} must be > 0, got {getattr(self, name)}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(f"RecoveryPolicy.backoff_max_s ({self.backoff_max_s}) < backoff_initial_s ({self.backoff_initial_s})")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"RecoveryPolicy.max_attempts must be >= 1 or None, got {self.max_attempts}")


class MicrophoneSource(BlockSource):
    """Blocks from a PortAudio input device. The device is resolved at construction (so a missing
    one raises NoInputDeviceError at once); the stream starts on `start()`, `with`, or iteration.
    Live: audio keeps arriving, so a slow consumer loses the oldest blocks (counted)."""

    live = True

    def __init__(self, device: int | str | None = None, *, sample_rate_hz: int | None = None,
                 channels: int | None = None, block_ms: float = DEFAULT_BLOCK_MS,
                 queue_blocks: int = DEFAULT_QUEUE_BLOCKS, max_seconds: float | None = None,
                 recovery: RecoveryPolicy = RecoveryPolicy()) -> None:
        super().__init__(block_ms=block_ms, max_seconds=max_seconds)
        self.device: InputDevice = resolve_input_device(device)
        self._requested = device
        if sample_rate_hz is not None and (int(sample_rate_hz) != sample_rate_hz or sample_rate_hz <= 0):
            raise ValueError(f"sample_rate_hz must be a positive integer or None, got {sample_rate_hz}")
        if channels is not None and not 1 <= channels <= self.device.max_input_channels:
            raise ValueError(f"channels must be in 1..{self.device.max_input_channels} for "
                             f"{self.device.name!r}, got {channels}")
        self._rate_hz = int(sample_rate_hz) if sample_rate_hz else None
        self._channels = int(channels) if channels else min(2, self.device.max_input_channels)
        self.recovery = recovery
        self._queue = DropOldestQueue(queue_blocks, self._counter, f"microphone {self.device.name!r}")
        self._lock = threading.Lock()  # stream open/close vs close() from another thread
        self._stream = None
        self._gen = 0  # stream generation: callbacks of a torn-down stream are ignored
        self._converter: StreamConverter | None = None
        self._next_index = 0
        self._t0: float | None = None  # monotonic time of the stream clock's 0 (first callback)
        self._last_callback = 0.0
        self._failure: str | None = None
        self._resync_pending = False
        self._iterating = False

    @property
    def input_rate_hz(self) -> int:
        return self._rate_hz or self.device.default_sample_rate_hz

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def max_queue_depth(self) -> int:
        return self._queue.max_depth

    def start(self) -> MicrophoneSource:
        """Open and start the stream (idempotent). PortAudio errors become AudioDeviceError."""
        sd = import_sounddevice()
        with self._lock:
            if self.closed:
                raise RuntimeError("MicrophoneSource is closed")
            if self._stream is not None:
                return self
            try:
                self._open_stream(sd)
            except sd.PortAudioError as exc:
                raise AudioDeviceError(f"cannot open input device {self.device.describe().strip()}: {exc}") from exc
        return self

    def __enter__(self):
        return self.start()

    def _open_stream(self, sd) -> None:
        self._gen += 1
        gen = self._gen
        self._converter = StreamConverter(self.input_rate_hz, self.block_samples, self._counter,
                                          f"microphone {self.device.name!r}")
        self._failure = None
        callback, finished = self._make_callbacks(gen, sd)
        stream = sd.InputStream(device=self.device.index, samplerate=self.input_rate_hz, channels=self._channels,
                                dtype="float32", blocksize=0, callback=callback, finished_callback=finished)
        self._last_callback = time.monotonic() + self.recovery.first_callback_timeout_s - self.recovery.stall_timeout_s
        try:
            stream.start()
        except Exception:
            stream.close(ignore_errors=True)
            raise
        self._stream = stream
        log.info("capturing from %s at %d Hz, %d ch", self.device.name, self.input_rate_hz, self._channels)

    def _make_callbacks(self, gen: int, sd):
        def callback(indata, frames, time_info, status) -> None:
            if gen != self._gen:
                return
            now = time.monotonic()
            self._last_callback = now
            first_sample_t = now - frames / self.input_rate_hz
            if self._t0 is None:
                self._t0 = first_sample_t
            elif self._resync_pending:
                self._resync_clock(first_sample_t)
            self._resync_pending = False
            if status.input_overflow:
                self._counter.add(input_overflows=1)
            try:
                blocks = self._converter.push(indata.copy())
            except Exception as exc:  # never let a bad chunk kill capture silently
                self._failure = f"error in the audio callback: {exc!r}"
                raise sd.CallbackAbort from exc
            self._enqueue(blocks)

        def finished() -> None:
            if gen == self._gen and not self.closed and self._failure is None:
                self._failure = "the input stream stopped unexpectedly"

        return callback, finished

    def _enqueue(self, blocks) -> None:
        for samples in blocks:
            self._queue.put(self._block(samples, self._next_index))
            self._next_index += 1

    def __iter__(self) -> Iterator[AudioBlock]:
        if self._iterating:
            raise RuntimeError("MicrophoneSource is already being iterated")
        self._iterating = True
        self.start()
        try:
            while not self.closed:
                block = self._queue.get(_POLL_S)
                if block is not None:
                    if self._past_limit(block.index):
                        return
                    self._counter.add(blocks_out=1)
                    yield block
                self._supervise()
        finally:
            self._iterating = False
            self.close()

    def _supervise(self) -> None:
        """Called from the consuming thread: detect a failed stream and reopen it."""
        if self.closed or self._stream is None:
            return
        failure = self._failure
        stalled_s = time.monotonic() - self._last_callback
        if failure is None and stalled_s > self.recovery.stall_timeout_s:
            failure = f"no audio from the device for {stalled_s:.1f} s"
        if failure is None:
            return
        self._counter.add(device_errors=1)
        log.warning("microphone %r: %s; reopening", self.device.name, failure)
        self._reopen()

    def _teardown(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
            self._gen += 1
        if stream is not None:
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            except Exception as exc:  # a dead device can fail to close; we are dropping it anyway
                log.debug("closing failed stream: %r", exc)

    def _reopen(self) -> None:
        sd = import_sounddevice()
        self._teardown()
        if self._converter is not None:
            self._enqueue(self._converter.flush())  # the audio captured before the failure
        delay, attempts = self.recovery.backoff_initial_s, 0
        while not self.closed:
            if self._closed.wait(delay):
                return
            attempts += 1
            try:
                with self._lock:
                    if self.closed:
                        return
                    if attempts > 1 and self.recovery.reinit_portaudio:
                        reinit_portaudio()
                        self.device = resolve_input_device(self.device.name)
                    self._resync_pending = True
                    self._open_stream(sd)
                self._counter.add(reopens=1)
                log.warning("microphone %r reopened after %d attempt(s)", self.device.name, attempts)
                return
            except (sd.PortAudioError, NoInputDeviceError) as exc:
                self._counter.add(device_errors=1)
                log.warning("microphone reopen attempt %d failed: %s", attempts, str(exc).splitlines()[0])
                if self.recovery.max_attempts is not None and attempts >= self.recovery.max_attempts:
                    raise AudioDeviceError(f"input device {self.device.name!r} failed and could not be "
                                           f"reopened after {attempts} attempts: {exc}") from exc
                delay = min(2 * delay, self.recovery.backoff_max_s)

    def _resync_clock(self, first_sample_t: float) -> None:
        """At the first callback after a reopen: skip the stream time that passed while no stream
        ran, so the clock follows wall time since the first callback (never moves backwards)."""
        wall_index = int(round((first_sample_t - self._t0) / self.block_s))
        if wall_index > self._next_index:
            self._counter.add(lost_s=(wall_index - self._next_index) * self.block_s)
            self._next_index = wall_index

    def close(self) -> None:
        super().close()
        self._queue.wake()
        self._teardown()
