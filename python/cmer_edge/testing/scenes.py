"""Multi-utterance test audio with known speech spans: clips separated by silences, written to a
WAV file incrementally (so hour-long scenes cost little memory), at any rate and channel count.

    clips = [("I told you so", speak("I told you so")), ...]      # 16 kHz mono
    truth = write_scene("scene.wav", clips, gaps_s=[1.0, 0.8, ...], sample_rate_hz=44_100, channels=2)
    # truth[i].start_s / end_s: where clip i's speech (not its padding) lies in the file

Used by the endpointer tests and the soak tests; the scene clock is the file's time axis, which is
the stream clock of a FileSource/ArraySource reading it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from cmer_edge.audio.convert import PIPELINE_RATE_HZ, resample


@dataclass(frozen=True)
class SceneUtterance:
    text: str
    start_s: float  # first sample of speech (above the clip's envelope threshold)
    end_s: float  # last sample of speech


def speech_span(samples: np.ndarray, sample_rate_hz: int = PIPELINE_RATE_HZ, rel_threshold: float = 0.02,
                window_ms: float = 10.0) -> tuple[float, float]:
    """(start_s, end_s) of the part of a clip whose 10 ms peak envelope exceeds `rel_threshold` of
    its maximum: the speech inside a synthesised clip's leading and trailing padding."""
    x = np.abs(np.asarray(samples, np.float32))
    if x.size == 0 or not x.max() > 0:
        raise ValueError("speech_span: clip is empty or silent")
    win = max(1, int(sample_rate_hz * window_ms / 1000))
    n = len(x) // win
    env = x[: n * win].reshape(n, win).max(axis=1) if n else x[None, :].max(axis=1)
    loud = np.flatnonzero(env > rel_threshold * x.max())
    return float(loud[0] * win / sample_rate_hz), float(min(len(x), (loud[-1] + 1) * win) / sample_rate_hz)


def write_scene(path: str | Path, clips: Sequence[tuple[str, np.ndarray]], gaps_s: Sequence[float], *,
                sample_rate_hz: int = PIPELINE_RATE_HZ, channels: int = 1, tail_s: float = 1.0,
                noise_dbfs: float | None = None, seed: int = 0) -> list[SceneUtterance]:
    """Write gap_0, clip_0, gap_1, clip_1, ..., tail as 16-bit PCM; clips are 16 kHz mono float32.
    `noise_dbfs`: optional white noise under everything (e.g. -60), so silence is not digital zero."""
    if len(gaps_s) != len(clips):
        raise ValueError(f"need one gap before each clip: {len(clips)} clips, {len(gaps_s)} gaps")
    if min(gaps_s, default=0) < 0 or tail_s < 0 or channels < 1:
        raise ValueError(f"gaps and tail must be >= 0 and channels >= 1, got gaps {list(gaps_s)}, "
                         f"tail {tail_s}, channels {channels}")
    rng = np.random.default_rng(seed)
    noise = 0.0 if noise_dbfs is None else 10 ** (noise_dbfs / 20)
    converted = {}
    truth: list[SceneUtterance] = []
    t_samples = 0
    with sf.SoundFile(str(path), "w", samplerate=sample_rate_hz, channels=channels, subtype="PCM_16") as f:

        def put(x: np.ndarray) -> None:
            nonlocal t_samples
            if noise:
                x = x + rng.normal(0, noise, len(x)).astype(np.float32)
            f.write(np.repeat(np.clip(x, -1, 1)[:, None], channels, axis=1))
            t_samples += len(x)

        for (text, clip), gap in zip(clips, gaps_s):
            put(np.zeros(int(round(gap * sample_rate_hz)), np.float32))
            key = id(clip)
            if key not in converted:  # resample each distinct clip once (scenes reuse clips)
                y = resample(np.asarray(clip, np.float32), PIPELINE_RATE_HZ, sample_rate_hz)
                converted[key] = (y, speech_span(y, sample_rate_hz))
            y, (a, b) = converted[key]
            t0 = t_samples / sample_rate_hz
            truth.append(SceneUtterance(text, t0 + a, t0 + b))
            put(y)
        put(np.zeros(int(round(tail_s * sample_rate_hz)), np.float32))
    return truth
