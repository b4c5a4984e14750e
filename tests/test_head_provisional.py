"""Provisional scoring and replacement in the native live Session, its exception safety, and the
CPU fallback of a disabled (CUDA) head.

`push(..., provisional=True)` then `replace_last(final)` must leave the session exactly as a direct
push of the final inputs (every later push identical, bit for bit on CPU), and both scores must
equal the PyTorch reference on the same window (protocol.predict_live). A push that raises at any
stage leaves the window unchanged.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from helpers.head import EDGE, SMALL, TOLERANCE, HeadConfig, make_model, native, rel_error, state_dict, torch

from cmer_edge import _native
from cmer_edge.model.protocol import predict_live
from cmer_edge.runtime.head import NativeHead

CONFIGS = [
    (dict(SMALL), "both"),
    (dict(SMALL, modalities="audio"), "audio"),
    (dict(SMALL, modalities="text"), "text"),
    (dict(SMALL, use_sca=False), "both_nosca"),
]


def _utterances(cfg: HeadConfig, n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, cfg.audio_dim, generator=gen), torch.randn(n, cfg.text_dim, generator=gen)


def _args(cfg: HeadConfig, a, t):
    return (a.numpy() if a is not None and cfg.uses_audio else None,
            t.numpy() if t is not None and cfg.uses_text else None)


def _provisional_inputs(cfg: HeadConfig, i: int, x_a, x_t, noise_a, noise_t):
    """What a provisional push has: the audio alone when bimodal (the transcript comes later), else
    other features of the same modality."""
    if cfg.modalities == "both":
        return x_a[i], None
    return noise_a[i], noise_t[i]


@pytest.mark.parametrize("overrides", [c[0] for c in CONFIGS], ids=[c[1] for c in CONFIGS])
@pytest.mark.parametrize("window", [1, 3, 8])
def test_provisional_then_replace_equals_pushing_the_final(overrides, window):
    cfg = HeadConfig(**overrides)
    model = make_model(cfg, seed=window)
    n = 12
    x_a, x_t = _utterances(cfg, n, seed=window)
    noise_a, noise_t = _utterances(cfg, n, seed=100 + window)
    head = native(model)
    replaced, direct = head.session(window), head.session(window)
    final_logits, provisional_logits = [], []
    for i in range(n):
        pa, pt = _provisional_inputs(cfg, i, x_a, x_t, noise_a, noise_t)
        replaced.push(*_args(cfg, pa, pt), provisional=True)
        assert replaced.provisional and replaced.pushed == i + 1 and replaced.size == min(i + 1, window)
        provisional_logits.append(replaced.last_logits.copy())
        probs = replaced.replace_last(*_args(cfg, x_a[i], x_t[i]))
        assert not replaced.provisional and replaced.pushed == i + 1 and replaced.size == min(i + 1, window)
        expected = direct.push(*_args(cfg, x_a[i], x_t[i]))
        np.testing.assert_array_equal(replaced.last_logits, direct.last_logits)
        np.testing.assert_array_equal(probs, expected)
        final_logits.append(replaced.last_logits.copy())

    with torch.no_grad():
        ref_final = predict_live(model, x_a, x_t, window).numpy()
    assert rel_error(np.stack(final_logits), ref_final) <= TOLERANCE
    # Each provisional score: the final utterances before it, the provisional inputs last.
    for i in (0, n // 2, n - 1):
        pa, pt = _provisional_inputs(cfg, i, x_a, x_t, noise_a, noise_t)
        lo = max(0, i - window + 1)
        a = torch.cat([x_a[lo:i], (pa if pa is not None else torch.zeros(cfg.audio_dim))[None]])
        t = torch.cat([x_t[lo:i], (pt if pt is not None else torch.zeros(cfg.text_dim))[None]])
        present = torch.ones(len(a), 2)
        present[-1, 1] = 0.0 if pt is None else 1.0
        with torch.no_grad():
            ref = predict_live(model, a, t, window, present).numpy()[-1]
        assert rel_error(provisional_logits[i], ref) <= TOLERANCE


def test_replace_last_can_stay_provisional_and_edge_dims_slide():
    cfg = HeadConfig(**EDGE)
    model = make_model(cfg, seed=7)
    x_a, x_t = _utterances(cfg, 20, seed=7)
    head = native(model, num_threads=2)
    replaced, direct = head.session(16), head.session(16)
    for i in range(20):
        replaced.push(x_a[i].numpy(), None, provisional=True)
        replaced.replace_last(x_a[i].numpy(), x_t[(i + 3) % 20].numpy(), provisional=True)  # a first transcript
        assert replaced.provisional
        replaced.replace_last(x_a[i].numpy(), x_t[i].numpy())
        direct.push(x_a[i].numpy(), x_t[i].numpy())
        np.testing.assert_array_equal(replaced.last_logits, direct.last_logits)
    with torch.no_grad():
        ref = predict_live(model, x_a, x_t, 16).numpy()[-1]
    assert rel_error(replaced.last_logits, ref) <= TOLERANCE


def test_replace_last_needs_a_provisional_newest_utterance():
    cfg = HeadConfig(**SMALL)
    head = native(make_model(cfg, seed=1))
    session = head.session(4)
    x_a, x_t = _utterances(cfg, 2, seed=1)
    with pytest.raises(RuntimeError, match="nothing pushed yet"):
        session.replace_last(x_a[0].numpy(), x_t[0].numpy())
    session.push(x_a[0].numpy(), x_t[0].numpy())
    with pytest.raises(RuntimeError, match="pushed as final; push it with provisional=True"):
        session.replace_last(x_a[1].numpy(), x_t[1].numpy())
    session.push(x_a[1].numpy(), None, provisional=True)
    session.reset()
    assert not session.provisional
    with pytest.raises(RuntimeError, match="nothing pushed yet"):
        session.replace_last(x_a[1].numpy(), x_t[1].numpy())
    with pytest.raises(ValueError, match="replace_last needs the features of at least one modality"):
        session.replace_last(None, None)


# -- exception safety ------------------------------------------------------------------------------

@pytest.mark.parametrize("stage", [1, 2, 3])
@pytest.mark.parametrize("op", ["push", "replace"])
@pytest.mark.parametrize("overrides", [c[0] for c in CONFIGS[:2]], ids=[c[1] for c in CONFIGS[:2]])
def test_a_failed_push_or_replace_leaves_the_window_unchanged(stage, op, overrides):
    """Faults injected while projecting (1), after the window changed (2) and after scoring (3),
    in a growing and in a sliding window: the session then goes on exactly like one that never saw
    the failed call."""
    cfg = HeadConfig(**overrides)
    x_a, x_t = _utterances(cfg, 10, seed=stage)
    head = native(make_model(cfg, seed=stage))
    faulty, clean = head.session(4), head.session(4)
    for i in range(10):
        args = _args(cfg, x_a[i], x_t[i])
        for s in (faulty, clean):
            s.push(*args, provisional=True)
        if i in (2, 6):  # window growing (2 of 4 used), then sliding
            other = _args(cfg, x_a[(i + 5) % 10], x_t[(i + 5) % 10])
            _native.testing.inject_session_fault(faulty._natives[0], stage)
            with pytest.raises(RuntimeError, match=f"injected fault at stage {stage}"):
                (faulty.push if op == "push" else faulty.replace_last)(*other)
            assert faulty.pushed == clean.pushed and faulty.size == clean.size and faulty.provisional
        for s in (faulty, clean):
            s.replace_last(*args)
        np.testing.assert_array_equal(faulty.last_logits, clean.last_logits)


# -- disabled head: CudaError and the CPU fallback --------------------------------------------------

def _cpu_head_that_can_fall_back(model) -> NativeHead:
    """A head built as device="auto" builds it on CUDA; here the CUDA head is stood in for by a CPU
    head that keeps its weights for the fallback, disabled by the test hook as a CUDA error would."""
    built = native(model)
    return NativeHead(built.members, built.config, fallback=[state_dict(model)])


def test_disabled_head_falls_back_to_cpu_and_replays_the_window(caplog):
    cfg = HeadConfig(**SMALL)
    model = make_model(cfg, seed=9)
    x_a, x_t = _utterances(cfg, 9, seed=9)
    head = _cpu_head_that_can_fall_back(model)
    assert head.can_fall_back
    session, clean = head.session(3), native(model).session(3)
    for i in range(9):
        if i == 5:
            _native.testing.disable_head(head.members[0], "an illegal memory access was encountered (simulated)")
        session.push(x_a[i].numpy(), None, provisional=True)
        clean.push(x_a[i].numpy(), None, provisional=True)
        session.replace_last(x_a[i].numpy(), x_t[i].numpy())
        clean.replace_last(x_a[i].numpy(), x_t[i].numpy())
        np.testing.assert_array_equal(session.last_logits, clean.last_logits)
        assert session.pushed == clean.pushed and session.size == clean.size
    assert "CUDA head disabled (an illegal memory access was encountered (simulated)); continuing on the CPU" \
        in caplog.text
    assert not head.can_fall_back and head.device == "cpu"
    with pytest.raises(RuntimeError, match="no CPU fallback"):
        head.fall_back_to_cpu()


def test_sessions_of_a_failed_head_all_move_to_its_one_cpu_head():
    cfg = HeadConfig(**SMALL)
    model = make_model(cfg, seed=8)
    x_a, x_t = _utterances(cfg, 4, seed=8)
    head = _cpu_head_that_can_fall_back(model)
    one, two, clean = head.session(2), head.session(2), native(model).session(2)
    for i in range(4):
        if i == 2:
            _native.testing.disable_head(head.members[0], "simulated")
        for s in (one, two, clean):
            s.push(x_a[i].numpy(), x_t[i].numpy())
        np.testing.assert_array_equal(one.last_logits, clean.last_logits)
        np.testing.assert_array_equal(two.last_logits, clean.last_logits)
    assert one._natives[0] is not two._natives[0] and one._on is two._on is head.members


def test_disabled_head_without_fallback_raises_cuda_error_naming_the_first_error():
    cfg = HeadConfig(**SMALL)
    model = make_model(cfg, seed=10)
    head = native(model)
    session = head.session(2)
    x_a, x_t = _utterances(cfg, 1, seed=10)
    _native.testing.disable_head(head.members[0], "first failure")
    _native.testing.disable_head(head.members[0], "second failure")
    assert head.members[0].disabled and head.members[0].disabled_reason == "first failure"
    with pytest.raises(_native.CudaError, match=r"disabled after an earlier CUDA error \(first failure\)"):
        session.push(x_a[0].numpy(), x_t[0].numpy())
    with pytest.raises(_native.CudaError, match="first failure"):
        head.forward(x_a[None].numpy(), x_t[None].numpy(), np.array([1], np.int32))
    assert session.pushed == 0


def test_self_check_names_the_difference(caplog):
    cfg = HeadConfig(**SMALL)
    model = make_model(cfg, seed=11)
    head = native(model)
    assert head.self_check(native(model)) is None
    other = native(make_model(cfg, seed=12))
    message = head.self_check(other)
    assert message is not None and "push 1: max |logit difference|" in message and "> 0.001" in message


def test_auto_device_without_cuda_is_the_cpu_head():
    if _native.cuda_available():
        pytest.skip("this machine has CUDA: device='auto' builds the CUDA head (tests/test_head_cuda.py)")
    model = make_model(HeadConfig(**SMALL), seed=13)
    head = NativeHead.from_state_dict(model.cfg, state_dict(model), device="auto")
    assert head.device == "cpu" and not head.can_fall_back


def test_native_head_config_is_a_bound_class():
    cfg = _native.HeadConfig(audio_dim=5, text_dim=6, hidden=4, num_heads=2, modalities="audio", use_sca=False)
    assert repr(cfg) == ("HeadConfig(audio_dim=5, text_dim=6, hidden=4, sca_layers=2, num_heads=2, ffn_dim=512, "
                         "classifier_dim=256, num_classes=7, modalities='audio', use_sca=False)")
    assert cfg.num_branches == 3 and cfg.width == 8
    with pytest.raises(ValueError, match="HeadConfig.modalities must be 'both', 'audio' or 'text', got 'video'"):
        _native.HeadConfig(modalities="video")
    with pytest.raises(ValueError, match="2\\*hidden=8 must divide by num_heads=3"):
        _native.HeadConfig(hidden=4, num_heads=3)
    cfg.hidden = 0
    with pytest.raises(ValueError, match="HeadConfig.hidden must be >= 1, got 0"):
        cfg.validate()
    with pytest.raises(TypeError):
        _native.HeadConfig(4096)  # keyword arguments only
    model = make_model(HeadConfig(**SMALL), seed=14)
    assert native(model).members[0].config == _native.HeadConfig(**{k: v for k, v in SMALL.items()})
