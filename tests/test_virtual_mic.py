"""Real PortAudio capture through sounddevice records what is played into the virtual microphone."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cmer_edge.audio.convert import load_audio

pytestmark = pytest.mark.mic


def best_lag_correlation(played: np.ndarray, recorded: np.ndarray) -> tuple[float, int]:
    """Pearson correlation of `played` with `recorded` at the lag that maximises it."""
    n = len(played) + len(recorded)
    size = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(recorded, size) * np.conj(np.fft.rfft(played, size)), size)
    lag = int(np.argmax(xc[: len(recorded)]))
    segment = recorded[lag:lag + len(played)]
    if len(segment) < len(played):
        return 0.0, lag
    return float(np.corrcoef(played, segment)[0, 1]), lag


def test_recorded_audio_correlates_with_played_wav(virtual_mic, speech_clips):
    import sounddevice as sd

    clip = speech_clips[0]
    played = load_audio(clip.path, 16_000)
    blocks: list[np.ndarray] = []
    first_block = threading.Event()

    def callback(indata, frames, time_info, status):
        blocks.append(indata[:, 0].copy())
        first_block.set()

    with sd.InputStream(device=virtual_mic.device, samplerate=16_000, channels=1, dtype="float32",
                        callback=callback):
        assert first_block.wait(10), "no audio callback within 10 s of opening the stream"
        player = virtual_mic.play(clip.path)
        assert player.wait(30) == 0
        time.sleep(0.5)
    recorded = np.concatenate(blocks)
    corr, lag = best_lag_correlation(played, recorded)
    assert corr > 0.95, f"recorded audio does not match the played clip (r={corr:.3f} at lag {lag})"


def test_correlation_check_rejects_unrelated_audio():
    rng = np.random.default_rng(0)
    played = rng.standard_normal(4000).astype(np.float32)
    recorded = rng.standard_normal(16000).astype(np.float32)
    corr, _ = best_lag_correlation(played, recorded)
    assert corr < 0.2
