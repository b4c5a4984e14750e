"""`python -m cmer_edge.extract` computes every clip's audio features on what the live segmenter hands
on from it (its speech span), as training.edge and evaluate do, and refuses to extend a store whose
audio features were computed on whole files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cmer_edge.features.store import FeatureStore, StoreError

FEATURE = "opensmile.eGeMAPSv02"


def _ravdess_clip(shared_dir):
    from cmer_edge.data.speech_manifest import load_manifest

    return load_manifest(shared_dir / "data" / "ravdess").clips[0].path  # ~40 % of a RAVDESS clip is silence


def test_audio_features_are_the_speech_spans(shared_dir, tmp_path):
    from cmer_edge.audio.convert import load_audio
    from cmer_edge.audio.segmenter import clip_speech
    from cmer_edge.audio.vad import SileroVad
    from cmer_edge.features.extraction import fill_audio_feature
    from cmer_edge.features.registry import make_audio_extractor

    clip = _ravdess_clip(shared_dir)
    silence = tmp_path / "silence.wav"
    import soundfile as sf

    sf.write(silence, np.zeros(16000, np.float32), 16000)
    # the reference first: this process has run ONNX Runtime (the VAD) before the extraction's workers
    # start, as in a longer session (a forked worker then hung in its first VAD call)
    span, found = clip_speech(clip, SileroVad())
    store = FeatureStore.open(tmp_path / "store", create=True, corpus="manifest")
    store.set_index("all", [{"dialogue_id": "a", "utterance_id": 0}, {"dialogue_id": "b", "utterance_id": 0}])
    report = fill_audio_feature(store, "all", FEATURE, {}, [clip, silence], workers=1)
    values, ok = store.load("all", FEATURE)
    assert ok.all() and report["whole_clip_no_speech_found"] == 1  # the silent file: scored whole, counted
    extractor = make_audio_extractor(FEATURE)
    whole = load_audio(clip)
    assert found and len(span) < 0.9 * len(whole)
    np.testing.assert_allclose(values[0], extractor(span), rtol=1e-4, atol=1e-4)
    assert np.abs(values[0] - extractor(whole)).max() > 1e-2
    np.testing.assert_allclose(values[1], extractor(load_audio(silence)), rtol=1e-4, atol=1e-4)
    assert FeatureStore.open(tmp_path / "store").manifest["clip_cut"] == "speech_span"


def test_a_store_of_whole_files_is_refused_in_one_line(shared_dir, tmp_path, capsys):
    from cmer_edge import extract

    root = tmp_path / "old"
    store = FeatureStore.open(root, create=True, corpus="manifest")
    store.declare(FEATURE, {"name": FEATURE, "dim": 88, "kind": "opensmile"})  # written before clips were cut
    manifest = json.loads((root / "manifest.json").read_text())
    assert "clip_cut" not in manifest
    with pytest.raises(StoreError, match="whole file"):
        FeatureStore.open(root).require_clip_cut("speech_span")
    code = extract.main(["manifest", "--manifest", str(shared_dir / "data" / "savee"), "--store", str(root),
                         "--audio", FEATURE, "--workers", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and "new store directory" in err[-1]
