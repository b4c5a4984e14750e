"""Fill a feature store: audio extractors over WAV files (parallel, resumable), text encoders over
transcripts (batched), with progress bars. Used by `python -m cmer_edge.extract`.

Every clip's audio features are computed on what the live segmenter hands on from it
(`audio.segmenter.clip_speech`: its speech span; the whole file where the VAD finds no speech, counted
in the report), so a model trained on a store hears clips as `listen` does; the store records the cut
(`FeatureStore.require_clip_cut`)."""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from cmer_edge.audio.segmenter import CLIP_CUT, clip_speech
from cmer_edge.audio.vad import SileroVad
from cmer_edge.features.registry import make_audio_extractor
from cmer_edge.features.store import FeatureStore
from cmer_edge.features.text import encode_texts, load_text_encoder

log = logging.getLogger("cmer_edge")
FLUSH_EVERY = 200

_worker_extractor = None
_worker_vad = None


def _progress(total: int, desc: str):
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="utt", smoothing=0.05)
    except ImportError:  # tqdm is in the train extra; extraction still works without it
        class _Plain:
            def __init__(self):
                self.n = 0

            def update(self, k):
                self.n += k
                if self.n % FLUSH_EVERY < k:
                    log.info("%s: %d/%d", desc, self.n, total)

            def close(self):
                log.info("%s: %d/%d done", desc, self.n, total)

        return _Plain()


def _init_worker(name: str, options: dict) -> None:
    global _worker_extractor, _worker_vad
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    _worker_extractor = make_audio_extractor(name, **options)
    _worker_vad = SileroVad()


def _extract_one(job: tuple[int, str | None]) -> tuple[int, np.ndarray | None, str, bool]:
    """(row, vector or None, error message, speech found) for one WAV, its features computed on its
    speech span; a bad file is reported, never raised."""
    row, path = job
    if path is None:
        return row, None, "no audio", True
    try:
        audio, found = clip_speech(path, _worker_vad)
        return row, _worker_extractor(audio), "", found
    except ValueError as exc:  # AudioError and extractor input errors are ValueErrors
        return row, None, str(exc), True


def fill_audio_feature(store: FeatureStore, split: str, name: str, options: dict,
                       wavs: list[Path | None], workers: int = 2) -> dict:
    """Extract feature `name` for every pending row of `split` from `wavs` (None: no audio)."""
    store.require_clip_cut(CLIP_CUT)  # refuses a store whose clips were featurised otherwise
    store.declare(name, make_audio_extractor(name, **options).spec())  # refuses a changed spec
    writer = store.writer(split, name)
    pending = writer.pending()
    jobs = [(int(i), str(wavs[i]) if wavs[i] is not None else None) for i in pending]
    failures: dict[str, int] = {}
    no_speech = 0
    bar = _progress(len(jobs), f"{split}/{name}")
    # spawned, not forked: a fork of a process that has run ONNX Runtime (the VAD, an encoder) can hang
    # in the child's first ONNX Runtime call
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(name, options)) as pool:
        for done, (row, value, error, found) in enumerate(pool.map(_extract_one, jobs, chunksize=8), 1):
            writer.put(row, value)
            no_speech += value is not None and not found
            if error:
                failures[error.split(":")[0]] = failures.get(error.split(":")[0], 0) + 1
                log.debug("row %d: %s", row, error)
            bar.update(1)
            if done % FLUSH_EVERY == 0:
                writer.flush()
    writer.flush()
    bar.close()
    return {"extracted": len(jobs) - sum(failures.values()), "unusable": sum(failures.values()),
            "reasons": failures, "whole_clip_no_speech_found": no_speech}


def fill_text_feature(store: FeatureStore, split: str, name: str, spec, texts: list[str],
                      model_path: str | None = None, batch_size: int = 32) -> dict:
    """Encode every pending row's text with the PyTorch encoder of `spec` (TextEncoderSpec)."""
    encoder, tokenizer = load_text_encoder(spec, model_path=model_path)
    # "model" is where the weights really come from (a fine-tuned copy when given), so the exporter and
    # the runtime rebuild exactly this encoder; "base_model" keeps the id it was fine-tuned from.
    full_spec = dict(spec.to_dict(), model=str(model_path or spec.model), base_model=spec.model, dim=encoder.dim)
    store.declare(name, full_spec)
    writer = store.writer(split, name)
    pending = writer.pending()
    bar = _progress(len(pending), f"{split}/{name}")
    empty = 0
    for start in range(0, len(pending), FLUSH_EVERY):
        rows = pending[start:start + FLUSH_EVERY]
        values = encode_texts(encoder, tokenizer, [texts[i] for i in rows], max_tokens=spec.max_tokens,
                              batch_size=batch_size)
        for row, value in zip(rows, values):
            usable = bool(texts[row].strip())
            empty += not usable
            writer.put(int(row), value if usable else None)
        writer.flush()
        bar.update(len(rows))
    bar.close()
    return {"encoded": len(pending) - empty, "empty": empty}
