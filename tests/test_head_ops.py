"""Single native ops against numpy references: the packed linear in every weight format (tiles of
1..6 rows, one row over cache-resident and streamed weights, k-blocking, ragged panels, threads) and masked multi-head attention (full, windowed,
last-rows-only), plus the machine probes (bandwidth, multiply-add rate) the benchmark uses."""

from __future__ import annotations

import numpy as np
import pytest

from cmer_edge import _native

LINEAR_SHAPES = [  # rows, out_dim, in_dim
    (1, 7, 5),
    (1, 256, 64),  # one row, cache-resident weights (an LSTM's W_hh): 4 panels per pass
    (1, 100, 48),  # the same with a pass of 3 panels, the last one ragged
    (1, 1792, 300),  # one row, streamed weights
    (3, 33, 17),
    (6, 16, 256),
    (13, 50, 700),  # rows > 6: k blocks of 256, a row group
    (64, 130, 40),
]


def _bf16(w: np.ndarray) -> np.ndarray:
    bits = w.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


def _int8(w: np.ndarray) -> np.ndarray:
    scale = np.abs(w).max(axis=1, keepdims=True) / 127.0
    q = np.clip(np.rint(w / np.where(scale > 0, scale, 1)), -127, 127)
    return (q * scale).astype(np.float64)


@pytest.mark.parametrize("precision, dequantise", [("fp32", lambda w: w), ("bf16", _bf16), ("int8", _int8)])
@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=lambda s: "N{}_M{}_K{}".format(*s))
def test_linear_matches_numpy(precision, dequantise, shape):
    rows, out_dim, in_dim = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((rows, in_dim)).astype(np.float32)
    w = (rng.standard_normal((out_dim, in_dim)) / np.sqrt(in_dim)).astype(np.float32)
    b = rng.standard_normal(out_dim).astype(np.float32)
    ref = x.astype(np.float64) @ dequantise(w).astype(np.float64).T + b
    for threads in (1, 2):
        got = _native.linear(x, w, b, precision=precision, num_threads=threads)
        assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
    relu = _native.linear(x, w, None, precision=precision, relu=True)
    np.testing.assert_allclose(relu, np.maximum(ref - b, 0), rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_reduced_precision_really_rounds():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64)).astype(np.float32)
    w = rng.standard_normal((32, 64)).astype(np.float32)
    exact = _native.linear(x, w)
    for precision in ("bf16", "int8"):
        assert np.abs(_native.linear(x, w, precision=precision) - exact).max() > 1e-4


def _attention_ref(q, k, v, lengths, heads, q_offset=0, left=-1, right=-1):
    batch, tq, width = q.shape
    d = width // heads
    out = np.zeros_like(q, dtype=np.float64)
    for b in range(batch):
        for i in range(tq):
            pos = q_offset + i
            keys = [j for j in range(lengths[b]) if (left < 0 or j >= pos - left) and (right < 0 or j <= pos + right)]
            for h in range(heads):
                if not keys:
                    continue
                sl = slice(h * d, (h + 1) * d)
                s = np.array([q[b, i, sl] @ k[b, j, sl] for j in keys], np.float64) / np.sqrt(d)
                p = np.exp(s - s.max())
                p /= p.sum()
                out[b, i, sl] = sum(pj * v[b, j, sl] for pj, j in zip(p, keys))
    return out


@pytest.mark.parametrize("case", [
    dict(batch=2, tq=5, tk=5, width=8, heads=2),
    dict(batch=3, tq=16, tk=16, width=256, heads=4),
    dict(batch=1, tq=1, tk=9, width=12, heads=3, q_offset=8),  # the live session's last row
    dict(batch=2, tq=7, tk=7, width=8, heads=1, left=2, right=0),  # causal window of 3
    dict(batch=2, tq=6, tk=6, width=16, heads=2, left=1, right=1),
    dict(batch=1, tq=4, tk=4, width=8, heads=2, q_offset=0, left=0, right=0, lengths=[2]),  # rows 2, 3 see nothing
], ids=["full", "paper_width", "last_row", "causal3", "band1", "empty_rows"])
def test_attention_matches_numpy(case):
    rng = np.random.default_rng(case["tk"] + case["width"])
    batch, tq, tk, width = case["batch"], case["tq"], case["tk"], case["width"]
    q = rng.standard_normal((batch, tq, width)).astype(np.float32)
    k = rng.standard_normal((batch, tk, width)).astype(np.float32)
    v = rng.standard_normal((batch, tk, width)).astype(np.float32)
    lengths = np.array(case.get("lengths", [tk] + list(rng.integers(1, tk + 1, batch - 1))), np.int32)
    kwargs = dict(q_offset=case.get("q_offset", 0), window_left=case.get("left", -1),
                  window_right=case.get("right", -1))
    got = _native.attention(q, k, v, lengths, case["heads"], **kwargs)
    ref = _attention_ref(q, k, v, lengths, case["heads"], kwargs["q_offset"], kwargs["window_left"],
                         kwargs["window_right"])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_attention_rejects_bad_shapes():
    q = np.zeros((1, 2, 6), np.float32)
    with pytest.raises(ValueError, match=r"width 6 must divide by num_heads 4"):
        _native.attention(q, q, q, np.array([2]), 4)
    with pytest.raises(ValueError, match=r"k must have shape \(1, \*, 6\), got \(1, 2, 5\)"):
        _native.attention(q, np.zeros((1, 2, 5), np.float32), q, np.array([2]), 2)
    with pytest.raises(ValueError, match=r"lengths\[0\]=3 outside 1..2"):
        _native.attention(q, q, q, np.array([3]), 2)


def test_linear_rejects_bad_input():
    w = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 3\), got \(2, 4\)"):
        _native.linear(np.zeros((2, 4), np.float32), w)
    with pytest.raises(ValueError, match=r"precision must be 'fp32', 'bf16' or 'int8', got 'fp8'"):
        _native.linear(np.zeros((2, 3), np.float32), w, precision="fp8")


def test_read_bandwidth_measures_something():
    result = _native.read_bandwidth(megabytes=16, passes=2, num_threads=1)
    assert 0.1 < result["median_gb_per_s"] <= result["best_gb_per_s"] < 10_000
    with pytest.raises(ValueError, match=r"need bytes >= 1 MiB"):
        _native.read_bandwidth(megabytes=0)


def test_multiply_add_rate_measures_something():
    result = _native.multiply_add_rate(passes=1, num_threads=1)
    assert result["num_threads"] == 1
    assert 0.1 < result["median_gmacs_per_s"] <= result["best_gmacs_per_s"] < 100_000
    with pytest.raises(ValueError, match=r"need passes >= 1, got 0"):
        _native.multiply_add_rate(passes=0)
