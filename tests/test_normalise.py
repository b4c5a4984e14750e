"""Per-speaker z-scoring offline and its live per-session equivalent, through training and runtime."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.ci import need_module

from cmer_edge.features.normalise import OnlineZScore, speaker_zscore


def test_speaker_zscore_standardises_each_speaker_and_skips_unusable_rows():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(5, 2, (30, 3)), rng.normal(-1, 0.5, (20, 3))]).astype(np.float32)
    speakers = ["a"] * 30 + ["b"] * 20
    usable = np.ones(50, bool)
    usable[0] = False
    out = speaker_zscore(values, speakers, usable)
    np.testing.assert_array_equal(out[0], values[0])
    for rows in (slice(1, 30), slice(30, 50)):
        np.testing.assert_allclose(out[rows].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(out[rows].std(0), 1, atol=1e-4)


def test_online_zscore_converges_to_the_offline_statistics_and_resets():
    rng = np.random.default_rng(1)
    session = rng.normal(3, 2, (400, 4))
    online = OnlineZScore(np.zeros(4), np.ones(4), prior_weight=4)
    first = online.update_then_apply(session[0])
    assert np.isfinite(first).all()
    for x in session[1:]:
        last = online.update_then_apply(x)
    offline = (session[-1] - session.mean(0)) / session.std(0)
    np.testing.assert_allclose(last, offline, atol=0.05)
    online.reset()
    np.testing.assert_allclose(online.update_then_apply(session[0]), first)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        online.update_then_apply(np.zeros(3))


def test_recognizer_applies_session_normalisation(tmp_path, speech_clips):
    """A bundle trained with audio_norm=speaker: the runtime z-scores x_a per session before the head."""
    torch = need_module("torch")
    from safetensors.numpy import save_file

    from cmer_edge.audio.convert import load_audio
    from cmer_edge.audio.utterance import Utterance
    from cmer_edge.features.registry import make_audio_extractor
    from cmer_edge.bundle import save_bundle
    from cmer_edge.model.cm_roberta import CMRoberta
    from cmer_edge.model.config import HeadConfig
    from cmer_edge.runtime.head import NativeHead
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    spec = make_audio_extractor("opensmile.eGeMAPSv02").spec()
    cfg = HeadConfig(audio_dim=spec["dim"], text_dim=1, hidden=8, num_heads=2, ffn_dim=16, classifier_dim=16,
                     modalities="audio")
    torch.manual_seed(0)
    tensors = {k: v.numpy() for k, v in CMRoberta(cfg).state_dict().items()}
    extractor = make_audio_extractor("opensmile.eGeMAPSv02")
    clips = [load_audio(c.path) for c in speech_clips]
    raw = np.stack([extractor(a) for a in clips])
    save_file({"mean": raw.mean(0), "var": raw.var(0) + 1.0}, str(tmp_path / "audio_norm.safetensors"))
    bundle = save_bundle(tmp_path / "b", head_config=cfg, head_tensors=tensors,
                         manifest={"audio_norm": "speaker", "window_utts": 4, "features": {"audio": spec}},
                         extra_files={"audio_norm": tmp_path / "audio_norm.safetensors"})
    rec = Recognizer(RecognizerConfig(bundle=str(bundle), asr="none"))
    online = OnlineZScore(raw.mean(0), raw.var(0) + 1.0)
    session = NativeHead.from_bundle(bundle).session(4)
    for i, audio in enumerate(clips):
        event = rec.process(Utterance(audio, float(i), i + 1.0, i))
        expected = session.push(online.update_then_apply(raw[i]), None)
        np.testing.assert_allclose(list(event.probs.values()), expected, rtol=1e-4, atol=1e-6)
    rec.close()
