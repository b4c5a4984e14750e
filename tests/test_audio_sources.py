"""ArraySource / FileSource: fixed blocks on the stream clock, same blocks whatever the input
format, pacing, limits, bad input refused or counted; the drop-oldest queue's overrun policy."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from cmer_edge.audio.block_queue import DropOldestQueue
from cmer_edge.audio.blocks import AudioBlock, Blocker, StatsCounter, block_samples_for
from cmer_edge.audio.convert import AudioError
from cmer_edge.audio.resampler import StreamResampler
from cmer_edge.audio.sources import ArraySource, FileSource


def tone(seconds: float, rate: int, channels: int = 1, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x


def test_array_blocks_have_fixed_size_and_stream_clock():
    x = tone(1.0, 16_000)
    blocks = list(ArraySource(x, 16_000))
    assert [b.index for b in blocks] == list(range(len(blocks)))
    assert all(b.samples.shape == (512,) and b.samples.dtype == np.float32 for b in blocks)
    assert len(blocks) == int(np.ceil(16_000 / 512))
    assert blocks[5].start_s == pytest.approx(5 * 0.032) and blocks[5].end_s == pytest.approx(6 * 0.032)
    joined = np.concatenate([b.samples for b in blocks])
    np.testing.assert_array_equal(joined[:16_000], x)
    assert not joined[16_000:].any()  # the last block is zero-padded


def test_same_blocks_from_44k_stereo_file_and_array(tmp_path):
    x16 = tone(0.7, 16_000)
    x44 = np.repeat(StreamResampler(16_000, 44_100).push(x16)[:, None], 2, axis=1)
    path = tmp_path / "tone44k_stereo.wav"
    sf.write(str(path), x44, 44_100, subtype="FLOAT")
    from_file = np.concatenate([b.samples for b in FileSource(path, chunk_frames=1000)])
    from_array = np.concatenate([b.samples for b in ArraySource(x44, 44_100, chunk_frames=777)])
    np.testing.assert_allclose(from_file, from_array, atol=1e-6)
    # and the round trip 16k -> 44.1k -> 16k gives the original back (filter passband)
    interior = slice(200, len(x16) - 200)
    np.testing.assert_allclose(from_file[interior], x16[interior], atol=2e-3)


def test_max_seconds_and_other_block_sizes():
    x = tone(2.0, 16_000)
    blocks = list(ArraySource(x, 16_000, block_ms=64, max_seconds=0.5))
    assert all(len(b.samples) == 1024 for b in blocks)
    assert len(blocks) == 8 and blocks[-1].start_s < 0.5 <= blocks[-1].end_s
    with pytest.raises(ValueError, match="block_ms.*0.01"):
        ArraySource(x, 16_000, block_ms=0.01)
    with pytest.raises(ValueError, match="max_seconds.*-1"):
        ArraySource(x, 16_000, max_seconds=-1)


def test_realtime_pacing_and_close_from_another_thread():
    x = tone(0.64, 16_000)  # 20 blocks
    t0 = time.monotonic()
    n = sum(1 for _ in ArraySource(x, 16_000, realtime=True))
    elapsed = time.monotonic() - t0
    assert n == 20 and 0.6 <= elapsed < 1.6, elapsed
    t0 = time.monotonic()
    n = sum(1 for _ in ArraySource(x, 16_000))
    assert n == 20 and time.monotonic() - t0 < 0.5  # as fast as possible

    source = ArraySource(tone(60.0, 16_000), 16_000, realtime=True)
    threading.Timer(0.3, source.close).start()
    t0 = time.monotonic()
    with source:
        n = sum(1 for _ in source)
    assert time.monotonic() - t0 < 1.5 and 5 <= n <= 20 and source.closed


def test_bad_arrays_and_files_are_refused(tmp_path):
    with pytest.raises(AudioError, match="empty"):
        ArraySource(np.zeros(0, np.float32), 16_000)
    with pytest.raises(AudioError, match="2 non-finite values.*frame 3"):
        ArraySource(np.array([0, 0, 0, np.nan, np.inf], np.float32), 16_000)
    with pytest.raises(AudioError, match="dtype int16"):
        ArraySource(np.zeros(10, np.int16), 16_000)
    with pytest.raises(AudioError, match="0"):
        ArraySource(np.zeros(10, np.float32), 0)
    with pytest.raises(AudioError, match="not found"):
        FileSource(tmp_path / "missing.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wav file" * 10)
    with pytest.raises(AudioError, match="cannot read audio file .*garbage.wav"):
        FileSource(garbage)
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros((0, 1), np.float32), 16_000)
    with pytest.raises(AudioError, match="empty"):
        FileSource(empty)


def test_clipping_is_counted_and_warned_not_refused(caplog):
    x = tone(1.0, 16_000, amp=2.0).clip(-1, 1)  # a sine driven into the rails
    with caplog.at_level(logging.WARNING, logger="cmer_edge"):
        source = ArraySource(x, 16_000)
        blocks = list(source)
    expected = np.mean(np.abs(x) >= 0.999)
    assert len(blocks) == 32 and 0.5 < expected < 0.8
    assert source.stats.clipped_fraction == pytest.approx(expected)
    assert source.stats.input_samples == 16_000
    assert any("clipped" in r.message for r in caplog.records)
    clean = ArraySource(tone(1.0, 16_000), 16_000)
    list(clean)
    assert clean.stats.clipped_samples == 0 and clean.stats.blocks_out == 32


def test_nan_in_float_file_is_zeroed_and_counted(tmp_path):
    x = tone(0.5, 16_000)
    x[1000:1010] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(str(path), x, 16_000, subtype="FLOAT")
    source = FileSource(path)
    out = np.concatenate([b.samples for b in source])
    assert np.isfinite(out).all() and source.stats.nonfinite_samples == 10
    assert not out[1000:1010].any()


def test_a_source_iterates_once():
    source = ArraySource(tone(0.1, 16_000), 16_000)
    list(source)
    with pytest.raises(RuntimeError, match="once"):
        list(source)


def test_blocker_keeps_every_sample():
    rng = np.random.default_rng(1)
    b = Blocker(512)
    x = rng.standard_normal(5000).astype(np.float32)
    out, i = [], 0
    for n in (1, 511, 1, 1500, 37, 3000):
        out += b.push(x[i:i + n])
        i += n
    last = b.flush()
    joined = np.concatenate(out + [last])
    np.testing.assert_array_equal(joined[:5000], x[:5000])
    assert len(joined) % 512 == 0 and b.flush() is None
    assert block_samples_for(32) == 512 and block_samples_for(20) == 320


def test_drop_oldest_queue_bounds_a_too_slow_consumer(caplog):
    counter = StatsCounter()
    q = DropOldestQueue(8, counter, "test queue")
    received = []
    done = threading.Event()

    def producer():
        for i in range(200):  # a block every 1 ms
            q.put(AudioBlock(np.zeros(4, np.float32), i, i * 0.032))
            time.sleep(0.001)
        done.set()

    with caplog.at_level(logging.WARNING, logger="cmer_edge"):
        thread = threading.Thread(target=producer)
        thread.start()
        while not (done.is_set() and len(q) == 0):
            block = q.get(0.05)
            if block is not None:
                received.append(block.index)
                time.sleep(0.01)  # ten times too slow
        thread.join()
    stats = counter.snapshot()
    assert q.max_depth == 8
    assert stats.dropped_blocks == 200 - len(received) > 100
    assert stats.overruns >= 1
    assert received == sorted(received) and received[-1] == 199  # the newest survive
    assert any("overrun" in r.message for r in caplog.records)
    assert q.get(0.01) is None


def test_queue_rejects_bad_size():
    with pytest.raises(ValueError, match="0"):
        DropOldestQueue(0, StatsCounter())
