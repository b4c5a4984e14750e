"""Fill a feature store: audio extractors over WAV files (parallel, resumable), text encoders over
transcripts (batched), with progress bars. Used by `python -m cmer_edge.extract`."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from cmer_edge.audio.convert import load_audio
from cmer_edge.features.registry import make_audio_extractor
from cmer_edge.features.store import FeatureStore
from cmer_edge.features.text import encode_texts, load_text_encoder

log = logging.getLogger("cmer_edge")
FLUSH_EVERY = 200

_worker_extractor = None


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
    global _worker_extractor
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    _worker_extractor = make_audio_extractor(name, **options)


def _extract_one(job: tuple[int, str | None]) -> tuple[int, np.ndarray | None, str]:
    """(row, vector or None, error message) for one WAV; a bad file is reported, never raised."""
    row, path = job
    if path is None:
        return row, None, "no audio"

    try:
        return row, _worker_extractor(load_audio(path)), ""
    except ValueError as exc:  # AudioError and extractor input errors are ValueErrors
        return row, None, str(exc)


def fill_audio_feature(store: FeatureStore, split: str, name: str, options: dict,
                       wavs: list[Path | None], workers: int = 2) -> dict:
    """Extract feature `name` for every pending row of `split` from `wavs` (None: no audio)."""
    store.declare(name, make_audio_extractor(name, **options).spec())  # refuses a changed spec
    writer = store.writer(split, name)
    pending = writer.pending()
    jobs = [(int(i), str(wavs[i]) if wavs[i] is not None else None) for i in pending]
    failures: dict[str, int] = {}
    bar = _progress(len(jobs), f"{split}/{name}")
    with ProcessPoolExecutor(max_workers=max(1, workers), initializer=_init_worker,
                             initargs=(name, options)) as pool:
        for done, (row, value, error) in enumerate(pool.map(_extract_one, jobs, chunksize=8), 1):
            writer.put(row, value)
            if error:
                failures[error.split(":")[0]] = failures.get(error.split(":")[0], 0) + 1
                log.debug("row %d: %s", row, error)
            bar.update(1)
            if done % FLUSH_EVERY == 0:
                writer.flush()
    writer.flush()
    bar.close()
    return {"extracted": len(jobs) - sum(failures.values()), "unusable": sum(failures.values()),
            "reasons": failures}


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
