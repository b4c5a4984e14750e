"""Dialogues computed straight from MELD with a bundle's own runtime encoders (torch-free): what
the deployed model sees, including the exported encoder's precision. Audio comes from the clips
when the MELD root has them (MELD.Raw), else that modality is missing."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cmer_edge.bundle import Bundle
from cmer_edge.data.clip_audio import ClipError, ExtractConfig, decode_clip
from cmer_edge.data.meld import load_meld_split
from cmer_edge.features.normalise import speaker_zscore
from cmer_edge.runtime.backends import BackendConfig
from cmer_edge.runtime.encoders import open_audio_extractor, open_text_encoder
from cmer_edge.training.dialogues import Dialogue

log = logging.getLogger("cmer_edge")


def meld_dialogues(bundle: Bundle, root: str | Path, split: str, *, onnx_precision: str | None = None,
                   threads: int | None = None) -> list[Dialogue]:
    cfg = bundle.head_config
    backends = BackendConfig.from_env(onnx_precision=onnx_precision, threads=threads)
    dialogues = load_meld_split(root, split)
    utts = [u for d in dialogues for u in d.utterances]
    x_t = np.zeros((len(utts), cfg.text_dim), np.float32)
    text_ok = np.zeros(len(utts), bool)
    if cfg.uses_text:
        encoder = open_text_encoder(bundle, backends)
        usable = [i for i, u in enumerate(utts) if u.text.strip()]
        if usable:
            x_t[usable] = encoder.encode([utts[i].text for i in usable])
        text_ok[usable] = True
    x_a = np.zeros((len(utts), cfg.audio_dim), np.float32)
    audio_ok = np.zeros(len(utts), bool)
    if cfg.uses_audio and any(u.audio_path is not None for u in utts):
        extractor, _ = open_audio_extractor(bundle, backends)
        for i, u in enumerate(utts):
            try:
                x_a[i] = extractor(decode_clip(u.audio_path, ExtractConfig()).samples)
                audio_ok[i] = True
            except (ClipError, ValueError) as exc:
                log.info("no audio for %s: %s", u.clip_name, exc)
    if audio_ok.any() and bundle.manifest.audio_norm == "speaker":
        x_a = speaker_zscore(x_a, [u.speaker for u in utts], audio_ok)
    present = np.stack([audio_ok, text_ok], axis=1).astype(np.float32)
    out, row = [], 0
    for d in dialogues:
        idx = slice(row, row + len(d.utterances))
        out.append(Dialogue(str(d.dialogue_id), [u.utterance_id for u in d.utterances], x_a[idx], x_t[idx],
                            present[idx], np.array(d.labels, np.int64)))
        row += len(d.utterances)
    return out
