"""Native head on CUDA vs the native CPU head (itself checked against PyTorch in test_head_parity).

Stated tolerance: relative error (max |cuda - cpu| / max |cpu|) <= 1e-4 for every precision. The
CUDA build uses --use_fast_math (__expf, approximate tanhf) and other summation orders, so it is
looser than the 1e-5 CPU-vs-PyTorch bound; both heads use the same quantised weights.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.head import EDGE, SMALL, HeadConfig, inputs, make_model, native, rel_error, torch

pytestmark = pytest.mark.cuda

CUDA_TOLERANCE = 1e-4

CONFIGS = [
    (dict(SMALL), "both"),
    (dict(SMALL, modalities="audio"), "audio"),
    (dict(SMALL, use_sca=False), "both_nosca"),
    (dict(EDGE), "edge"),
    (dict(), "paper"),
]


@pytest.mark.parametrize("overrides", [c[0] for c in CONFIGS], ids=[c[1] for c in CONFIGS])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_cuda_forward_matches_cpu(overrides, precision):
    cfg = HeadConfig(**overrides)
    model = make_model(cfg, seed=1)
    x_a, x_t, lengths, present = inputs(cfg, 3, 17, seed=1, with_present=cfg.modalities == "both")
    args = (x_a.numpy(), x_t.numpy(), lengths.numpy(), None if present is None else present.numpy())
    cpu = native(model, precision=precision).forward(*args)
    gpu = native(model, precision=precision, device="cuda").forward(*args)
    assert rel_error(gpu, cpu) <= CUDA_TOLERANCE


@pytest.mark.parametrize("overrides", [c[0] for c in CONFIGS], ids=[c[1] for c in CONFIGS])
@pytest.mark.parametrize("window", [1, 4, 16])
def test_cuda_session_matches_cpu(overrides, window):
    cfg = HeadConfig(**overrides)
    model = make_model(cfg, seed=2)
    sessions = [native(model, device=d).session(window) for d in ("cpu", "cuda")]
    gen = torch.Generator().manual_seed(window)
    for i in range(20):
        x_a = torch.randn(cfg.audio_dim, generator=gen).numpy()
        x_t = torch.randn(cfg.text_dim, generator=gen).numpy()
        if cfg.modalities == "both" and i % 5 == 3:
            x_t = None
        probs = [s.push(x_a if cfg.uses_audio else None, x_t if cfg.uses_text else None) for s in sessions]
        logits = [s.last_logits for s in sessions]
        assert rel_error(logits[1], logits[0]) <= CUDA_TOLERANCE
        np.testing.assert_allclose(probs[1], probs[0], atol=1e-5)


@pytest.mark.parametrize("overrides", [c[0] for c in CONFIGS], ids=[c[1] for c in CONFIGS])
def test_cuda_graph_session_replays_like_the_plain_session(overrides):
    """Graphs are recorded per (window length, modalities present, window sliding): push enough
    utterances, with a missing modality now and then, to hit recorded graphs again."""
    cfg = HeadConfig(**overrides)
    head = native(make_model(cfg, seed=4), device="cuda")
    plain, graphed = head.session(4), head.session(4, cuda_graph=True)
    gen = torch.Generator().manual_seed(4)
    for i in range(14):
        x_a = torch.randn(cfg.audio_dim, generator=gen).numpy()
        x_t = None if (cfg.modalities == "both" and i % 3 == 2) else torch.randn(cfg.text_dim, generator=gen).numpy()
        args = (x_a if cfg.uses_audio else None, x_t if cfg.uses_text else None)
        np.testing.assert_allclose(graphed.push(*args), plain.push(*args), rtol=1e-6, atol=1e-7)
        if i == 8:
            plain.reset()
            graphed.reset()


def test_cuda_lstm_layer_and_head_report_the_device():
    head = native(make_model(HeadConfig(**SMALL), seed=3), device="cuda")
    assert head.device == "cuda"
