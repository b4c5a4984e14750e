"""VAD + endpointer over a block source: blocks in, utterances out.

    segmenter = Segmenter()                       # Silero VAD, default EndpointerConfig
    with FileSource("talk.wav") as source:
        for utt in segmenter.run(source):         # Utterance(audio, start_s, end_s, index, truncated)
            ...

Blocks must be a whole number of VAD frames (512 samples at 16 kHz: the default 32 ms block is
one frame). A jump in block indices (blocks dropped upstream) resets the VAD's recurrent state
and reaches the endpointer as missing frames, so utterance times stay on the stream clock.

`speech_span(audio)` applies the same segmenter to one whole recording (a corpus clip) and returns
where the stretch of it lies that the live runtime would hand on, so that clips are featurised, trained on and
scored as `listen` featurises a stream (docs/results.md: the corpora's silence, stop 32).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import numpy as np

from cmer_edge.audio.blocks import AudioBlock
from cmer_edge.audio.convert import PIPELINE_RATE_HZ, AudioError, load_audio
from cmer_edge.audio.endpointer import Endpointer, EndpointerConfig
from cmer_edge.audio.utterance import Utterance
from cmer_edge.audio.vad import SileroVad, Vad


class Segmenter:
    def __init__(self, config: EndpointerConfig = EndpointerConfig(), vad: Vad | None = None) -> None:
        self.vad = vad if vad is not None else SileroVad()
        if self.vad.sample_rate_hz != PIPELINE_RATE_HZ:
            raise ValueError(f"VAD runs at {self.vad.sample_rate_hz} Hz, the pipeline at {PIPELINE_RATE_HZ} Hz")
        self.endpointer = Endpointer(config, self.vad.frame_samples, PIPELINE_RATE_HZ)
        self._frames_per_block: int | None = None
        self._next_block: int | None = None
        self.frames_seen = 0
        self.vad_seconds = 0.0  # time spent in the VAD (cost accounting)

    @property
    def frame_samples(self) -> int:
        return self.vad.frame_samples

    def feed(self, block: AudioBlock) -> list[Utterance]:
        """One block (in stream order); returns the utterances it closed."""
        n = len(block.samples)
        if block.sample_rate_hz != PIPELINE_RATE_HZ:
            raise AudioError(f"block at {block.sample_rate_hz} Hz; the segmenter needs {PIPELINE_RATE_HZ} Hz")
        if n == 0 or n % self.frame_samples:
            raise AudioError(f"block of {n} samples is not a whole number of {self.frame_samples}-sample VAD frames")
        per_block = n // self.frame_samples
        if self._frames_per_block is None:
            self._frames_per_block = per_block
        elif per_block != self._frames_per_block:
            raise AudioError(f"block size changed from {self._frames_per_block * self.frame_samples} to {n} samples")
        if self._next_block is not None and block.index < self._next_block:
            raise ValueError(f"block index {block.index} goes back (expected >= {self._next_block})")
        if self._next_block is not None and block.index > self._next_block:
            self.vad.reset()  # the recurrent state belongs to audio before the gap
        self._next_block = block.index + 1
        out: list[Utterance] = []
        for j in range(per_block):
            frame = block.samples[j * self.frame_samples:(j + 1) * self.frame_samples]
            t = time.perf_counter()
            p = self.vad.probability(frame)
            self.vad_seconds += time.perf_counter() - t
            out += self.endpointer.push(frame, p, block.index * per_block + j)
        self.frames_seen += per_block
        return out

    def take_candidate(self) -> Utterance | None:
        """The utterance that will close if the current pause lasts (Endpointer.take_candidate)."""
        return self.endpointer.take_candidate()

    def flush(self) -> list[Utterance]:
        """End of stream: the open utterance, if any."""
        return self.endpointer.flush()

    def run(self, blocks: Iterable[AudioBlock]) -> Iterator[Utterance]:
        """All utterances of a block stream, flushing at its end."""
        for block in blocks:
            yield from self.feed(block)
        yield from self.flush()


def speech_span(audio: np.ndarray, config: EndpointerConfig = EndpointerConfig(),
                vad: Vad | None = None) -> tuple[int, int, bool]:
    """(start, end, found): the samples [start, end) of one whole recording that the live segmenter
    hands on, and whether it found speech.

    `audio`: float32 mono 16 kHz. The span runs from the start of the first utterance to the end of
    the last one (pre- and post-roll included; pauses between utterances kept, so one clip stays one
    utterance). Where the segmenter finds no speech: (0, len(audio), False), the whole recording, for
    the caller to count. `vad` (reset here) may be passed in to reuse one model over many clips."""
    x = np.asarray(audio, np.float32)
    if vad is not None:
        vad.reset()
    segmenter = Segmenter(config, vad)
    frame = segmenter.frame_samples
    padded = np.pad(x, (0, -len(x) % frame))
    utterances = []
    for b in range(len(padded) // frame):
        utterances += segmenter.feed(AudioBlock(padded[b * frame:(b + 1) * frame], b, b * frame / PIPELINE_RATE_HZ))
    utterances += segmenter.flush()
    if not utterances:
        return 0, len(x), False
    start = int(round(utterances[0].start_s * PIPELINE_RATE_HZ))
    return start, min(len(x), int(round(utterances[-1].end_s * PIPELINE_RATE_HZ))), True


# What a corpus clip is cut to before its features are computed (feature stores record it): the span
# `clip_speech` returns, as `listen` hears the clip.
CLIP_CUT = "speech_span"


def clip_speech(path, vad: Vad | None = None) -> tuple[np.ndarray, bool]:
    """(the speech span of the audio file at `path`, whether speech was found): a corpus clip as
    `listen` would hear it (`speech_span`); ValueError (AudioError) for unreadable audio."""
    audio = load_audio(path)
    start, end, found = speech_span(audio, vad=vad)
    return audio[start:end], found
