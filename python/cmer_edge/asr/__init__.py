"""Transcripts for utterances: a `Transcriber` protocol, the faster-whisper backend, and the
external-text mode in which the host's own ASR supplies the text.

    from cmer_edge.asr import WhisperTranscriber, ExternalText, Transcript, modalities_for

Submodules import their heavy dependencies (faster-whisper) only when used.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from cmer_edge.asr.transcript import TextCheck, Transcript, check_text, modalities_for


@runtime_checkable
class Transcriber(Protocol):
    """Any ASR backend: float32 mono 16 kHz audio of one utterance -> Transcript."""

    def transcribe(self, audio_16k: np.ndarray) -> Transcript: ...


def __getattr__(name: str):
    if name in ("WhisperTranscriber", "resolve_whisper_model"):
        from cmer_edge.asr import whisper

        return getattr(whisper, name)
    if name in ("ExternalText", "ExternalTextStats", "TextEntry", "parse_text_line"):
        from cmer_edge.asr import external

        return getattr(external, name)
    raise AttributeError(f"module 'cmer_edge.asr' has no attribute {name!r}")


__all__ = ["Transcriber", "Transcript", "TextCheck", "check_text", "modalities_for", "WhisperTranscriber",
           "resolve_whisper_model", "ExternalText", "ExternalTextStats", "TextEntry", "parse_text_line"]
