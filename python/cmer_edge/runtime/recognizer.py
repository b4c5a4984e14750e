"""`Recognizer`: the public API of the live runtime (what `python -m cmer_edge.listen` runs).

    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig
    rec = Recognizer(RecognizerConfig(asr="external"))      # embedded default bundle
    rec.supply_text("that's great", start_s=12.4, end_s=14.1)  # the robot's own ASR (optional)
    for event in rec.stream(MicrophoneSource()):             # or FileSource / ArraySource
        print(event.console_line())

Threads: the caller's thread iterates `stream()`; a capture thread runs source -> VAD -> endpointer
and hands utterances over a bounded queue (`max_queued_utterances`; when inference falls behind,
the oldest waiting utterance is dropped, counted in `stats.dropped_utterances`, and a warning is
logged). Dialogue context: one head session; it restarts after `new_dialogue_after_s` of silence.
Torch is never imported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from cmer_edge.audio.endpointer import EndpointerConfig
from cmer_edge.audio.utterance import Utterance
from cmer_edge.runtime.events import EmotionEvent

log = logging.getLogger("cmer_edge")
ASR_MODES = ("whisper", "external", "none")


@dataclass(frozen=True)
class RecognizerConfig:
    bundle: str | None = None            # bundle directory; None: the embedded default
    asr: str = "whisper"                 # whisper | external (host supplies text) | none (audio only)
    asr_model: str = "tiny.en"           # faster-whisper id or path
    window_utts: int | None = None       # live context window; None: the bundle's
    device: str = "auto"                 # head device: auto | cpu | cuda
    backend: str = "auto"                # encoder backend: auto | tensorrt | onnxruntime | torch
    threads: int = 2                     # CPU threads for ASR and ONNX Runtime
    text_timeout_s: float = 1.0          # external text: how long to wait after the utterance ends
    max_queued_utterances: int = 4
    new_dialogue_after_s: float = 30.0
    endpointer: EndpointerConfig = field(default_factory=EndpointerConfig)

    def __post_init__(self) -> None:
        if self.asr not in ASR_MODES:
            raise ValueError(f"asr must be one of {ASR_MODES}, got {self.asr!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.max_queued_utterances < 1:
            raise ValueError(f"max_queued_utterances must be >= 1, got {self.max_queued_utterances}")
        if self.window_utts is not None and self.window_utts < 1:
            raise ValueError(f"window_utts must be >= 1, got {self.window_utts}")


@dataclass
class RecognizerStats:
    utterances: int = 0
    events: int = 0
    dropped_utterances: int = 0
    stage_failures: int = 0
    dialogues: int = 0


def _head_device(requested: str) -> str:
    from cmer_edge import _native

    if requested == "auto":
        return "cuda" if _native.cuda_available() else "cpu"
    return requested


class Recognizer:
    def __init__(self, config: RecognizerConfig = RecognizerConfig()) -> None:
        from cmer_edge.model.bundle import load_bundle
        from cmer_edge.runtime.backends import BackendConfig
        from cmer_edge.runtime.default_bundle import default_bundle_path
        from cmer_edge.runtime.encoders import open_audio_extractor, open_text_encoder
        from cmer_edge.runtime.head import NativeHead
        from cmer_edge.runtime.stages import Stages

        self.config = config
        self.bundle = load_bundle(config.bundle or default_bundle_path())
        head_cfg = self.bundle.head_config
        self.head = NativeHead.from_bundle(self.bundle, device=_head_device(config.device))
        self.session = self.head.session(config.window_utts or self.bundle.window_utts)
        backends = BackendConfig.from_env(backend=None if config.backend == "auto" else config.backend,
                                          threads=config.threads)
        audio = open_audio_extractor(self.bundle, backends)[0] if head_cfg.uses_audio else None
        text = open_text_encoder(self.bundle, backends) if head_cfg.uses_text and config.asr != "none" else None
        transcriber = external = None
        if text is not None and config.asr == "whisper":
            from cmer_edge.asr.whisper import WhisperTranscriber

            transcriber = WhisperTranscriber(config.asr_model, cpu_threads=config.threads)
        elif text is not None and config.asr == "external":
            from cmer_edge.asr.external import ExternalText

            external = ExternalText()
        self.external_text = external
        self.stages = Stages(audio_extractor=audio, text_encoder=text, transcriber=transcriber,
                             external_text=external, text_timeout_s=config.text_timeout_s)
        self.audio_norm = self._session_normaliser()
        self.stats = RecognizerStats()
        self._last_end_s: float | None = None

    def _session_normaliser(self):
        """Bundles trained on per-speaker z-scored audio get the live equivalent: per-session running
        statistics with the training population as prior (cmer_edge.features.normalise)."""
        if self.bundle.manifest.get("audio_norm", "global") != "speaker" or not self.bundle.head_config.uses_audio:
            return None
        from safetensors.numpy import load_file

        from cmer_edge.features.normalise import OnlineZScore

        stats = load_file(str(self.bundle.file("audio_norm")))
        return OnlineZScore(stats["mean"], stats["var"])

    # -- one utterance ---------------------------------------------------------------------------
    def supply_text(self, text: str, utterance_index: int | None = None, start_s: float | None = None,
                    end_s: float | None = None) -> None:
        """External-text mode: the host's transcript for an utterance (by index or by times)."""
        if self.external_text is None:
            raise RuntimeError("supply_text needs RecognizerConfig(asr='external')")
        self.external_text.supply(text, utterance_index=utterance_index, start_s=start_s, end_s=end_s)

    def reset(self) -> None:
        """Start a new conversation: forget the dialogue context."""
        self.session.reset()
        if self.audio_norm is not None:
            self.audio_norm.reset()
        self._last_end_s = None

    def process(self, utt: Utterance, text: str | None = None, closed_at: float | None = None) -> EmotionEvent:
        """Features + head for one utterance. `text` overrides ASR; `closed_at` (perf_counter) is
        when the endpointer closed it, for the end-of-utterance -> event latency."""
        closed_at = time.perf_counter() if closed_at is None else closed_at
        if self._last_end_s is not None and utt.start_s - self._last_end_s > self.config.new_dialogue_after_s:
            self.reset()
        if self._last_end_s is None:
            self.stats.dialogues += 1
        self._last_end_s = utt.end_s
        self.stats.utterances += 1
        result = self.stages.run(utt, text)
        if result.x_a is not None and self.audio_norm is not None:
            result.x_a = self.audio_norm.update_then_apply(result.x_a)
        self.stats.stage_failures += sum(note.endswith("failed") or " failed: " in note for note in result.notes)
        labels = self.bundle.labels
        modalities = tuple(m for m, x in (("audio", result.x_a), ("text", result.x_t)) if x is not None)
        label, probs, confidence = None, {}, 0.0
        if modalities:
            started = time.perf_counter()
            p = self.session.push(result.x_a, result.x_t)
            result.latency_ms["head"] = round(1000 * (time.perf_counter() - started), 2)
            k = int(np.argmax(p))
            label, confidence = labels[k], float(p[k])
            probs = {name: float(v) for name, v in zip(labels, p)}
        else:
            result.notes.append("no modality available: no prediction")
        result.latency_ms["total"] = round(1000 * (time.perf_counter() - closed_at), 2)
        self.stats.events += 1
        return EmotionEvent(utt.index, round(utt.start_s, 3), round(utt.end_s, 3), result.text, label, probs,
                            confidence, modalities, result.latency_ms, utt.truncated, tuple(result.notes))

    # -- a stream --------------------------------------------------------------------------------
    def stream(self, source) -> Iterator[EmotionEvent]:
        """Events for every utterance in `source` (an iterable of AudioBlocks), in order."""
        from cmer_edge.audio.segmenter import Segmenter

        segmenter = Segmenter(self.config.endpointer)
        queue: deque[tuple[Utterance, float]] = deque()
        self._live = (segmenter, queue)  # read by status()
        ready = threading.Condition()
        done = threading.Event()
        failure: list[BaseException] = []

        def capture() -> None:
            try:
                for block in source:
                    self._enqueue(queue, ready, segmenter.feed(block))
                self._enqueue(queue, ready, segmenter.flush())
            except BaseException as exc:  # handed to the consumer thread, re-raised there
                failure.append(exc)
            finally:
                done.set()
                with ready:
                    ready.notify_all()

        thread = threading.Thread(target=capture, name="cmer_edge-capture", daemon=True)
        thread.start()
        try:
            while True:
                with ready:
                    while not queue and not done.is_set():
                        ready.wait(0.1)
                    if not queue:
                        break
                    utt, closed_at = queue.popleft()
                yield self.process(utt, closed_at=closed_at)
        finally:
            if hasattr(source, "close"):
                source.close()
            thread.join(timeout=5)
        if failure:
            raise failure[0]

    def _enqueue(self, queue: deque, ready: threading.Condition, utterances: list[Utterance]) -> None:
        now = time.perf_counter()
        with ready:
            for utt in utterances:
                if len(queue) >= self.config.max_queued_utterances:
                    dropped, _ = queue.popleft()
                    self.stats.dropped_utterances += 1
                    log.warning("inference is behind: dropped utterance %d [%.1f-%.1f s] (%d dropped so far)",
                                dropped.index, dropped.start_s, dropped.end_s, self.stats.dropped_utterances)
                queue.append((utt, now))
            ready.notify_all()

    def close(self) -> None:
        self.stages.close()

    # -- status hook for displays (cmer_edge.serve) ----------------------------------------------
    def status(self) -> dict:
        """A snapshot for a display, cheap and callable from any thread while `stream()` runs: whether
        the endpointer is inside speech, how many utterances wait for inference, and the counters."""
        from dataclasses import asdict

        segmenter, queue = getattr(self, "_live", (None, ()))
        in_speech = segmenter is not None and segmenter.endpointer.in_speech
        return {"in_speech": bool(in_speech), "queue_depth": len(queue), **asdict(self.stats)}
