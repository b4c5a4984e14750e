"""Soak: more than 10 minutes of dialogue through the whole live loop (VAD, endpointer, Whisper ASR,
openSMILE, text encoder, native head session): one event per utterance, none dropped, memory
bounded. `python -m pytest -m slow tests/test_runtime_soak.py --log-cli-level=INFO`."""

from __future__ import annotations

import gc
import logging
import tracemalloc
from pathlib import Path

import pytest

from helpers.ci import need
from helpers.soak_scene import rss_bytes, write_soak_scene

pytestmark = pytest.mark.slow


def test_ten_minutes_through_the_recognizer(tmp_path: Path, tiny_bundle):
    from cmer_edge.audio.sources import FileSource
    from cmer_edge.testing.espeak import espeak_available
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    need(espeak_available(), "espeak-ng is not installed (apt-get install espeak-ng)")
    path = tmp_path / "soak.wav"
    truth = write_soak_scene(path)
    # as fast as possible, so the queue bound matters: give it room for the whole test
    rec = Recognizer(RecognizerConfig(bundle=str(tiny_bundle), asr="whisper", max_queued_utterances=len(truth) + 1))
    events, rss, heap = [], [], []
    for event in rec.stream(FileSource(path), events="final"):  # one final event per utterance
        events.append(event)
        if len(events) == 10:
            gc.collect()
            tracemalloc.start()
        if len(events) % 10 == 0:
            rss.append(rss_bytes())
            heap.append(tracemalloc.get_traced_memory()[0])
    heap_now, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rec.close()
    logging.getLogger("cmer_edge").info(
        "runtime soak: %d events for %d utterances, dropped %d, heap peak %.2f MiB, heap growth %.3f MiB, "
        "RSS growth %.1f MiB", len(events), len(truth), rec.stats.dropped_utterances, heap_peak / 2**20,
        (heap_now - heap[0]) / 2**20, (rss[-1] - rss[0]) / 2**20)
    assert truth[-1].end_s > 600
    assert len(events) == len(truth) and rec.stats.dropped_utterances == 0
    heard = [e for e, t in zip(events, truth) if e.text and set(e.text.lower().split()) & set(t.text.lower().split())]
    assert len(heard) >= 0.8 * len(truth), f"ASR text matched only {len(heard)} of {len(truth)} utterances"
    assert all(e.label is not None and sum(e.probs.values()) == pytest.approx(1.0, abs=1e-5) for e in events)
    assert heap_now - heap[0] < 2 * 2**20, f"Python heap grew {(heap_now - heap[0]) / 2**20:.2f} MiB"
    assert rss[-1] - rss[0] < 32 * 2**20, f"RSS grew {(rss[-1] - rss[0]) / 2**20:.1f} MiB"
