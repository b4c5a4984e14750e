"""The PyTorch reference head: shapes, masks (padding cannot leak), ablations, protocols."""

from __future__ import annotations

import pytest

from helpers.ci import need_module

torch = need_module("torch")

from cmer_edge.model.cm_roberta import CMRoberta  # noqa: E402
from cmer_edge.model.config import HeadConfig  # noqa: E402
from cmer_edge.model.protocol import predict_live, window_bounds  # noqa: E402

SMALL = dict(audio_dim=12, text_dim=9, hidden=8, num_heads=2, ffn_dim=16, classifier_dim=10)
CONFIGS = [HeadConfig(**SMALL), HeadConfig(**SMALL, modalities="audio"), HeadConfig(**SMALL, modalities="text"),
           HeadConfig(**SMALL, use_sca=False)]


def _model(cfg: HeadConfig, seed: int = 0) -> CMRoberta:
    torch.manual_seed(seed)
    return CMRoberta(cfg).eval()


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.modalities}-sca{c.use_sca}")
def test_output_shape_and_padding_does_not_leak(cfg):
    model = _model(cfg)
    x_a, x_t = torch.randn(1, 5, cfg.audio_dim), torch.randn(1, 5, cfg.text_dim)
    with torch.no_grad():
        alone = model(x_a, x_t, torch.tensor([5]))
        junk_a, junk_t = torch.randn(2, 9, cfg.audio_dim) * 100, torch.randn(2, 9, cfg.text_dim) * 100
        junk_a[0, :5], junk_t[0, :5] = x_a[0], x_t[0]
        batched = model(junk_a, junk_t, torch.tensor([5, 9]))
    assert alone.shape == (1, 5, cfg.num_classes)
    torch.testing.assert_close(batched[0, :5], alone[0], rtol=1e-5, atol=1e-5)


def test_ablations_change_the_parameter_set():
    names = {c.modalities + str(c.use_sca): set(_model(c).state_dict()) for c in CONFIGS}
    assert not any(k.startswith("text.") for k in names["audioTrue"])
    assert not any(k.startswith("audio.") for k in names["textTrue"])
    assert not any("cross_layers" in k or "self_layers" in k for k in names["bothFalse"])
    assert any("cross_layers" in k for k in names["bothTrue"])


def test_missing_modality_equals_its_mean_input():
    """present=0 for audio must act exactly like audio features equal to the normalisation mean."""
    cfg = CONFIGS[0]
    model = _model(cfg)
    model.set_normalisation("audio", torch.randn(cfg.audio_dim), torch.rand(cfg.audio_dim) + 0.5)
    x_t = torch.randn(1, 4, cfg.text_dim)
    present = torch.ones(1, 4, 2)
    present[..., 0] = 0
    with torch.no_grad():
        hidden = model(torch.randn(1, 4, cfg.audio_dim), x_t, torch.tensor([4]), present)
        at_mean = model(model.audio.mean.expand(1, 4, -1), x_t, torch.tensor([4]))
    torch.testing.assert_close(hidden, at_mean, rtol=1e-5, atol=1e-5)


def test_paper_protocol_sees_the_future_live_does_not():
    cfg = CONFIGS[0]
    model = _model(cfg)
    x_a, x_t = torch.randn(6, cfg.audio_dim), torch.randn(6, cfg.text_dim)
    x_a2, x_t2 = x_a.clone(), x_t.clone()
    x_a2[5], x_t2[5] = torch.randn(cfg.audio_dim), torch.randn(cfg.text_dim)  # change the last utterance
    with torch.no_grad():
        live1, live2 = predict_live(model, x_a, x_t, 3), predict_live(model, x_a2, x_t2, 3)
        full1 = model(x_a[None], x_t[None], torch.tensor([6]))[0]
        full2 = model(x_a2[None], x_t2[None], torch.tensor([6]))[0]
    torch.testing.assert_close(live1[:5], live2[:5])          # the past cannot depend on the future
    assert not torch.allclose(full1[:5], full2[:5], atol=1e-6)  # the whole-dialogue protocol does


@pytest.mark.parametrize("window", [1, 3, 6, 10])
def test_live_equals_running_each_window(window):
    cfg = CONFIGS[0]
    model = _model(cfg, seed=window)
    x_a, x_t = torch.randn(6, cfg.audio_dim), torch.randn(6, cfg.text_dim)
    with torch.no_grad():
        live = predict_live(model, x_a, x_t, window)
        for i, (start, end) in enumerate(window_bounds(6, window)):
            ref = model(x_a[None, start:end], x_t[None, start:end], torch.tensor([end - start]))[0, -1]
            torch.testing.assert_close(live[i], ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [dict(hidden=0), dict(num_heads=3), dict(modalities="video"), dict(dropout=1.0)])
def test_bad_config_names_the_value(bad):
    with pytest.raises(ValueError, match=str(list(bad.values())[0])):
        HeadConfig(**{**SMALL, **bad})
