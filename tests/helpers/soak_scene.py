"""A >10-minute dialogue of espeak-ng utterances and varied silences, for the soak tests."""

from __future__ import annotations

import os
from pathlib import Path

PHRASES = [
    ("I can't believe you did that to me", 165, 50),
    ("Why are you always late?", 140, 35),
    ("Okay. Fine. Whatever you say.", 190, 70),
    ("This is the best day of my whole life", 150, 60),
    ("Please, just leave me alone for a while", 120, 45),
    ("No", 160, 50),
]
GAPS_S = [0.8, 1.7, 3.0, 0.9, 6.0, 1.2, 2.2]
SCENE_S = 620.0


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def write_soak_scene(path: Path, seconds: float = SCENE_S, sample_rate_hz: int = 22_050):
    """Write the scene; returns its SceneUtterance list (text, start_s, end_s)."""
    from cmer_edge.testing.scenes import write_scene
    from cmer_edge.testing.espeak import speak

    voices = [(text, speak(text, speed_wpm=wpm, pitch=pitch)) for text, wpm, pitch in PHRASES]
    clips, gaps, total = [], [], 0.0
    while total < seconds:
        i = len(clips)
        clips.append(voices[i % len(voices)])
        gaps.append(GAPS_S[i % len(GAPS_S)])
        total += gaps[-1] + len(clips[-1][1]) / 16_000
    return write_scene(path, clips, gaps, sample_rate_hz=sample_rate_hz, noise_dbfs=-55)
