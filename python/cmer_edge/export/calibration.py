"""int8 calibration for TensorRT: batches of real inputs at the profile's opt shapes.

With dynamic shapes TensorRT calibrates at the calibration profile's opt shapes, so every batch
must have exactly those shapes. Sources: MELD transcripts tokenised with the bundle's own
tokenizer (text encoder), the feature store the head was trained from (head: live-protocol
windows of x_a, x_t, lengths, present), or any `.npz` files of named input arrays. (TensorRT
10.1 deprecates implicit int8 calibration in favour of explicit Q/DQ graphs; it still builds, and
fp16 is the default precision.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from cmer_edge.backends.tensorrt_engine import DeviceBuffers
from cmer_edge.features.store import FeatureStore
from cmer_edge.model.protocol import window_bounds
from cmer_edge.training.dialogues import load_dialogues

log = logging.getLogger("cmer_edge")


def check_batch(feeds: dict[str, np.ndarray], opt: dict[str, list[int]], where: str) -> dict[str, np.ndarray]:
    if set(feeds) != set(opt):
        raise ValueError(f"{where}: calibration inputs {sorted(feeds)} != the engine inputs {sorted(opt)}")
    for name, shape in opt.items():
        if list(feeds[name].shape) != list(shape):
            raise ValueError(f"{where}: {name} has shape {list(feeds[name].shape)}, calibration needs the "
                             f"profile's opt shape {shape}")
    return feeds


def load_calibration_npz(path: str | Path, opt: dict[str, list[int]]) -> list[dict[str, np.ndarray]]:
    """Batches from one .npz or a directory of .npz files (sorted), each checked against `opt`."""
    root = Path(path)
    files = sorted(root.glob("*.npz")) if root.is_dir() else [root]
    if not files or not files[0].is_file():
        raise ValueError(f"no calibration .npz files at {root}")
    batches = []
    for file in files:
        with np.load(file) as data:
            batches.append(check_batch({k: data[k] for k in data.files}, opt, str(file)))
    return batches


def write_calibration_npz(out_dir: str | Path, batches: Iterable[dict[str, np.ndarray]]) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, feeds in enumerate(batches):
        paths.append(out / f"batch{i:05d}.npz")
        np.savez(paths[-1], **feeds)
    return paths


def text_calibration_batches(texts: list[str], tokenizer_json: str | Path, *, tokens: int, batch: int = 1,
                             pad_id: int = 1, limit: int = 512) -> list[dict[str, np.ndarray]]:
    """input_ids / attention_mask batches [batch, tokens] from real transcripts, tokenised with the
    bundle's text_tokenizer.json (torch-free), truncated or padded to `tokens`."""
    if tokens < 2 or batch < 1:
        raise ValueError(f"need tokens >= 2 and batch >= 1, got tokens={tokens}, batch={batch}")
    texts = [t for t in texts if t.strip()][:limit]
    if len(texts) < batch:
        raise ValueError(f"{len(texts)} non-empty texts are fewer than one batch of {batch}")
    tok = Tokenizer.from_file(str(tokenizer_json))
    ids = np.full((len(texts), tokens), pad_id, np.int64)
    mask = np.zeros((len(texts), tokens), np.int64)
    for row, enc in enumerate(tok.encode_batch(texts)):
        seq = enc.ids[:tokens - 1] + enc.ids[-1:] if len(enc.ids) > tokens else enc.ids  # keep </s>
        ids[row, :len(seq)], mask[row, :len(seq)] = seq, 1
    n = len(texts) // batch * batch
    return [{"input_ids": ids[i:i + batch], "attention_mask": mask[i:i + batch]} for i in range(0, n, batch)]


def _store_names(bundle) -> tuple[list[str], str | None]:
    """Feature-store names of the head's audio parts and text feature (features.* 'name' fields)."""
    features, cfg = bundle.manifest.features, bundle.head_config
    audio = features.audio if cfg.uses_audio else None
    audio_names = [p.name for p in audio.parts] if audio is not None else []
    text = features.text.name if cfg.uses_text and features.text is not None else None
    if (cfg.uses_audio and not audio_names) or (cfg.uses_text and not text):
        raise ValueError(f"bundle {bundle.path}: features.audio/.text do not name the store features "
                         "(train with python -m cmer_edge.train to get them)")
    return audio_names, text


def head_calibration_batches(store_root: str | Path, split: str, bundle, *, batch: int, utterances: int,
                             limit: int = 512) -> list[dict[str, np.ndarray]]:
    """Head inputs from a feature store: the live protocol's windows (each utterance with up to
    utterances-1 predecessors), padded to exactly `utterances`, `batch` windows per batch."""
    audio_names, text = _store_names(bundle)
    dialogues = load_dialogues(FeatureStore.open(store_root), split, audio_names, text)
    windows = [(d, s, e) for d in dialogues for s, e in window_bounds(len(d.labels), utterances)][:limit]
    cfg = bundle.head_config
    batches = []
    for first in range(0, len(windows) // batch * batch, batch):
        feeds = {"x_a": np.zeros((batch, utterances, cfg.audio_dim), np.float32),
                 "x_t": np.zeros((batch, utterances, cfg.text_dim), np.float32),
                 "lengths": np.zeros(batch, np.int64), "present": np.zeros((batch, utterances, 2), np.float32)}
        for row, (d, s, e) in enumerate(windows[first:first + batch]):
            feeds["x_a"][row, :e - s], feeds["x_t"][row, :e - s] = d.x_a[s:e], d.x_t[s:e]
            feeds["present"][row, :e - s], feeds["lengths"][row] = d.present[s:e], e - s
        batches.append({k: v for k, v in feeds.items()
                        if (k != "x_a" or cfg.uses_audio) and (k != "x_t" or cfg.uses_text)})
    if not batches:
        raise ValueError(f"{store_root}/{split}: {len(windows)} windows are fewer than one batch of {batch}")
    return batches


def make_calibrator(trt, batches: list[dict[str, np.ndarray]], cache_path: Path | None):
    """A trt.IInt8EntropyCalibrator2 feeding `batches` from device buffers (cuda-python)."""
    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = iter(batches)
            self._buffers = DeviceBuffers()
            self._count = 0

        def get_batch_size(self) -> int:
            return 1  # explicit batch: the batch is part of each input's shape

        def get_batch(self, names: list[str]):
            feeds = next(self._batches, None)
            if feeds is None:
                log.info("int8 calibration used %d batches", self._count)
                return None
            self._count += 1
            return [self._buffers.upload(name, np.ascontiguousarray(feeds[name])) for name in names]

        def read_calibration_cache(self):
            if cache_path is not None and Path(cache_path).is_file():
                return Path(cache_path).read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            if cache_path is not None:
                Path(cache_path).write_bytes(bytes(cache))

    return Calibrator()
