"""Native LSTM layer vs torch.nn.LSTM (the head's reference), incl. padding and reverse."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.ci import need_module

torch = need_module("torch")

from cmer_edge import _native  # noqa: E402

SHAPES = [  # batch, steps, input dim, hidden
    (1, 1, 5, 4),
    (3, 7, 50, 16),
    (2, 64, 33, 128),
    (4, 16, 300, 128),
]


def _torch_bilstm(x: torch.Tensor, lengths: torch.Tensor, lstm: torch.nn.LSTM) -> np.ndarray:
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out.detach().numpy()


def _weights(lstm: torch.nn.LSTM, suffix: str) -> list[np.ndarray]:
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    return [getattr(lstm, n + suffix).detach().numpy() for n in names]


def _random_case(batch, steps, dim, hidden, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
    x = torch.randn(batch, steps, dim, generator=gen)
    lengths = torch.randint(1, steps + 1, (batch,), generator=gen)
    lengths[0] = steps
    return lstm, x, lengths


def _run_native(lstm, x, lengths, device):
    lens = lengths.numpy().astype(np.int32)
    fwd = _native.lstm_layer(x.numpy(), lens, *_weights(lstm, ""), reverse=False, device=device)
    bwd = _native.lstm_layer(x.numpy(), lens, *_weights(lstm, "_reverse"), reverse=True, device=device)
    return np.concatenate([fwd, bwd], axis=-1)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}_T{}_D{}_H{}".format(*s))
def test_bilstm_matches_torch(shape):
    lstm, x, lengths = _random_case(*shape, seed=sum(shape))
    ref = _torch_bilstm(x, lengths, lstm)
    got = _run_native(lstm, x, lengths, "cpu")
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    for b, n in enumerate(lengths.tolist()):
        assert not got[b, n:].any(), "positions past the length must be zero"


@pytest.mark.cuda
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}_T{}_D{}_H{}".format(*s))
def test_bilstm_cuda_matches_cpu(shape):
    lstm, x, lengths = _random_case(*shape, seed=7 + sum(shape))
    cpu = _run_native(lstm, x, lengths, "cpu")
    gpu = _run_native(lstm, x, lengths, "cuda")
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)  # fast-math exp/tanh, other sum order


def _args(batch=2, steps=3, dim=4, hidden=2):
    return dict(
        x=np.zeros((batch, steps, dim), np.float32),
        lengths=np.full(batch, steps, np.int32),
        w_ih=np.zeros((4 * hidden, dim), np.float32),
        w_hh=np.zeros((4 * hidden, hidden), np.float32),
        b_ih=np.zeros(4 * hidden, np.float32),
        b_hh=np.zeros(4 * hidden, np.float32),
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(x=np.zeros((2, 3), np.float32)), r"x must have shape \(\*, \*, \*\), got \(2, 3\)"),
        (dict(w_ih=np.zeros((8, 5), np.float32)), r"w_ih must have shape \(8, 4\), got \(8, 5\)"),
        (dict(lengths=np.array([3, 4], np.int32)), r"lengths\[1\]=4 outside 1..3"),
        (dict(lengths=np.array([0, 1], np.int32)), r"lengths\[0\]=0 outside 1..3"),
        (dict(lengths=np.array([3], np.int32)), r"lengths must have shape \(2,\), got \(1,\)"),
        (dict(x=np.full((2, 3, 4), np.nan, np.float32)), r"x holds a non-finite value"),
    ],
)
def test_bad_inputs_raise_value_error(change, message):
    args = _args()
    args.update(change)
    with pytest.raises(ValueError, match=message):
        _native.lstm_layer(**args)


def test_bad_device_names_the_value():
    with pytest.raises(ValueError, match="'gpu'"):
        _native.lstm_layer(**_args(), device="gpu")


def test_float64_and_fortran_order_inputs_are_converted():
    lstm, x, lengths = _random_case(2, 5, 6, 3, seed=3)
    ref = _torch_bilstm(x, lengths, lstm)[..., :3]
    w = [np.asfortranarray(a.astype(np.float64)) for a in _weights(lstm, "")]
    got = _native.lstm_layer(np.asfortranarray(x.numpy().astype(np.float64)), lengths.numpy(), *w)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
