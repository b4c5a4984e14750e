"""Streaming endpointer: (frame, speech probability) pairs in, `Utterance`s out.

State machine over fixed frames (32 ms at the defaults), all times on the stream clock
(`frame_index * frame_s`):
- silence -> speech when a frame's probability >= `threshold_on`; the utterance starts
  `pre_roll_ms` earlier (never before the previous utterance's end or a gap in the stream);
- in speech, a frame counts as speech while its probability >= `threshold_off` (hysteresis);
- after `min_silence_ms` of consecutive non-speech frames the utterance closes; it ends
  `post_roll_ms` after its last speech frame;
- an utterance whose speech (first to last speech frame) is shorter than `min_speech_ms` is
  discarded (a click, a cough);
- at `max_utterance_s` the utterance is cut at the least speech-like frame of its last
  `split_search_ms` (a pause between words if there is one), emitted with `truncated=True`, and
  the rest continues as the next utterance (`continued=True`);
- `flush()` at the end of the stream closes an open utterance.
Speculation: once `post_roll_ms` of silence follows the last speech frame, every frame the utterance
will hold if it closes now is in; `take_candidate()` then returns that utterance (same index, times
and audio as the one `push` will return at `min_silence_ms`, unless speech resumes first), so the
pipeline can start its features while the endpointer still waits for the rest of the silence.
Frames missing from the stream (dropped blocks) are treated as silent zero frames.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

from cmer_edge.audio.convert import PIPELINE_RATE_HZ
from cmer_edge.audio.utterance import Utterance

log = logging.getLogger("cmer_edge")


@dataclass(frozen=True)
class EndpointerConfig:
    """Defaults and their reasons: docs/live_audio.md."""

    threshold_on: float = 0.5
    threshold_off: float = 0.35
    min_speech_ms: float = 160.0  # was 250: lost 1 in 5 short words (docs/live_audio.md, measured)
    min_silence_ms: float = 500.0
    pre_roll_ms: float = 200.0
    post_roll_ms: float = 200.0
    max_utterance_s: float = 15.0
    split_search_ms: float = 1000.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold_off <= self.threshold_on < 1.0:
            raise ValueError(f"need 0 < threshold_off <= threshold_on < 1, got threshold_off={self.threshold_off}, "
                             f"threshold_on={self.threshold_on}")
        for name in ("min_speech_ms", "pre_roll_ms", "post_roll_ms", "split_search_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"EndpointerConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not self.min_silence_ms > 0:
            raise ValueError(f"EndpointerConfig.min_silence_ms must be > 0, got {self.min_silence_ms}")
        if self.post_roll_ms > self.min_silence_ms:
            raise ValueError(f"post_roll_ms ({self.post_roll_ms}) must be <= min_silence_ms ({self.min_silence_ms}): "
                             "the post-roll is taken from the silence that closes the utterance")
        max_ms = self.max_utterance_s * 1000.0
        if not max_ms > self.pre_roll_ms + self.split_search_ms:
            raise ValueError(f"max_utterance_s ({self.max_utterance_s}) must exceed pre_roll_ms + split_search_ms "
                             f"({self.pre_roll_ms} + {self.split_search_ms} ms)")


class Endpointer:
    """Feed every frame in order with `push`; collect the utterances it returns; `flush()` at the end."""

    def __init__(self, config: EndpointerConfig = EndpointerConfig(), frame_samples: int = 512,
                 sample_rate_hz: int = PIPELINE_RATE_HZ) -> None:
        if frame_samples < 1 or sample_rate_hz < 1:
            raise ValueError(f"frame_samples and sample_rate_hz must be >= 1, got {frame_samples}, {sample_rate_hz}")
        self.config = config
        self.frame_samples = frame_samples
        self.sample_rate_hz = sample_rate_hz
        self.frame_s = frame_samples / sample_rate_hz

        def frames(ms: float) -> int:
            return int(round(ms / 1000.0 / self.frame_s))

        self._pre_frames = frames(config.pre_roll_ms)
        self._post_frames = frames(config.post_roll_ms)
        self._min_speech_frames = max(1, frames(config.min_speech_ms))
        self._min_silence_frames = max(1, frames(config.min_silence_ms))
        self._max_frames = int(config.max_utterance_s / self.frame_s)
        self._split_frames = max(1, frames(config.split_search_ms))
        self._zeros = np.zeros(frame_samples, np.float32)
        self._pre: deque[tuple[np.ndarray, float, bool]] = deque(maxlen=max(self._pre_frames, 1))
        self._frames: list[tuple[np.ndarray, float, bool]] = []  # (samples, prob, missing) of the open utterance
        self._in_speech = False
        self._next_frame = 0
        self._count = 0
        self.discarded = 0  # candidate utterances dropped by min_speech_ms
        self._candidate: Utterance | None = None

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def push(self, samples: np.ndarray, probability: float, frame_index: int | None = None) -> list[Utterance]:
        """One frame and its speech probability. `frame_index` (default: the next one) may jump
        ahead over frames lost upstream; it may not go back."""
        if frame_index is None:
            frame_index = self._next_frame
        if frame_index < self._next_frame:
            raise ValueError(f"frame_index {frame_index} goes back (expected >= {self._next_frame})")
        samples = np.asarray(samples, np.float32)
        if samples.shape != (self.frame_samples,):
            raise ValueError(f"frame must have shape ({self.frame_samples},), got {samples.shape}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"speech probability must be in [0, 1], got {probability}")
        out = self._gap(frame_index - self._next_frame) if frame_index > self._next_frame else []
        out += self._step(frame_index, samples, float(probability), False)
        self._next_frame = frame_index + 1
        return out

    def take_candidate(self) -> Utterance | None:
        """The utterance that closes if no speech comes back (see the module doc), once per
        pause; None if there is no new one since the last call."""
        candidate, self._candidate = self._candidate, None
        return candidate

    def flush(self) -> list[Utterance]:
        """End of stream: close the open utterance (if any) without waiting for silence."""
        out = self._close(self._next_frame - 1) if self._in_speech else []
        self._pre.clear()
        return out

    def _gap(self, n: int) -> list[Utterance]:
        out: list[Utterance] = []
        i = 0
        while self._in_speech and i < n:  # bounded: closes within min_silence frames
            out += self._step(self._next_frame + i, self._zeros, 0.0, True)
            i += 1
        if i < n:
            self._pre.clear()  # no pre-roll across a gap
        return out

    def _step(self, i: int, samples: np.ndarray, p: float, missing: bool) -> list[Utterance]:
        cfg = self.config
        if not self._in_speech:
            if p < cfg.threshold_on:
                if self._pre_frames:
                    self._pre.append((samples, p, missing))
                return []
            self._in_speech = True
            self._frames = list(self._pre) + [(samples, p, missing)]
            self._pre.clear()
            self._start = i - len(self._frames) + 1
            self._first_speech = self._last_speech = i
            self._silence_run = 0
            self._continued = False
            return []
        self._frames.append((samples, p, missing))
        if p >= cfg.threshold_off:
            self._last_speech = i
            self._silence_run = 0
        else:
            self._silence_run += 1
        if self._silence_run >= self._min_silence_frames:
            return self._close(i)
        if self._silence_run == max(self._post_frames, 1) and self._long_enough():
            self._candidate = self._make(self._closing_frames(i), self._start, False, self._continued)
        if len(self._frames) >= self._max_frames:
            return [self._split()]
        return []

    def _make(self, frames, start: int, truncated: bool, continued: bool) -> Utterance:
        audio = np.concatenate([f[0] for f in frames])
        missing = sum(f[2] for f in frames) * self.frame_s
        return Utterance(audio, start * self.frame_s, (start + len(frames)) * self.frame_s, self._count,
                         truncated=truncated, continued=continued, missing_s=missing, sample_rate_hz=self.sample_rate_hz)

    def _emit(self, frames, start: int, truncated: bool, continued: bool) -> Utterance:
        utt = self._make(frames, start, truncated, continued)
        self._count += 1
        self._candidate = None  # closed: a pending candidate is this utterance or superseded
        return utt

    def _closing_frames(self, last: int) -> list:
        """The open utterance's frames if it closes having seen frames up to `last`."""
        end = min(self._last_speech + self._post_frames, last)
        return self._frames[:end - self._start + 1]

    def _long_enough(self) -> bool:
        """Whether the open utterance has speech enough to be emitted (else it is a click, a cough)."""
        if self._last_speech < self._start:  # a continuation that held no speech
            return False
        speech_frames = self._last_speech - max(self._first_speech, self._start) + 1
        return speech_frames >= self._min_speech_frames or self._continued

    def _close(self, last: int) -> list[Utterance]:
        """Close the open utterance, having seen frames up to `last`."""
        self._in_speech = False
        frames = self._closing_frames(last)
        rest = self._frames[len(frames):]
        self._frames = []
        if self._pre_frames:
            self._pre.extend(rest)
        if not self._long_enough():
            if self._last_speech >= self._start:
                self.discarded += 1
                log.debug("endpointer: dropped %.0f ms of speech at %.2f s (< min_speech_ms)",
                          (self._last_speech - self._first_speech + 1) * self.frame_s * 1000,
                          self._first_speech * self.frame_s)
            return []
        return [self._emit(frames, self._start, False, self._continued)]

    def _split(self) -> Utterance:
        """Max length reached: cut at the least speech-like frame near the end, keep the rest open."""
        probs = np.array([f[1] for f in self._frames[-self._split_frames:]])
        cut = len(self._frames) - self._split_frames + int(np.argmin(probs))  # last frame of the first part
        first, rest = self._frames[:cut + 1], self._frames[cut + 1:]
        utt = self._emit(first, self._start, True, self._continued)
        self._start += cut + 1
        self._frames = rest
        self._first_speech = max(self._first_speech, self._start)
        self._continued = True
        log.info("endpointer: utterance %d cut at max_utterance_s=%.1f s (%.2f-%.2f s); speech continues",
                 utt.index, self.config.max_utterance_s, utt.start_s, utt.end_s)
        return utt
