"""The per-utterance stages of the live pipeline, each timed and each allowed to fail alone.

    utterance ─┬─ ASR (or external text) ─► text encoder ─┐
               └─ audio features ─────────────────────────┴─► head session ─► probs

ASR and audio features run concurrently (both release the GIL: CTranslate2, openSMILE, ONNX
Runtime). A failed or empty stage drops its modality for this utterance and is noted on the event;
the head then runs on what is left.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
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


class Stages:
    """Holds the loaded components; `run(utt, text_source)` computes one utterance's features."""

    def __init__(self, *, audio_extractor, text_encoder, transcriber, external_text, text_timeout_s: float) -> None:
        self.audio_extractor = audio_extractor
        self.text_encoder = text_encoder
        self.transcriber = transcriber
        self.external_text = external_text
        self.text_timeout_s = text_timeout_s
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cmer_edge-stage")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if hasattr(self.audio_extractor, "close"):
            self.audio_extractor.close()

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

    def run(self, utt: Utterance, given_text: str | None = None) -> StageResult:
        result = StageResult()
        audio_future = None
        if self.audio_extractor is not None:
            audio_future = self._pool.submit(timed, result, "audio_features", self.audio_extractor, utt.audio)
        text = self._transcript(utt, result, given_text) if self.text_encoder is not None else None
        if text is not None and text.strip():
            result.text = text.strip()
            result.x_t = timed(result, "text_encoder", self.text_encoder, result.text)
        if audio_future is not None:
            result.x_a = audio_future.result()
        return result
