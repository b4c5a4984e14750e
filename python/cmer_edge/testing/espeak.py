"""Synthetic speech with espeak-ng, for tests, the generated MELD-format corpus and benchmarks."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from cmer_edge.audio.convert import resample


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(
    text: str,
    *,
    voice: str = "en-us",
    speed_wpm: int = 165,
    pitch: int = 50,
    sample_rate_hz: int = 16_000,
) -> np.ndarray:
    """Speak `text` with espeak-ng; returns float32 mono at `sample_rate_hz`."""
    if not text.strip():
        raise ValueError("speak: text is empty")
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            # "--": a line such as "-Peaches?" (MELD test) is text, not an option
            ["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-p", str(pitch), "-w", str(wav), "--", text],
            check=True, capture_output=True,
        )
        samples, rate = sf.read(str(wav), dtype="float32")
    return resample(samples, int(rate), sample_rate_hz)


def write_speech(
    path: str | Path,
    text: str,
    *,
    sample_rate_hz: int = 16_000,
    channels: int = 1,
    **voice_args,
) -> Path:
    """Speak `text` into a 16-bit WAV at `sample_rate_hz` with `channels` identical channels."""
    x = speak(text, sample_rate_hz=sample_rate_hz, **voice_args)
    if channels > 1:
        x = np.repeat(x[:, None], channels, axis=1)
    path = Path(path)
    sf.write(str(path), x, sample_rate_hz, subtype="PCM_16")
    return path
