"""The edge recipe's data: training, selection and report sets, built from its command-line arguments.

`build(args, extractor, encoder, cache)` is the one place that turns `training.edge`'s arguments into
dialogues, so that a step after training (`training.voice_trust`) can rebuild the same kind of dev sets
from the command a bundle records. Every random draw comes from `args.seed`, in a fixed order.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cmer_edge.data.meld import load_meld_split
from cmer_edge.data.speech_manifest import Clip
from cmer_edge.training import edge_data, fusion_pairs
from cmer_edge.training.channel_copies import is_channel_copy
from cmer_edge.training.dialogues import Dialogue


@dataclass
class EdgeSets:
    clips: list[Clip]
    data: dict[str, np.ndarray]           # the clips' cached features (edge_data.manifests_features)
    train_rows: np.ndarray                # clip indices trained on
    meld: dict[str, list[Dialogue]]       # MELD train / dev / test dialogues (text; some with clip audio)
    clip_train: list[Dialogue]            # clip copies (k = args.online_k) and their word twins
    clip_dev: list[Dialogue]              # the dev speakers' clips and spoken MELD dev lines (k = 0, 10)
    clip_dev_neutral: list[Dialogue]      # dev clips saying neutral MELD dev lines (the voice decides)
    clip_dev_emotional: list[Dialogue]    # neutral dev clips saying emotional MELD dev lines (the voice decides)
    clip_test: dict[int, list[Dialogue]]  # held-out speakers' clips, k = 0 and 10
    audio_prior: dict[int, np.ndarray]    # by k: every clip normalised after k other clips of its speaker
    lines: dict[tuple[str, bool], np.ndarray] = field(default_factory=dict)  # (split, neutral) -> text features
    meld_texts: dict[str, list[list[str]]] = field(default_factory=dict)     # split -> each dialogue's lines
    paired: dict[str, int] = field(default_factory=dict)                      # counts of each kind of pair


def _with_audio_dim(dialogues, dim: int):
    for d in dialogues:
        d.x_a = np.zeros((len(d.labels), dim), np.float32)
        d.x_a_raw = np.zeros((len(d.labels), dim), np.float32)
    return dialogues


def _with_text_dim(dialogues, dim: int):
    for d in dialogues:
        if d.x_t.shape[1] != dim:
            d.x_t = np.zeros((len(d.labels), dim), np.float32)
    return dialogues


def build(args: argparse.Namespace, extractor, encoder, cache: Path) -> EdgeSets:
    """The sets of `training.edge`'s arguments (see its module doc)."""
    clips, data = edge_data.manifests_features(extractor, encoder, args.manifest, cache)
    speakers = [c.speaker_key for c in clips]
    corpus = np.array([c.corpus for c in clips])
    spoken_split = np.array([fusion_pairs.spoken_meld_split(c) for c in corpus])
    held = np.isin(speakers, args.holdout)
    dev = (np.isin(speakers, args.dev_speakers) | (spoken_split == "dev")) & ~held
    train = ~held & ~dev & (spoken_split != "test") & ~np.isin(corpus, args.exclude_corpus) & data["audio_ok"]
    raw = data["x_a"]
    prior_mean, prior_var = raw[train].mean(0), raw[train].var(0)
    rng = np.random.default_rng(args.seed)

    def normalised(k: int) -> np.ndarray:
        return edge_data.online_normalised(raw, speakers, prior_mean, prior_var, k, rng, data["audio_ok"])

    by_k = {k: normalised(k) for k in sorted(set(args.online_k) | {0, 10})}
    clip_train = [d for k in args.online_k
                  for d in edge_data.clip_dialogues(data, clips, np.flatnonzero(train), by_k[k], f"k{k}")]
    dev_rows = np.flatnonzero(dev)
    clip_dev = [d for k in (0, 10) for d in edge_data.clip_dialogues(data, clips, dev_rows, by_k[k], f"k{k}")]
    held_rows = np.flatnonzero(held)
    clip_test = {k: edge_data.clip_dialogues(data, clips, held_rows, by_k[k], f"k{k}") for k in (0, 10)}
    meld = {}
    if args.meld_dir is not None:
        meld = {s: _with_audio_dim(edge_data.meld_split(encoder, args.meld_dir, s, cache), extractor.dim)
                for s in ("train", "dev", "test")}
    for group in [clip_train, clip_dev, *clip_test.values()]:
        _with_text_dim(group, encoder.dim)
        fusion_pairs.mark_deciding(group)
    sets = EdgeSets(clips, data, np.flatnonzero(train), meld, clip_train, clip_dev, [], [], clip_test, by_k)
    if not meld:
        return sets
    sets.paired = fusion_pairs.pair_meld_with_voices(meld["train"], clip_train, args.pair, args.neutral_voice, rng)
    fusion_pairs.pair_meld_with_voices(meld["dev"], clip_dev, args.pair, args.neutral_voice, rng)
    texts = {s: [[u.text for u in d.utterances] for d in load_meld_split(args.meld_dir, s)] for s in ("train", "dev")}
    sets.meld_texts = texts
    sets.lines = {(s, neutral): fusion_pairs.meld_lines(meld[s], texts[s], args.neutral_min_words, neutral=neutral)
                  for s in ("train", "dev") for neutral in (True, False)}
    # twins (words, a flat voice) only of the clips themselves: a channel copy would repeat its original's pairs
    rows = np.tile(np.flatnonzero(train), len(args.online_k))
    clips_alone = [d for d, i in zip(clip_train, rows, strict=True) if not is_channel_copy(clips[i].speaker)]
    clip_train += fusion_pairs.give_words(clips_alone, sets.lines["train", True], args.neutral_text, rng)
    sets.clip_dev_neutral = fusion_pairs.give_words(clip_dev, sets.lines["dev", True], 1.0, rng)
    # drawn after the neutral-words twins, so --emotional-text 0 trains exactly what it did before
    clip_train += fusion_pairs.give_words(clips_alone, sets.lines["train", False], args.emotional_text, rng,
                                          tag="emotional-text",
                                          neutral_clips_only=args.emotional_text_clips == "neutral")
    sets.clip_dev_emotional = fusion_pairs.give_words(clip_dev, sets.lines["dev", False], 1.0, rng,
                                                      tag="emotional-text", neutral_clips_only=True)
    if args.flat_voice_alone:  # drawn last: without it every earlier draw is as before
        clip_train += fusion_pairs.flat_voice_alone(clips_alone, args.flat_voice_alone, rng)
    for tag in ("neutral-text", "emotional-text", "voice-alone"):
        sets.paired[f"{tag.replace('-', '_')}_clips"] = sum(d.dialogue_id.endswith("/" + tag) for d in clip_train)
    sets.paired["spoken_meld_dev_lines"] = int((dev & (spoken_split == "dev")).sum())
    return sets
