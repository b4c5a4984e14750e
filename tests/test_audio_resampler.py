"""The streaming resampler equals one-shot resample_poly whatever the chunking: no block-edge effects."""

from __future__ import annotations

from math import gcd

import numpy as np
import pytest
from scipy.signal import resample_poly

from cmer_edge.audio.convert import AudioError
from cmer_edge.audio.resampler import StreamResampler


def one_shot(x: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    g = gcd(from_hz, to_hz)
    return resample_poly(x, to_hz // g, from_hz // g).astype(np.float32)


def streamed(x: np.ndarray, from_hz: int, to_hz: int, chunk_sizes) -> np.ndarray:
    r = StreamResampler(from_hz, to_hz)
    out, i = [], 0
    for n in chunk_sizes:
        if i >= len(x):
            break
        out.append(r.push(x[i:i + n]))
        i += n
    assert i >= len(x)
    out.append(r.flush())
    return np.concatenate(out)


@pytest.mark.parametrize("from_hz", [8_000, 11_025, 22_050, 32_000, 44_100, 48_000, 16_000])
def test_random_chunking_equals_one_shot(from_hz):
    rng = np.random.default_rng(from_hz)
    x = (0.3 * rng.standard_normal(from_hz // 3 + 17)).astype(np.float32)
    chunks = rng.integers(1, 3000, size=10_000)
    y = streamed(x, from_hz, 16_000, chunks)
    ref = one_shot(x, from_hz, 16_000)
    assert y.dtype == np.float32 and len(y) == len(ref)
    np.testing.assert_allclose(y, ref, atol=2e-6)


def test_sine_is_continuous_across_callback_sized_blocks():
    rate = 44_100
    t = np.arange(rate) / rate
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    chunk = 441  # 10 ms callbacks
    y = streamed(x, rate, 16_000, [chunk] * 200)
    ref = one_shot(x, rate, 16_000)
    interior = slice(100, len(ref) - 100)
    np.testing.assert_allclose(y[interior], ref[interior], atol=2e-6)
    # resampling each block on its own (what the streaming resampler exists to avoid) is visibly wrong
    naive = np.concatenate([one_shot(x[i:i + chunk], rate, 16_000) for i in range(0, len(x), chunk)])
    assert np.abs(naive[interior] - ref[interior]).max() > 1e-2
    # sample-to-sample steps of the streamed output stay those of a 440 Hz sine
    max_step = 0.5 * 2 * np.pi * 440 / 16_000
    assert np.abs(np.diff(y[interior])).max() < 1.05 * max_step


def test_outputs_arrive_with_small_lookahead():
    r = StreamResampler(48_000, 16_000)
    out = r.push(np.ones(4800, np.float32))  # 100 ms in -> nearly 100 ms out, held back only by the filter
    assert 1600 - 20 <= len(out) <= 1600


def test_passthrough_and_errors():
    r = StreamResampler(16_000, 16_000)
    x = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(r.push(x), x)
    assert len(r.flush()) == 0
    with pytest.raises(RuntimeError, match="after flush"):
        r.push(x)
    with pytest.raises(AudioError, match="-5"):
        StreamResampler(-5, 16_000)
    with pytest.raises(AudioError, match="44100.5"):
        StreamResampler(44_100.5, 16_000)
