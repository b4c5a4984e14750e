"""Dialogues from a feature store: per dialogue x_a [T, Da], x_t [T, Dt], present [T, 2], labels [T].

Audio features named in `audio` are concatenated in order (the paper's emo_large ⊕ OpenL3); a row
whose audio or text input was unusable gets present = 0 for that modality. Batching pads dialogues
(paper protocol) or cuts live windows (live protocol).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cmer_edge.features.normalise import speaker_zscore
from cmer_edge.features.store import FeatureStore
from cmer_edge.model.protocol import window_bounds


@dataclass
class Dialogue:
    dialogue_id: str
    utterance_ids: list
    x_a: np.ndarray      # [T, Da] (Da = 0 when no audio features)
    x_t: np.ndarray      # [T, Dt]
    present: np.ndarray  # [T, 2] float32
    labels: np.ndarray   # [T] int64
    fold: int | None = None  # the index's 'fold' field (cross-validation corpora such as EmoDB)
    x_a_raw: np.ndarray | None = None  # audio before per-speaker z-scoring (audio_norm="speaker")
    keep: np.ndarray | None = None     # [T, 2] bool: the modality whose label it is; modality dropout never hides it


def load_dialogues(store: FeatureStore, split: str, audio: list[str], text: str | None,
                   label_key: str = "label", audio_norm: str = "global") -> list[Dialogue]:
    """audio_norm="speaker": z-score the audio features per speaker (cmer_edge.features.normalise);
    "global": leave them to the head's own normalisation."""
    if audio_norm not in ("global", "speaker"):
        raise ValueError(f"audio_norm must be 'global' or 'speaker', got {audio_norm!r}")
    rows = store.index(split)
    n = len(rows)
    parts, audio_ok = [], np.ones(n, bool)
    for name in audio:
        values, ok = store.load(split, name)
        parts.append(values)
        audio_ok &= ok
    x_a = np.concatenate(parts, axis=1) if parts else np.zeros((n, 0), np.float32)
    if text:
        x_t, text_ok = store.load(split, text)
    else:
        x_t, text_ok = np.zeros((n, 0), np.float32), np.ones(n, bool)
    x_a_raw = None
    if audio_norm == "speaker" and parts:
        x_a_raw, x_a = x_a, speaker_zscore(x_a, [row.get("speaker", "") for row in rows], audio_ok)
    present = np.stack([audio_ok & bool(audio), text_ok & bool(text)], axis=1).astype(np.float32)
    labels = np.array([row[label_key] for row in rows], np.int64)
    order: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        order.setdefault(str(row["dialogue_id"]), []).append(i)
    dialogues = []
    for dialogue_id, idx in order.items():
        idx = sorted(idx, key=lambda i: int(rows[i].get("utterance_id", 0)))
        dialogues.append(Dialogue(dialogue_id, [rows[i].get("utterance_id") for i in idx], x_a[idx], x_t[idx],
                                  present[idx], labels[idx], rows[idx[0]].get("fold"),
                                  None if x_a_raw is None else x_a_raw[idx]))
    return dialogues


@dataclass
class Batch:
    x_a: np.ndarray       # [B, T, Da]
    x_t: np.ndarray       # [B, T, Dt]
    present: np.ndarray   # [B, T, 2]
    lengths: np.ndarray   # [B]
    labels: np.ndarray    # [B, T], -100 where no loss is taken
    positions: list[tuple[int, int]]  # (dialogue index, utterance index) of each labelled cell
    keep: np.ndarray | None = None  # [B, T, 2] bool: never hidden by modality dropout


def _pad(dialogues: list[Dialogue], pieces: list[tuple[int, int, int]], last_only: bool) -> Batch:
    """pieces: (dialogue index, start, end) slices to place one per batch row."""
    width = max(end - start for _, start, end in pieces)
    d0 = dialogues[pieces[0][0]]
    b = len(pieces)
    batch = Batch(np.zeros((b, width, d0.x_a.shape[1]), np.float32), np.zeros((b, width, d0.x_t.shape[1]), np.float32),
                  np.zeros((b, width, 2), np.float32), np.zeros(b, np.int64), np.full((b, width), -100, np.int64), [],
                  np.zeros((b, width, 2), bool))
    for row, (d, start, end) in enumerate(pieces):
        dlg, n = dialogues[d], end - start
        batch.x_a[row, :n], batch.x_t[row, :n] = dlg.x_a[start:end], dlg.x_t[start:end]
        batch.present[row, :n], batch.lengths[row] = dlg.present[start:end], n
        if dlg.keep is not None:
            batch.keep[row, :n] = dlg.keep[start:end]
        first = n - 1 if last_only else 0
        batch.labels[row, first:n] = dlg.labels[start + first:end]
        batch.positions += [(d, start + i) for i in range(first, n)]
    return batch


def pieces_for(dialogues: list[Dialogue], protocol: str, window_utts: int) -> list[tuple[int, int, int]]:
    """The batch rows of one epoch: whole dialogues (paper) or every live window (live)."""
    if protocol == "paper":
        return [(d, 0, len(dlg.labels)) for d, dlg in enumerate(dialogues)]
    if protocol == "live":
        return [(d, s, e) for d, dlg in enumerate(dialogues) for s, e in window_bounds(len(dlg.labels), window_utts)]
    raise ValueError(f"protocol must be 'paper' or 'live', got {protocol!r}")


def batches(dialogues: list[Dialogue], protocol: str, window_utts: int, batch_size: int,
            rng: np.random.Generator | None = None) -> list[Batch]:
    pieces = pieces_for(dialogues, protocol, window_utts)
    order = rng.permutation(len(pieces)) if rng is not None else np.arange(len(pieces))
    return [_pad(dialogues, [pieces[i] for i in order[s:s + batch_size]], protocol == "live")
            for s in range(0, len(order), batch_size)]
