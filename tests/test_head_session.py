"""Native live Session vs the PyTorch reference run on the same window (protocol.predict_live).

Every push must equal CMRoberta run on the last window_utts utterances, read at the newest one:
windows shorter and longer than the dialogue, missing modalities (None), reset, the ablation
configs, edge and paper dims, and the reduced-precision heads against their own offline forward.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.head import (
    EDGE,
    SMALL,
    TOLERANCE,
    HeadConfig,
    make_model,
    native,
    rel_error,
    torch,
)

from cmer_edge.model.protocol import predict_live


def _dialogue(cfg: HeadConfig, utts: int, seed: int, missing: bool = False):
    gen = torch.Generator().manual_seed(seed)
    x_a = torch.randn(utts, cfg.audio_dim, generator=gen)
    x_t = torch.randn(utts, cfg.text_dim, generator=gen)
    present = torch.ones(utts, 2)
    if missing and cfg.modalities == "both":
        present[1::4, 0] = 0  # audio missing
        present[3::4, 1] = 0  # text missing (never both)
    return x_a, x_t, present


def _push_all(session, cfg: HeadConfig, x_a, x_t, present):
    logits, probs = [], []
    for i in range(x_a.shape[0]):
        a = x_a[i].numpy() if present[i, 0] else None
        t = x_t[i].numpy() if present[i, 1] else None
        if not cfg.uses_audio:
            a = None
        if not cfg.uses_text:
            t = None
        probs.append(session.push(a, t))
        logits.append(session.last_logits.copy())
    return np.stack(logits), np.stack(probs)


CONFIGS = [
    (dict(SMALL), "both"),
    (dict(SMALL, modalities="audio"), "audio"),
    (dict(SMALL, modalities="text"), "text"),
    (dict(SMALL, use_sca=False), "both_nosca"),
    (dict(SMALL, sca_layers=3), "sca3"),
]


@pytest.mark.parametrize("overrides", [c[0] for c in CONFIGS], ids=[c[1] for c in CONFIGS])
@pytest.mark.parametrize("window", [1, 3, 8, 20])
def test_session_matches_predict_live(overrides, window):
    cfg = HeadConfig(**overrides)
    model = make_model(cfg, seed=window)
    x_a, x_t, present = _dialogue(cfg, 12, seed=window, missing=True)
    with torch.no_grad():
        ref = predict_live(model, x_a, x_t, window, present).numpy()
    session = native(model).session(window)
    logits, probs = _push_all(session, cfg, x_a, x_t, present)
    assert rel_error(logits, ref) <= TOLERANCE
    np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(ref), -1).numpy(), rtol=1e-5, atol=1e-7)
    assert session.pushed == 12 and session.size == min(12, window)


def test_session_edge_dims_window_wraps():
    cfg = HeadConfig(**EDGE)
    model = make_model(cfg, seed=1)
    x_a, x_t, present = _dialogue(cfg, 20, seed=1, missing=True)
    with torch.no_grad():
        ref = predict_live(model, x_a, x_t, 16, present).numpy()
    logits, _ = _push_all(native(model, num_threads=2).session(16), cfg, x_a, x_t, present)
    assert rel_error(logits, ref) <= TOLERANCE


def test_session_paper_dims():
    cfg = HeadConfig()
    model = make_model(cfg, seed=2)
    x_a, x_t, present = _dialogue(cfg, 3, seed=2)
    with torch.no_grad():
        ref = predict_live(model, x_a, x_t, 2, present).numpy()
    logits, _ = _push_all(native(model, num_threads=2).session(2), cfg, x_a, x_t, present)
    assert rel_error(logits, ref) <= TOLERANCE


def test_reset_starts_a_new_dialogue():
    cfg = HeadConfig(**SMALL)
    model = make_model(cfg, seed=3)
    head = native(model)
    first_a, first_t, present = _dialogue(cfg, 7, seed=3)
    second_a, second_t, _ = _dialogue(cfg, 5, seed=4)
    fresh, _ = _push_all(head.session(4), cfg, second_a, second_t, present)
    session = head.session(4)
    _push_all(session, cfg, first_a, first_t, present)
    session.reset()
    assert session.pushed == 0 and session.size == 0
    again, _ = _push_all(session, cfg, second_a, second_t, present)
    np.testing.assert_array_equal(again, fresh)


def test_sessions_of_one_head_are_independent():
    cfg = HeadConfig(**SMALL)
    model = make_model(cfg, seed=5)
    head = native(model)
    x_a, x_t, present = _dialogue(cfg, 6, seed=5)
    alone, _ = _push_all(head.session(3), cfg, x_a, x_t, present)
    one, two = head.session(3), head.session(3)
    interleaved = []
    for i in range(6):
        one.push(x_a[i].numpy(), x_t[i].numpy())
        interleaved.append(one.last_logits.copy())
        two.push(x_t[i, :1].repeat(cfg.audio_dim).numpy(), x_a[i, :1].repeat(cfg.text_dim).numpy())
    np.testing.assert_array_equal(np.stack(interleaved), alone)


@pytest.mark.parametrize("precision, bound", [("bf16", 2e-2), ("int8", 5e-2)])
def test_reduced_precision_session_matches_its_forward_and_stays_close(precision, bound):
    cfg = HeadConfig(**EDGE)
    model = make_model(cfg, seed=6)
    x_a, x_t, present = _dialogue(cfg, 5, seed=6)
    head = native(model, precision=precision)
    logits, _ = _push_all(head.session(8), cfg, x_a, x_t, present)
    lengths = np.arange(1, 6)
    xa = np.stack([np.pad(x_a[:n].numpy(), ((0, 5 - n), (0, 0))) for n in lengths])
    xt = np.stack([np.pad(x_t[:n].numpy(), ((0, 5 - n), (0, 0))) for n in lengths])
    offline = head.forward(xa, xt, lengths)[np.arange(5), lengths - 1]
    assert rel_error(logits, offline) <= TOLERANCE
    with torch.no_grad():
        fp32 = predict_live(model, x_a, x_t, 8, present).numpy()
    assert 1e-5 < rel_error(logits, fp32) < bound, "reduced precision must change the outputs, a little"
