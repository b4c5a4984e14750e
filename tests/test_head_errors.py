"""Bad input to the native head fails with a ValueError that names the value or the shape."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.head import SMALL, HeadConfig, inputs, make_model, native, state_dict

from cmer_edge.runtime.head import NativeHead

CFG = HeadConfig(**SMALL)  # audio_dim 20, text_dim 24


@pytest.fixture(scope="module")
def model():
    return make_model(CFG, seed=0)


@pytest.fixture(scope="module")
def head(model):
    return native(model)


def _args():
    x_a, x_t, lengths, _ = inputs(CFG, 2, 3, seed=0)
    return dict(x_a=x_a.numpy(), x_t=x_t.numpy(), lengths=lengths.numpy())


def _nan(shape):
    x = np.zeros(shape, np.float32)
    x.flat[-1] = np.nan
    return x


@pytest.mark.parametrize("change, message", [
    (dict(x_a=np.zeros((2, 3, 21), np.float32)), r"x_a must have shape \(\*, \*, 20\), got \(2, 3, 21\)"),
    (dict(x_a=np.zeros((2, 20), np.float32)), r"x_a must have shape \(\*, \*, 20\), got \(2, 20\)"),
    (dict(x_t=np.zeros((2, 4, 24), np.float32)), r"x_t must have shape \(2, 3, 24\), got \(2, 4, 24\)"),
    (dict(x_t=None), r"x_t is required by this head's config, got None"),
    (dict(x_a=_nan((2, 3, 20))), r"x_a holds a non-finite value \(nan\) at flat index 119 of shape \(2, 3, 20\)"),
    (dict(x_t=np.full((2, 3, 24), np.inf, np.float32)), r"x_t holds a non-finite value \(inf\)"),
    (dict(x_a=np.zeros((2, 3, 20), np.int64)), r"x_a must be a floating-point array, got dtype int64 with shape \(2, 3, 20\)"),
    (dict(x_a=np.zeros((2, 3, 20), np.complex64)), r"x_a must be a floating-point array, got dtype complex64"),
    (dict(x_t=np.full((2, 3, 24), "a")), r"x_t must be a floating-point array, got dtype <U1"),
    (dict(lengths=np.array([3, 4])), r"lengths\[1\]=4 outside 1..3 for inputs of shape \(2, 3, 20\)"),
    (dict(lengths=np.array([0, 1])), r"lengths\[0\]=0 outside 1..3"),
    (dict(lengths=np.array([3])), r"lengths must have shape \(2,\), got \(1,\)"),
    (dict(lengths=np.array([3.0, 2.0])), r"lengths must be an integer array, got dtype float64 with shape \(2,\)"),
    (dict(present=np.ones((2, 3), np.float32)), r"present must have shape \(2, 3, 2\), got \(2, 3\)"),
    (dict(present=_nan((2, 3, 2))), r"present holds a non-finite value"),
])
def test_forward_rejects_bad_input(head, change, message):
    args = _args()
    args.update(change)
    with pytest.raises(ValueError, match=message):
        head.forward(**args)


@pytest.mark.parametrize("x_a, x_t, message", [
    (np.zeros(21, np.float32), np.zeros(24, np.float32), r"x_a must have shape \(20,\), got \(21,\)"),
    (np.zeros((1, 20), np.float32), None, r"x_a must have shape \(20,\), got \(1, 20\)"),
    (None, _nan(24), r"x_t holds a non-finite value \(nan\) at flat index 23 of shape \(24,\)"),
    (np.zeros(20, np.int32), None, r"x_a must be a floating-point array, got dtype int32 with shape \(20,\)"),
    (None, None, r"push needs the features of at least one modality this head uses \(modalities='both'\)"),
])
def test_push_rejects_bad_input(head, x_a, x_t, message):
    session = head.session(4)
    with pytest.raises(ValueError, match=message):
        session.push(x_a, x_t)
    assert session.pushed == 0, "a rejected push must not enter the window"


def test_unimodal_push_needs_its_modality():
    cfg = HeadConfig(**SMALL, modalities="audio")
    session = native(make_model(cfg, seed=1)).session(2)
    with pytest.raises(ValueError, match=r"modalities='audio'.*x_a=None, x_t=array of shape \(24,\)"):
        session.push(None, np.zeros(24, np.float32))
    assert session.push(np.zeros(20, np.float32), None).shape == (7,)


@pytest.mark.parametrize("window", [0, -3, 2.5, True])
def test_bad_window_names_the_value(head, window):
    with pytest.raises(ValueError, match=r"window_utts must be an int >= 1, got " + repr(window).replace(".", r"\.")):
        head.session(window)


def test_cuda_graph_needs_a_cuda_head(head):
    with pytest.raises(ValueError, match=r"cuda_graph=True needs a head on device 'cuda', this one is on 'cpu'"):
        head.session(3, cuda_graph=True)


@pytest.mark.parametrize("kwargs, message", [
    (dict(precision="fp16"), r"precision must be one of \('fp32', 'bf16', 'int8'\), got 'fp16'"),
    (dict(device="gpu"), r"device must be one of \('cpu', 'cuda', 'auto'\), got 'gpu'"),
    (dict(num_threads=-1), r"num_threads must be None or an int >= 0, got -1"),
])
def test_bad_options_name_the_value(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        native(model, **kwargs)


def test_weights_that_do_not_fit_the_config_are_named(model):
    tensors = state_dict(model)
    missing = {k: v for k, v in tensors.items() if k != "text.residual.norm.bias"}
    with pytest.raises(ValueError, match=r"missing tensor 'text.residual.norm.bias'"):
        NativeHead.from_state_dict(CFG, missing)
    with pytest.raises(ValueError, match=r"unexpected tensors for this config: 'extra.weight'"):
        NativeHead.from_state_dict(CFG, {**tensors, "extra.weight": np.zeros(3, np.float32)})
    bad = dict(tensors, **{"mid_ffn.weight": np.zeros((16, 15), np.float32)})
    with pytest.raises(ValueError, match=r"tensor 'mid_ffn.weight' has shape \(16, 15\), expected \(16, 16\)"):
        NativeHead.from_state_dict(CFG, bad)
    with pytest.raises(ValueError, match=r"'mid_fusion.lstm.weight_ih_l0' has shape \(32, 16\), expected \(32, 8\)"):
        NativeHead.from_state_dict(HeadConfig(**SMALL, modalities="audio"), tensors)  # a bimodal state dict
    nan = dict(tensors, **{"audio.mean": np.full(20, np.nan, np.float32)})
    with pytest.raises(ValueError, match=r"audio.mean holds a non-finite value"):
        NativeHead.from_state_dict(CFG, nan)
    ints = dict(tensors, **{"audio.mean": np.zeros(20, np.int64)})
    with pytest.raises(ValueError, match=r"tensor 'audio.mean' must be a floating-point array, got dtype int64"):
        NativeHead.from_state_dict(CFG, ints)


def test_cuda_request_without_cuda_says_so(model):
    from cmer_edge import _native

    if _native.cuda_available():
        pytest.skip("a CUDA device is available: the CPU-only message cannot be checked here")
    with pytest.raises(RuntimeError, match=r"CUDA|cuda"):
        native(model, device="cuda")
