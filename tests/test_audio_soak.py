"""Soak: more than 10 minutes of speech and silence through FileSource + Silero VAD + endpointer:
every utterance found, memory bounded (Python heap via tracemalloc, process RSS for the C parts).
The front half of the pipeline soak test:
`python -m pytest -m slow tests/test_audio_soak.py --log-cli-level=INFO` (logs the measured numbers)."""

from __future__ import annotations

import gc
import logging
import tracemalloc
from pathlib import Path

import pytest

from cmer_edge.audio.segmenter import Segmenter
from cmer_edge.audio.sources import FileSource

from helpers.ci import need
from helpers.soak_scene import rss_bytes, write_soak_scene

pytestmark = pytest.mark.slow


def test_ten_minutes_all_utterances_bounded_memory(tmp_path: Path):
    from cmer_edge.testing.espeak import espeak_available

    need(espeak_available(), "espeak-ng is not installed (apt-get install espeak-ng)")
    need(Path("/proc/self/statm").is_file(), "RSS measurement needs /proc (Linux)")
    path = tmp_path / "soak.wav"
    truth = write_soak_scene(path)

    segmenter = Segmenter()
    found = []
    rss_samples, heap_samples = [], []
    with FileSource(path) as source:
        assert source.duration_s >= 600.0
        for block in source:
            for utt in segmenter.feed(block):
                found.append((utt.start_s, utt.end_s, utt.truncated))
            if block.index % 2000 == 0:  # every 64 s of audio
                rss_samples.append(rss_bytes())
                if block.index == 2000:  # warmed up (imports done, buffers sized): watch the heap from here
                    gc.collect()
                    tracemalloc.start()
                heap_samples.append(tracemalloc.get_traced_memory()[0])
        for utt in segmenter.flush():
            found.append((utt.start_s, utt.end_s, utt.truncated))
    heap_now, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    logging.getLogger("cmer_edge").info(
        "soak: %.0f s of audio, %d utterances, VAD %.2f ms/frame, heap peak %.2f MiB, heap growth %.3f MiB, "
        "RSS growth %.1f MiB", source.stats.blocks_out * 0.032, len(found),
        1000 * segmenter.vad_seconds / segmenter.frames_seen, heap_peak / 2**20,
        (heap_now - heap_samples[1]) / 2**20, (rss_samples[-1] - rss_samples[1]) / 2**20)

    assert source.stats.blocks_out * 0.032 >= 600.0
    assert len(found) == len(truth), (len(found), len(truth))
    for (start_s, end_s, truncated), t in zip(found, truth):
        assert start_s <= t.start_s + 0.05 and end_s >= t.end_s - 0.05 and not truncated, (start_s, end_s, t)
    # at most one open utterance (<= 15 s of audio, ~1 MiB) plus its concatenation and a file chunk
    assert heap_peak < 4 * 2**20, f"Python heap peak {heap_peak / 2**20:.1f} MiB while streaming"
    assert heap_now - heap_samples[1] < 2**20, f"Python heap grew {(heap_now - heap_samples[1]) / 2**20:.2f} MiB"
    growth = rss_samples[-1] - rss_samples[1]  # after the first minute warmed everything up
    assert growth < 16 * 2**20, f"RSS grew {growth / 2**20:.1f} MiB over {len(rss_samples)} minutes"
