"""`python -m cmer_edge.training.edge`: train the embedded default ("edge") bundle.

No corpus here has English emotional speech with transcripts, so the edge head learns each
modality from its own corpus and fusion from label-matched pairs:
- MELD dialogues (text; x_a missing), the dialogue context and text branch;
- EmoDB utterances of 8 speakers (audio; x_t missing), emotion labels mapped to MELD's
  (boredom -> neutral; EmoDB has no surprise), the audio branch;
- for a fraction `--pair` of the MELD training utterances whose label EmoDB has, the audio of a
  random EmoDB training utterance with the same label (so the head also sees both modalities).
Audio is z-scored per speaker (per session live). Scores reported: MELD test weighted F1 with
text only, EmoDB held-out speakers UAR with audio only (6 MELD classes). Model selection: dev
(MELD dev + the EmoDB dev speakers) only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from cmer_edge.features.store import FeatureStore
from cmer_edge.model.config import EMOTIONS, HeadConfig
from cmer_edge.training.dialogues import Dialogue, load_dialogues
from cmer_edge.training.runs import FeatureChoice, save_trained, scores_for
from cmer_edge.training.trainer import TrainConfig, train_head

log = logging.getLogger("cmer_edge")


def with_modality(d: Dialogue, *, audio_dim: int | None = None, text_dim: int | None = None) -> Dialogue:
    """Give a unimodal dialogue an all-missing block for the other modality."""
    t = len(d.labels)
    x_a = d.x_a if audio_dim is None else np.zeros((t, audio_dim), np.float32)
    x_t = d.x_t if text_dim is None else np.zeros((t, text_dim), np.float32)
    x_a_raw = d.x_a_raw if audio_dim is None else np.zeros((t, audio_dim), np.float32)
    present = d.present.copy()
    return Dialogue(d.dialogue_id, d.utterance_ids, x_a, x_t, present, d.labels, d.fold, x_a_raw)


def pair_audio(meld: list[Dialogue], emodb: list[Dialogue], fraction: float, rng: np.random.Generator) -> int:
    """Give `fraction` of MELD utterances the (normalised) audio of a same-label EmoDB utterance."""
    by_label: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for d in emodb:
        by_label.setdefault(int(d.labels[0]), []).append((d.x_a[0], d.x_a_raw[0]))
    paired = 0
    for d in meld:
        for i, label in enumerate(d.labels):
            pool = by_label.get(int(label))
            if pool and rng.random() < fraction:
                d.x_a[i], d.x_a_raw[i] = pool[rng.integers(len(pool))]
                d.present[i, 0] = 1.0
                paired += 1
    return paired


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cmer_edge.training.edge", description=__doc__.splitlines()[0],
                                epilog="example: python -m cmer_edge.training.edge --meld-store features/meld "
                                       "--text minilm_ft --emodb-store features/emodb --audio opensmile.eGeMAPSv02 "
                                       "edgel3.sea.64 --out runs/edge")
    p.add_argument("--meld-store", type=Path, required=True)
    p.add_argument("--text", required=True, help="text feature name in the MELD store")
    p.add_argument("--emodb-store", type=Path, required=True)
    p.add_argument("--audio", nargs="+", required=True, help="audio feature names in the EmoDB store")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--test-fold", type=int, default=0, help="EmoDB speaker fold held out for the report")
    p.add_argument("--dev-fold", type=int, default=1, help="EmoDB speaker fold used for early stopping")
    p.add_argument("--pair", type=float, default=0.5, help="fraction of MELD utterances given EmoDB audio")
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--patience", type=int, default=15)
    p.add_argument("--modality-dropout", type=float, default=0.3)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    meld_store, emodb_store = FeatureStore.open(args.meld_store), FeatureStore.open(args.emodb_store)
    audio_dim = sum(emodb_store.dim(n) for n in args.audio)
    text_dim = meld_store.dim(args.text)
    meld = {s: [with_modality(d, audio_dim=audio_dim) for d in load_dialogues(meld_store, s, [], args.text)]
            for s in ("train", "dev", "test")}
    emodb_all = [with_modality(d, text_dim=text_dim) for d in load_dialogues(
        emodb_store, "all", list(args.audio), None, label_key="meld_label", audio_norm="speaker")]
    emodb = {"test": [d for d in emodb_all if d.fold == args.test_fold],
             "dev": [d for d in emodb_all if d.fold == args.dev_fold],
             "train": [d for d in emodb_all if d.fold not in (args.test_fold, args.dev_fold)]}
    rng = np.random.default_rng(args.seed)
    paired = pair_audio(meld["train"], emodb["train"], args.pair, rng)
    log.info("paired %d MELD training utterances with EmoDB audio", paired)
    head_cfg = HeadConfig(audio_dim=audio_dim, text_dim=text_dim, hidden=args.hidden)
    cfg = TrainConfig(protocol="live", window_utts=args.window, max_epochs=args.epochs, patience=args.patience,
                      modality_dropout=args.modality_dropout, seed=args.seed)
    train = meld["train"] + emodb["train"]
    result = train_head(head_cfg, cfg, train, meld["dev"] + emodb["dev"])
    for d in meld["test"] + meld["dev"]:
        d.present[:, 0] = 0.0  # text only, as reported
    metrics = {
        "meld_dev_text": scores_for(result.model, meld["dev"], "live", args.window, EMOTIONS)[0].to_dict(),
        "meld_test_text": scores_for(result.model, meld["test"], "live", args.window, EMOTIONS)[0].to_dict(),
        "emodb_test_audio": scores_for(result.model, emodb["test"], "live", args.window, EMOTIONS)[0].to_dict(),
        "emodb_dev_audio": scores_for(result.model, emodb["dev"], "live", args.window, EMOTIONS)[0].to_dict(),
    }
    features = {**FeatureChoice(tuple(args.audio), None).manifest(emodb_store),
                **FeatureChoice((), args.text).manifest(meld_store)}
    save_trained(args.out, result, head_cfg, replace(cfg), name="edge", labels=EMOTIONS, features=features,
                 audio_norm="speaker", train=train, metrics=metrics, profile="edge",
                 recipe={"command": "python -m cmer_edge.training.edge " + " ".join(sys.argv[1:] if argv is None else argv),
                         "paired_utterances": paired, "emodb_test_fold": args.test_fold})
    summary = {k: {m: round(v[m], 2) for m in ("weighted_f1", "uar")} for k, v in metrics.items()}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
