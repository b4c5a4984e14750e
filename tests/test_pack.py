"""Packing a bundle for deployment keeps what the runtime needs and its behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from cmer_edge.bundle import BundleError, load_bundle
from cmer_edge.bundle.pack import pack_bundle


def test_packed_bundle_runs_like_the_original(tiny_bundle, tmp_path, dialogue_wav):
    from cmer_edge.audio.convert import load_audio
    from cmer_edge.audio.utterance import Utterance
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    packed = pack_bundle(tiny_bundle, tmp_path / "packed", ["text_tokenizer", "onnx.text_encoder"], half_head=True)
    bundle = load_bundle(packed)
    assert set(bundle.manifest.files) == {"head", "text_tokenizer", "onnx.text_encoder"}
    assert bundle.manifest.runtime.onnx_precision == {"text_encoder": "fp32"}
    assert (packed / "head.safetensors").stat().st_size < 0.6 * (tiny_bundle / "head.safetensors").stat().st_size
    audio = load_audio(dialogue_wav[0])[:48000]
    utt = Utterance(audio, 0.0, 3.0, 0)
    probs = []
    for path in (tiny_bundle, packed):
        rec = Recognizer(RecognizerConfig(bundle=str(path), asr="none"))
        probs.append(np.array(list(rec.process(utt, text="I can't believe it").probs.values())))
        rec.close()
    np.testing.assert_allclose(probs[1], probs[0], atol=2e-3)  # float16 head weights


def test_pack_refuses_missing_roles(tiny_bundle, tmp_path):
    with pytest.raises(BundleError, match="onnx.audio_encoder"):
        pack_bundle(tiny_bundle, tmp_path / "p", ["onnx.audio_encoder"])
