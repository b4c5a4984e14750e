"""The voice pool (model/voice_pool.py), the head session that applies it (runtime/head.py), the
manifest fields that carry its weights, and the fit on dev (training/voice_trust.py)."""

from __future__ import annotations

import numpy as np
import pytest

from cmer_edge.bundle import BundleError
from cmer_edge.bundle.manifest import RuntimeSection
from cmer_edge.model.voice_pool import pool_voice
from cmer_edge.training import voice_trust


def _probs(rng, n, c=7, sharp=1.0):
    x = np.exp(sharp * rng.standard_normal((n, c)))
    return x / x.sum(-1, keepdims=True)


def test_pool_is_geometric_with_a_weight_that_follows_the_voices_emotion():
    rng = np.random.default_rng(0)
    both, voice = _probs(rng, 50), _probs(rng, 50)
    np.testing.assert_allclose(pool_voice(both, voice, 0.0), both, rtol=1e-6)
    pooled = pool_voice(both, voice, 0.7)
    np.testing.assert_allclose(pooled.sum(-1), 1.0, rtol=1e-6)
    g = 0.7 * (1 - voice[:, :1])  # by hand
    expect = both ** (1 - g) * voice ** g
    np.testing.assert_allclose(pooled, expect / expect.sum(-1, keepdims=True), rtol=1e-5)
    # a voice sure it is neutral has no say; a voice sure of an emotion, at w = 1, decides alone
    neutral_voice = np.eye(7)[[0]]
    np.testing.assert_allclose(pool_voice(both[:1], neutral_voice, 1.0), both[:1], rtol=1e-5)
    angry = np.full((1, 7), 1e-4)
    angry[0, 6] = 1 - 6e-4
    assert pool_voice(both[:1], angry, 1.0).argmax() == 6
    # the neutral index is the labels' (a head whose neutral class is elsewhere)
    np.testing.assert_allclose(pool_voice(both[:1], np.eye(7)[[3]], 1.0, neutral=3), both[:1], rtol=1e-5)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="voice weight"):
            pool_voice(both, voice, bad)


def test_text_gate_gives_the_words_alone_the_say_a_neutral_voice_leaves():
    rng = np.random.default_rng(1)
    both, voice, text = _probs(rng, 50), _probs(rng, 50), _probs(rng, 50)
    np.testing.assert_allclose(pool_voice(both, voice, 0.4, 0, text, 0.0), pool_voice(both, voice, 0.4), rtol=1e-6)
    pooled = pool_voice(both, voice, 0.4, 0, text, 0.6)
    g, h = 0.4 * (1 - voice[:, :1]), 0.6 * voice[:, :1]  # by hand
    expect = both ** (1 - g - h) * voice ** g * text ** h
    np.testing.assert_allclose(pooled, expect / expect.sum(-1, keepdims=True), rtol=1e-5)
    # a voice sure it is neutral, at w_t = 1: the words alone decide; an emotional voice: the gate is shut
    neutral_voice = np.eye(7)[[0]]
    np.testing.assert_allclose(pool_voice(both[:1], neutral_voice, 0.0, 0, text[:1], 1.0), text[:1], rtol=1e-5)
    sure_angry = np.eye(7)[[6]]
    np.testing.assert_allclose(pool_voice(both[:1], sure_angry, 0.0, 0, text[:1], 1.0), both[:1], rtol=1e-5)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="text weight"):
            pool_voice(both, voice, 0.2, 0, text, bad)
    with pytest.raises(ValueError, match="needs the words-alone view"):
        pool_voice(both, voice, 0.2, 0, None, 0.3)


def test_manifest_voice_weight_is_checked_and_kept():
    assert RuntimeSection.from_dict({}).voice_weight == 0.0
    section = RuntimeSection.from_dict({"voice_weight": 0.35, "onnx_precision": {"text_encoder": "int8"}})
    assert section.voice_weight == 0.35 and section.to_dict()["voice_weight"] == 0.35
    for bad in (1.2, -1, "0.5", True, None, float("nan")):
        with pytest.raises(BundleError, match="runtime.voice_weight"):
            RuntimeSection.from_dict({"voice_weight": bad})
        with pytest.raises(BundleError, match="runtime.text_weight"):
            RuntimeSection.from_dict({"text_weight": bad})
    section = RuntimeSection.from_dict({"voice_weight": 0.5, "text_weight": 0.25})
    assert (section.voice_weight, section.text_weight) == (0.5, 0.25)
    again = RuntimeSection.from_dict(section.to_dict())
    assert (again.voice_weight, again.text_weight) == (0.5, 0.25) and RuntimeSection.from_dict({}).text_weight == 0.0
    assert "text_weight" not in RuntimeSection.from_dict({"voice_weight": 0.5, "text_weight": 0}).to_dict()


@pytest.mark.parametrize("voice_weight,text_weight", [(0.6, 0.0), (0.6, 0.3), (0.0, 0.5)])
def test_session_pools_the_fused_and_the_voice_views_and_keeps_the_window(voice_weight, text_weight):
    """A pooled session gives exactly pool(fused, voice-only view, words-only view of the same window)
    and leaves its window as a plain session does (every later fused step identical), through
    provisional pushes, replacements, audio-only and text-only utterances and a push that raises."""
    from helpers.head import SMALL, HeadConfig, make_model, state_dict

    from cmer_edge.runtime.head import NativeHead

    cfg = HeadConfig(**SMALL)
    tensors = state_dict(make_model(cfg, seed=3))
    pooled_head = NativeHead.from_state_dict(cfg, tensors, voice_weight=voice_weight, text_weight=text_weight)
    plain_head = NativeHead.from_state_dict(cfg, tensors)
    pooled, plain, voice_view = pooled_head.session(4), plain_head.session(4), plain_head.session(4)
    text_view = plain_head.session(4)

    def expect(fused, voice, x_a, x_t):  # the text view's newest utterance is a provisional push
        text = text_view.replace_last(None, x_t, provisional=True)  # the words alone, same window
        text_view.replace_last(x_a, x_t)  # and back to the fused inputs, as the pooled session's window
        return pool_voice(fused, voice, voice_weight, 0, text, text_weight)

    rng = np.random.default_rng(1)
    for i in range(9):
        x_a = rng.standard_normal(cfg.audio_dim).astype(np.float32)
        x_t = rng.standard_normal(cfg.text_dim).astype(np.float32)
        if i == 4:  # audio only: nothing to pool
            np.testing.assert_allclose(pooled.push(x_a, None), plain.push(x_a, None), rtol=1e-6)
            voice_view.push(x_a, None)
            text_view.push(x_a, None)
            continue
        if i == 6:  # text only
            np.testing.assert_allclose(pooled.push(None, x_t), plain.push(None, x_t), rtol=1e-6)
            voice_view.push(None, x_t)
            text_view.push(None, x_t)
            continue
        if i % 2:  # the recognizer's way: the audio first (provisional), the words later
            np.testing.assert_allclose(pooled.push(x_a, None, provisional=True),
                                       plain.push(x_a, None, provisional=True), rtol=1e-6)
            got = pooled.replace_last(x_a, x_t)
            fused = plain.replace_last(x_a, x_t)
        else:
            got, fused = pooled.push(x_a, x_t), plain.push(x_a, x_t)
        voice = voice_view.push(x_a, None, provisional=True)
        voice_view.replace_last(x_a, x_t)  # the voice view's window holds the fused inputs, as the session's
        text_view.push(x_a, x_t, provisional=True)
        np.testing.assert_allclose(got, expect(fused, voice, x_a, x_t), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(pooled.last_logits, plain.last_logits, rtol=1e-6)
        assert (pooled.size, pooled.pushed, pooled.provisional) == (plain.size, plain.pushed, plain.provisional)
    # a replacement whose audio differs from the provisional push's: that push is not its voice view
    x_a, other, x_t = (rng.standard_normal(d).astype(np.float32) for d in (cfg.audio_dim, cfg.audio_dim, cfg.text_dim))
    pooled.push(x_a, None, provisional=True)
    plain.push(x_a, None, provisional=True)
    voice_view.push(x_a, None, provisional=True)
    text_view.push(x_a, None, provisional=True)
    got, fused = pooled.replace_last(other, x_t), plain.replace_last(other, x_t)
    voice = voice_view.replace_last(other, None, provisional=True)
    voice_view.replace_last(other, x_t)
    np.testing.assert_allclose(got, expect(fused, voice, other, x_t), rtol=1e-5, atol=1e-7)
    bad = np.full(cfg.text_dim, np.nan, np.float32)
    with pytest.raises(ValueError):
        pooled.push(rng.standard_normal(cfg.audio_dim).astype(np.float32), bad)
    assert (pooled.size, pooled.pushed) == (plain.size, plain.pushed)
    x_a, x_t = (rng.standard_normal(d).astype(np.float32) for d in (cfg.audio_dim, cfg.text_dim))
    pooled.push(x_a, x_t)
    plain.push(x_a, x_t)
    np.testing.assert_allclose(pooled.last_logits, plain.last_logits, rtol=1e-6)


def test_a_voice_weight_needs_a_bimodal_head_with_a_neutral_class(tmp_path):
    """Refused wherever it meets a head: the API (ValueError), a bundle whose manifest sets one and an
    override on a bundle that cannot take it (BundleError: one line and exit 2 in every CLI)."""
    from helpers.head import SMALL, HeadConfig, make_model, state_dict

    from cmer_edge.bundle import load_bundle, save_bundle
    from cmer_edge.runtime.head import NativeHead

    cfg = HeadConfig(**dict(SMALL, modalities="audio"))
    tensors = state_dict(make_model(cfg, seed=0))
    with pytest.raises(ValueError, match="bimodal head"):
        NativeHead.from_state_dict(cfg, tensors, voice_weight=0.5)
    save_bundle(tmp_path / "audio", head_config=cfg, head_tensors=tensors, manifest={"name": "a"})
    with pytest.raises(BundleError, match="bimodal head"):
        NativeHead.from_bundle(tmp_path / "audio", voice_weight=0.5)
    assert NativeHead.from_bundle(tmp_path / "audio", voice_weight=0.0).voice_weight == 0.0
    with pytest.raises(BundleError, match="runtime.voice_weight: a voice weight"):
        save_bundle(tmp_path / "bad", head_config=cfg, head_tensors=tensors,
                    manifest={"name": "a", "runtime": {"voice_weight": 0.5}})
    both = HeadConfig(**SMALL)
    save_bundle(tmp_path / "both", head_config=both, head_tensors=state_dict(make_model(both, seed=0)),
                manifest={"name": "b", "runtime": {"voice_weight": 0.5}})
    assert load_bundle(tmp_path / "both").manifest.runtime.voice_weight == 0.5
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cfg = HeadConfig(**SMALL)
        NativeHead.from_state_dict(cfg, state_dict(make_model(cfg, seed=0)), voice_weight=2.0)
    # a text weight needs the same: the API, an override, a manifest
    audio = HeadConfig(**dict(SMALL, modalities="audio"))
    with pytest.raises(ValueError, match="a text weight .* bimodal head"):
        NativeHead.from_state_dict(audio, tensors, text_weight=0.5)
    with pytest.raises(BundleError, match="a text weight .* bimodal head"):
        NativeHead.from_bundle(tmp_path / "audio", text_weight=0.5)
    with pytest.raises(BundleError, match="runtime.text_weight: a text weight"):
        save_bundle(tmp_path / "bad_t", head_config=audio, head_tensors=tensors,
                    manifest={"name": "a", "runtime": {"text_weight": 0.5}})


def test_fit_takes_the_best_worst_gap_then_the_next_worst_then_the_smaller_weights():
    """Three dev sets built so that the voice gate is needed where an emotional voice meets other
    words and the text gate where a flat voice meets emotional words: the chosen pair is the one
    whose worst gap (then next-worst) is best, the smallest weights among equals, and it beats every
    pair without a text gate."""
    rng = np.random.default_rng(0)
    n = 300
    labels = rng.integers(1, 7, n)
    voice = np.full((n, 7), 0.02)
    voice[np.arange(n), labels] = 0.88  # an emotional voice, right
    words = (labels % 6) + 1             # the words say another emotion
    both = np.full((n, 7), 0.05)
    both[np.arange(n), words] = 0.45
    both[np.arange(n), labels] = 0.25    # the fused head leans to the words
    text_labels = rng.integers(1, 7, n)
    flat = np.full((n, 7), 0.1 / 6)
    flat[:, 0] = 0.9                     # a flat voice, heard as neutral
    text = np.full((n, 7), 0.02)
    text[np.arange(n), text_labels] = 0.88
    pulled = np.full((n, 7), 0.04)
    pulled[:, 0] = 0.5
    pulled[np.arange(n), text_labels] = 0.3  # the fused head pulled to neutral by the flat voice
    views = {"neutral_words": {"labels": labels, "both": both, "voice": voice, "text": both},
             "emotional_words": {"labels": labels, "both": both, "voice": voice, "text": both},
             "spoken_meld": {"labels": text_labels, "both": pulled, "voice": flat, "text": text}}
    rows = voice_trust.gap_table(views)
    assert [(r["voice_weight"], r["text_weight"]) for r in rows] == [
        (w, u) for w in voice_trust.GRID for u in voice_trust.GRID]
    assert rows[0]["neutral_words"]["gap"] < -50 and rows[0]["spoken_meld"]["gap"] < -50
    chosen = voice_trust.choose(rows)
    assert chosen["worst_gap"] == max(r["worst_gap"] for r in rows)
    assert chosen["worst_gap"] > max(r["worst_gap"] for r in rows if r["text_weight"] == 0)
    equals = [r for r in rows if r["gaps"] == chosen["gaps"]]
    assert all(r["voice_weight"] + r["text_weight"] >= chosen["voice_weight"] + chosen["text_weight"] for r in equals)
    assert 0 < chosen["voice_weight"] < 1 and 0 < chosen["text_weight"] < 1
    # ties on the worst gap go to the better next-worst gap
    tied = [{"voice_weight": 0.1, "text_weight": 0.0, "gaps": [-1.0, -0.5, 0.0]},
            {"voice_weight": 0.5, "text_weight": 0.5, "gaps": [-1.0, 0.2, 0.3]}]
    assert voice_trust.choose(tied) is tied[1]


def test_voice_trust_refuses_bad_bundles_in_one_line(tmp_path, capsys):
    from helpers.head import SMALL, HeadConfig, make_model, state_dict

    from cmer_edge.bundle import save_bundle

    cfg = HeadConfig(**SMALL)
    save_bundle(tmp_path / "norecipe", head_config=cfg, head_tensors=state_dict(make_model(cfg, seed=0)),
                manifest={"name": "x"})
    cases = [(tmp_path / "missing", "error: "), (tmp_path / "norecipe", "records no `cmer_edge.training.edge` command")]
    for path, says in cases:
        assert voice_trust.main([str(path)]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and says in err.strip().splitlines()[-1]


def test_recognizer_config_checks_the_voice_weight():
    from cmer_edge.runtime.recognizer import RecognizerConfig

    assert RecognizerConfig(voice_weight=0.4).voice_weight == 0.4 and RecognizerConfig().voice_weight is None
    assert RecognizerConfig(text_weight=0.3).text_weight == 0.3 and RecognizerConfig().text_weight is None
    for bad in (-0.1, 1.01, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="text_weight"):
            RecognizerConfig(text_weight=bad)
    for bad in (-0.1, 1.01, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="voice_weight"):
            RecognizerConfig(voice_weight=bad)
