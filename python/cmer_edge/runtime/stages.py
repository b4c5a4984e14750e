"""The per-utterance stages of the live pipeline, each timed and each allowed to fail alone.

    utterance ─┬─ ASR (or external text) ─► text encoder ─┐   (text worker)
               └─ audio features ─────────────────────────┴─► head session ─► probs   (audio worker)

`start(utt)` hands the utterance to two single-thread workers, one per modality, and returns a
`StageJob` at once; both workers release the GIL (CTranslate2, openSMILE, ONNX Runtime), so the
modalities run side by side, and the next utterance's ASR can run while this one is scored. Each
worker takes utterances in the order they were started. A failed or empty stage drops its modality
for this utterance and is noted on the event; the head then runs on what is left.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from cmer_edge.audio.utterance import Utterance

log = logging.getLogger("cmer_edge")


@dataclass
class StageResult:
    x_a: np.ndarray | None = None
    x_t: np.ndarray | None = None
    text: str | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def merge(self, other: StageResult) -> StageResult:
        """This result with `other`'s outputs, latencies and notes added (one modality each)."""
        self.x_a = other.x_a if other.x_a is not None else self.x_a
        self.x_t = other.x_t if other.x_t is not None else self.x_t
        self.text = other.text if other.text is not None else self.text
        self.latency_ms.update(other.latency_ms)
        self.notes += other.notes
        return self


def timed(result: StageResult, stage: str, fn, *args):
    """fn(*args), its time in result.latency_ms[stage]; an exception becomes a note and None."""
    started = time.perf_counter()
    try:
        return fn(*args)
    except Exception as exc:  # a stage failure must not kill the loop: note it, drop the modality
        log.warning("%s failed: %s", stage, exc)
        result.notes.append(f"{stage} failed: {exc}")
        return None
    finally:
        result.latency_ms[stage] = round(1000 * (time.perf_counter() - started), 2)


def _done(result: StageResult) -> Future:
    future: Future = Future()
    future.set_result(result)
    return future


@dataclass
class StageJob:
    """One utterance's features in flight: `audio()` and `text()` wait for their modality."""

    utt: Utterance
    audio_future: Future
    text_future: Future | None = None  # None: no text stage (yet) for this utterance

    def audio(self) -> StageResult:
        return self.audio_future.result()

    def text(self) -> StageResult:
        return StageResult() if self.text_future is None else self.text_future.result()

    def cancel(self) -> None:
        """Drop what has not started (a dropped utterance, a candidate whose speech went on)."""
        for future in (self.audio_future, self.text_future):
            if future is not None:
                future.cancel()


class Stages:
    """Holds the loaded components; `start(utt, given_text)` -> StageJob."""

    def __init__(self, *, audio_extractor, text_encoder, transcriber, external_text, text_timeout_s: float) -> None:
        self.audio_extractor = audio_extractor
        self.text_encoder = text_encoder
        self.transcriber = transcriber
        self.external_text = external_text
        self.text_timeout_s = text_timeout_s
        self._audio_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cmer_edge-audio")
        self._text_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cmer_edge-text")

    def close(self) -> None:
        for worker in (self._audio_worker, self._text_worker):
            worker.shutdown(wait=True, cancel_futures=True)
        if hasattr(self.audio_extractor, "close"):
            self.audio_extractor.close()

    def start(self, utt: Utterance, given_text: str | None = None, *, text: bool = True) -> StageJob:
        """Both modalities of `utt` queued on their workers. text=False leaves the text stage out
        (a speculative start: external text is only waited for once the utterance has closed)."""
        audio = (self._audio_worker.submit(self._audio, utt) if self.audio_extractor is not None
                 else _done(StageResult()))
        job = StageJob(utt, audio)
        if text:
            self.start_text(job, given_text)
        return job

    def start_text(self, job: StageJob, given_text: str | None = None) -> None:
        """Queue the text stage of `job` (no-op without a text encoder)."""
        if self.text_encoder is not None:
            job.text_future = self._text_worker.submit(self._text, job.utt, given_text)

    @property
    def speculates_text(self) -> bool:
        """Whether the text stage may start before the utterance closes: on-device ASR only (an
        external transcript is waited for from the moment the utterance ends)."""
        return self.text_encoder is not None and self.transcriber is not None and self.external_text is None

    def _audio(self, utt: Utterance) -> StageResult:
        result = StageResult()
        result.x_a = timed(result, "audio_features", self.audio_extractor, utt.audio)
        return result

    def _text(self, utt: Utterance, given_text: str | None) -> StageResult:
        result = StageResult()
        text = self._transcript(utt, result, given_text)
        if text is not None and text.strip():
            result.text = text.strip()
            result.x_t = timed(result, "text_encoder", self.text_encoder, result.text)
        return result

    def _transcript(self, utt: Utterance, result: StageResult, given_text: str | None):
        if given_text is not None:
            return given_text
        if self.external_text is not None:
            transcript = timed(result, "text_wait", self.external_text.wait, utt, self.text_timeout_s)
            if transcript is None:
                result.notes.append(f"no text within {self.text_timeout_s:g} s")
                return None
        elif self.transcriber is not None:
            transcript = timed(result, "asr", self.transcriber.transcribe, utt.audio)
            if transcript is None:
                return None
        else:
            return None
        if not transcript.usable:
            result.notes.append("text unusable: " + ", ".join(transcript.issues))
            return None
        return transcript.text
