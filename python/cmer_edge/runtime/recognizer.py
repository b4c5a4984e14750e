"""`Recognizer`: the public API of the live runtime (what `python -m cmer_edge.listen` runs).

    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig
    rec = Recognizer(RecognizerConfig(asr="external"))      # embedded default bundle
    rec.supply_text("that's great", start_s=12.4, end_s=14.1)  # the robot's own ASR (optional)
    for event in rec.stream(MicrophoneSource()):             # or FileSource / ArraySource
        print(event.console_line())

Events: each utterance gives one final event; with `stream(..., events="all")` (the default) or
`process(..., on_event=f)` a provisional event (the audio and the context, `stage="provisional"`)
comes first wherever a transcript is still to come, as soon as the audio features are in.

Threads: the caller's thread iterates `stream()` and runs the head; a capture thread runs source ->
VAD -> endpointer, starts each closed utterance's stages (runtime/stages.py: one worker for audio
features, one for ASR / external text + text encoder, so one utterance's ASR can overlap the next's
scoring) and hands it over a bounded queue (`max_queued_utterances`, runtime/handoff.py). With
`speculate` (default) and a live source, the stages start already when the endpointer's pause reaches
the post-roll (runtime/speculation.py), `min_silence_ms - post_roll_ms` before the utterance closes. A source
that can wait (a file, an array: `source.live` False) is paused while the queue is full, so
nothing is lost; a live one (a microphone, `realtime=True`) loses the oldest waiting utterance,
counted in `stats.dropped_utterances` with a warning. `close()` (or closing / abandoning the
`stream()` generator) stops the capture thread and the source. Inputs are checked by
runtime/validate.py; an utterance with no modality follows runtime/blank.py. Dialogue context: one
head session; it restarts after `new_dialogue_after_s` of silence. Torch is never imported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
from safetensors.numpy import load_file

from cmer_edge.asr.external import ExternalText
from cmer_edge.asr.whisper import WhisperTranscriber
from cmer_edge.audio.endpointer import EndpointerConfig
from cmer_edge.audio.segmenter import Segmenter
from cmer_edge.audio.utterance import Utterance
from cmer_edge.bundle import default_bundle_path, load_bundle
from cmer_edge.features.normalise import OnlineZScore
from cmer_edge.runtime.backends import BackendConfig
from cmer_edge.runtime.encoders import open_audio_extractor, open_text_encoder
from cmer_edge.runtime.events import EmotionEvent
from cmer_edge.runtime.handoff import Handoff, Stopped
from cmer_edge.runtime.head import NativeHead
from cmer_edge.runtime.speculation import Speculation
from cmer_edge.runtime.stages import StageJob, StageResult, Stages
from cmer_edge.runtime.validate import check_config, finite_or_none, prepare_utterance

log = logging.getLogger("cmer_edge")
ASR_MODES = ("whisper", "external", "none")
EVENT_CHOICES = ("all", "final")


@dataclass(frozen=True)
class RecognizerConfig:
    bundle: str | None = None            # bundle directory; None: the embedded default
    asr: str = "whisper"                 # whisper | external (host supplies text) | none (audio only)
    asr_model: str = "tiny.en"           # faster-whisper id or path
    window_utts: int | None = None       # live context window; None: the bundle's
    device: str = "auto"                 # head device: auto | cpu | cuda
    backend: str = "auto"                # encoder backend: auto | tensorrt | onnxruntime | torch
    threads: int = 2                     # CPU threads for ASR and ONNX Runtime
    modalities: str = "both"             # both | audio | text: which inputs the head may use
    text_timeout_s: float = 1.0          # external text: how long to wait after the utterance ends
    max_queued_utterances: int = 4
    new_dialogue_after_s: float = 30.0
    speculate: bool = True               # live sources: start features in the pause before the close
    voice_weight: float | None = None    # the voice pool's weight (model/voice_pool.py); None: the bundle's
    text_weight: float | None = None     # the pool's words-alone weight under a neutral voice; None: the bundle's
    endpointer: EndpointerConfig = field(default_factory=EndpointerConfig)

    def __post_init__(self) -> None:
        if self.asr not in ASR_MODES:
            raise ValueError(f"asr must be one of {ASR_MODES}, got {self.asr!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.max_queued_utterances < 1:
            raise ValueError(f"max_queued_utterances must be >= 1, got {self.max_queued_utterances}")
        if self.modalities not in ("both", "audio", "text"):
            raise ValueError(f"modalities must be both, audio or text, got {self.modalities!r}")
        check_config(self)  # ranges: text_timeout_s >= 0, threads 1..64, window_utts 1..256...


@dataclass
class RecognizerStats:
    utterances: int = 0
    events: int = 0
    dropped_utterances: int = 0
    stage_failures: int = 0
    dialogues: int = 0
    nonfinite_features: int = 0  # encoder outputs with NaN/inf, dropped as a modality
    blank_utterances: int = 0  # no modality at all: kept in context as a blank turn, no label
    provisional_events: int = 0
    speculative_starts: int = 0  # stages started on an endpointer candidate (runtime/speculation.py)
    speculative_hits: int = 0  # ... whose utterance then closed as it was
    speculative_wasted: int = 0  # ... dropped because speech went on


class Recognizer:
    def __init__(self, config: RecognizerConfig = RecognizerConfig()) -> None:
        self.config = config
        self.bundle = load_bundle(config.bundle or default_bundle_path())
        manifest = self.bundle.manifest
        head_cfg = manifest.head
        self.head = NativeHead.from_bundle(self.bundle, device=config.device,  # auto: CUDA, CPU fallback
                                           voice_weight=config.voice_weight, text_weight=config.text_weight)
        self.session = self.head.session(config.window_utts or manifest.window_utts)
        backends = BackendConfig.from_env(backend=None if config.backend == "auto" else config.backend,
                                          threads=config.threads)
        use_audio = head_cfg.uses_audio and config.modalities != "text"
        use_text = head_cfg.uses_text and config.modalities != "audio" and config.asr != "none"
        audio = open_audio_extractor(self.bundle, backends)[0] if use_audio else None
        text = open_text_encoder(self.bundle, backends) if use_text else None
        transcriber = external = None
        if text is not None and config.asr == "whisper":
            transcriber = WhisperTranscriber(config.asr_model, cpu_threads=config.threads)
        elif text is not None and config.asr == "external":
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
        if self.bundle.manifest.audio_norm != "speaker" or not self.bundle.head_config.uses_audio:
            return None
        stats = load_file(str(self.bundle.file("audio_norm")))
        return OnlineZScore(stats["mean"], stats["var"])

    def observe_audio(self, x_a: np.ndarray) -> None:
        """Let the per-session audio statistics see an utterance's raw audio features without
        scoring it (a speaker's enrolment speech; evaluation after N clips of a speaker)."""
        if self.audio_norm is not None:
            self.audio_norm.update_then_apply(np.asarray(x_a, np.float32))

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

    def process(self, utt: Utterance, text: str | None = None, closed_at: float | None = None,
                on_event=None) -> EmotionEvent:
        """Features + head for one utterance -> its final event. `text` overrides ASR; `closed_at`
        (perf_counter) is when the endpointer closed it, for the end-of-utterance -> event latency;
        `on_event(event)`, if given, gets the provisional event first (the audio scored while the
        transcript is still coming; only when both modalities are in use). The audio may be at any
        rate (`utt.sample_rate_hz`, resampled), [n], [n, ch] or [ch, n] (runtime/validate.py)."""
        closed_at = time.perf_counter() if closed_at is None else closed_at
        if text is not None and not isinstance(text, str):
            raise TypeError(f"text must be a str or None, got {type(text).__name__}")
        utt, notes = prepare_utterance(utt)
        if text is not None and self.stages.text_encoder is None:
            why = "asr='none'" if self.config.asr == "none" else "the bundle uses no text"
            notes.append(f"text ignored: {why}")
            log.warning("utterance %d: text ignored (%s)", utt.index, why)
            text = None
        final = None
        for event in self._score(self.stages.start(utt, text), notes, closed_at, provisional=on_event is not None):
            if event.stage == "final":
                final = event
            else:
                on_event(event)
        return final

    def _score(self, job: StageJob, notes: list[str], closed_at: float, provisional: bool) -> Iterator[EmotionEvent]:
        """The head on a job's features, in stream order: a provisional event once the audio is in
        (if asked for and a transcript is still to come), then the final one."""
        utt = job.utt
        if self._last_end_s is not None and utt.start_s - self._last_end_s > self.config.new_dialogue_after_s:
            self.reset()
        if self._last_end_s is None:
            self.stats.dialogues += 1
        self._last_end_s = utt.end_s
        self.stats.utterances += 1
        result = StageResult(notes=list(notes)).merge(job.audio())
        result.x_a = self._checked(result.x_a, "audio", result.notes)
        if result.x_a is not None and self.audio_norm is not None:
            result.x_a = self.audio_norm.update_then_apply(result.x_a)
        replace = False
        if provisional and result.x_a is not None and job.text_future is not None:
            started = time.perf_counter()
            probs = self.session.push(result.x_a, None, provisional=True)
            self.stats.provisional_events += 1
            yield self._event(utt, result, probs, ("audio",), started, closed_at, "provisional")
            replace = True
        result.merge(job.text())
        result.x_t = self._checked(result.x_t, "text", result.notes)
        self.stats.stage_failures += sum(note.endswith("failed") or " failed: " in note for note in result.notes)
        modalities = tuple(m for m, x in (("audio", result.x_a), ("text", result.x_t)) if x is not None)
        started = time.perf_counter()
        if modalities:
            probs = (self.session.replace_last if replace else self.session.push)(result.x_a, result.x_t)
        else:  # runtime/blank.py: a blank turn in the context, no label of its own
            self.session.push_blank()
            self.stats.blank_utterances += 1
            result.notes.append("no modality available: no prediction (kept in the context as a blank turn)")
            probs = None
        self.stats.events += 1
        yield self._event(utt, result, probs, modalities, started, closed_at, "final")

    def _checked(self, x: np.ndarray | None, modality: str, notes: list[str]) -> np.ndarray | None:
        """x, or None (and a note, counted) if the encoder gave NaN/inf."""
        before = len(notes)
        x = finite_or_none(x, modality, notes)
        self.stats.nonfinite_features += len(notes) - before
        return x

    def _event(self, utt: Utterance, result: StageResult, probs, modalities: tuple, head_started: float,
               closed_at: float, stage: str) -> EmotionEvent:
        latency = dict(result.latency_ms)
        latency["head"] = round(1000 * (time.perf_counter() - head_started), 2)
        latency["total"] = round(1000 * (time.perf_counter() - closed_at), 2)
        label, confidence, named = None, 0.0, {}
        if probs is not None:
            labels = self.bundle.labels
            k = int(np.argmax(probs))
            label, confidence = labels[k], float(probs[k])
            named = {name: float(v) for name, v in zip(labels, probs)}
        text = result.text if stage == "final" else None
        return EmotionEvent(utt.index, round(utt.start_s, 3), round(utt.end_s, 3), text, label, named, confidence,
                            modalities, latency, utt.truncated, tuple(result.notes), stage)

    # -- a stream --------------------------------------------------------------------------------
    _streams: set | None = None  # the Handoffs of running streams, stopped by close()

    def stream(self, source, events: str = "all") -> Iterator[EmotionEvent]:
        """Events for every utterance in `source` (an iterable of AudioBlocks), in order: with
        events="all" a provisional event (audio + context) before each final one where a transcript
        is to come; "final": the final events only. A source with `live` True (a microphone) drops
        the oldest waiting utterance when inference falls behind; any other source is paused
        instead, so every utterance gets its final event."""
        if events not in EVENT_CHOICES:
            raise ValueError(f"events must be one of {EVENT_CHOICES}, got {events!r}")
        segmenter = Segmenter(self.config.endpointer)
        live = bool(getattr(source, "live", False))
        handoff = Handoff(self.config.max_queued_utterances, "drop_oldest" if live else "wait",
                          on_drop=self._dropped)
        # speculation pays only where audio arrives in real time: read as fast as possible, an
        # utterance closes microseconds after its candidate and a superseded one is pure waste
        speculation = Speculation(self.stages, self.stats) if self.config.speculate and live else None
        self._live = (segmenter, handoff)  # read by status()
        failure: list[BaseException] = []

        def closed(utt: Utterance) -> None:  # capture thread: start the stages now, score in order later
            closed_at = time.perf_counter()
            utt, notes = prepare_utterance(utt)
            job = speculation.claim(utt) if speculation is not None else None
            if job is None:
                job = self.stages.start(utt)
            elif job.text_future is None:
                self.stages.start_text(job)
            handoff.put((job, notes, closed_at))

        def capture() -> None:
            try:
                for block in source:
                    done = segmenter.feed(block)
                    if speculation is not None:
                        speculation.offer(segmenter.take_candidate())
                    for utt in done:
                        closed(utt)
                    if handoff.stopped:
                        return
                for utt in segmenter.flush():
                    closed(utt)
            except Stopped:
                pass
            except BaseException as exc:  # handed to the consumer thread, re-raised there
                failure.append(exc)
            finally:
                handoff.finish()

        if self._streams is None:
            self._streams = set()
        self._streams.add(handoff)
        thread = threading.Thread(target=capture, name="cmer_edge-capture", daemon=True)
        handoff.thread, handoff.source = thread, source
        thread.start()
        try:
            while (item := handoff.get()) is not None:
                job, notes, closed_at = item
                yield from self._score(job, notes, closed_at, provisional=events == "all")
        finally:
            self._stop_stream(handoff)
        if failure:
            raise failure[0]

    def _dropped(self, item) -> None:
        job = item[0]
        job.cancel()
        dropped = job.utt
        self.stats.dropped_utterances += 1
        log.warning("inference is behind: dropped utterance %d [%.1f-%.1f s] (%d dropped so far)",
                    dropped.index, dropped.start_s, dropped.end_s, self.stats.dropped_utterances)

    def _stop_stream(self, handoff: Handoff, timeout_s: float = 5.0) -> None:
        handoff.stop()
        if hasattr(handoff.source, "close"):
            handoff.source.close()
        if handoff.thread is not threading.current_thread():
            handoff.thread.join(timeout=timeout_s)
            if handoff.thread.is_alive():
                log.warning("capture thread still running %.0f s after stop (blocked in the source?)", timeout_s)
        if self._streams is not None:
            self._streams.discard(handoff)

    def close(self) -> None:
        """Stop every stream (its capture thread and source) and the stage threads. Idempotent."""
        for handoff in list(self._streams or ()):
            self._stop_stream(handoff)
        self.stages.close()

    # -- status hook for displays (cmer_edge.serve) ----------------------------------------------
    def status(self) -> dict:
        """A snapshot for a display, cheap and callable from any thread while `stream()` runs: whether
        the endpointer is inside speech, how many utterances wait for inference, and the counters."""
        segmenter, queue = getattr(self, "_live", (None, ()))
        in_speech = segmenter is not None and segmenter.endpointer.in_speech
        return {"in_speech": bool(in_speech), "queue_depth": len(queue), **asdict(self.stats)}
