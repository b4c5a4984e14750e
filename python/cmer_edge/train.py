"""`python -m cmer_edge.train`: train the CM-RoBERTa head on a feature store, over seeds (and folds).

Model selection is on the dev split only (early stopping on dev loss); the evaluation splits are
scored for the report and never used for selection. Each run is saved as a bundle. Runs unchanged
under `torchrun --nproc_per_node N [--nnodes M ...] -m cmer_edge.train ...` (data parallel, rank 0
writes; training/trainer.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from cmer_edge.features.store import FeatureStore
from cmer_edge.cli_common import cli_entry, fraction, torch_threads_arg, window_arg
from cmer_edge.model.config import HeadConfig
from cmer_edge.training.dialogues import load_dialogues
from cmer_edge.training.distributed import init_distributed
from cmer_edge.training.runs import FeatureChoice, run_one
from cmer_edge.training.trainer import TrainConfig

log = logging.getLogger("cmer_edge")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cmer_edge.train", description=__doc__.splitlines()[0],
        epilog="example: python -m cmer_edge.train --store features/meld --text minilm_ft --modalities text "
               "--protocol paper --seeds 0 1 2 3 4 --out runs/meld_text_paper")
    p.add_argument("--store", required=True, type=Path, help="feature store directory (python -m cmer_edge.extract)")
    p.add_argument("--out", required=True, type=Path, help="output directory: one bundle per run + summary.json")
    p.add_argument("--audio", nargs="*", default=[], help="audio feature names, concatenated in order")
    p.add_argument("--text", default=None, help="text feature name")
    p.add_argument("--modalities", choices=("both", "audio", "text"), default="both")
    p.add_argument("--no-sca", action="store_true", help="ablation: remove the SCA unit")
    p.add_argument("--protocol", choices=("paper", "live"), default="paper")
    p.add_argument("--window", type=window_arg, default=16, help="live protocol: window in utterances")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--train-split", default="train")
    p.add_argument("--dev-split", default="dev")
    p.add_argument("--eval-splits", nargs="*", default=["test"], help="splits scored for the report only")
    p.add_argument("--cv-folds", type=int, default=0,
                   help="cross-validate over the index's 'fold' field of --train-split: fold k is test, "
                        "fold k+1 dev, the rest train (EmoDB speaker folds)")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--patience", type=int, default=15)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=3e-4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--dropout", type=fraction("--dropout", below_one=True), default=0.3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--audio-norm", choices=("global", "speaker"), default="global",
                   help="speaker: z-score audio features per speaker (live: per session, running)")
    p.add_argument("--class-weighting", action="store_true")
    p.add_argument("--ema", type=fraction("--ema", below_one=True), default=0.0,
                   help="decay of the weights' moving average that dev scores and the run keeps (0: off)")
    p.add_argument("--modality-dropout", type=fraction("--modality-dropout", below_one=True), default=0.0)
    p.add_argument("--threads", type=torch_threads_arg, default=0, help="torch threads (0: torch's default)")
    return p


def _folds(dialogues, k: int):
    by_fold = {}
    for d in dialogues:
        by_fold.setdefault(d.fold, []).append(d)
    ids = sorted(by_fold)
    if len(ids) != k:
        raise SystemExit(f"--cv-folds {k}: the index has {len(ids)} folds ({ids})")
    for i, fold in enumerate(ids):
        dev_fold = ids[(i + 1) % k]
        train = [d for f in ids if f not in (fold, dev_fold) for d in by_fold[f]]
        yield fold, train, by_fold[dev_fold], by_fold[fold]


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch


    if args.threads:
        torch.set_num_threads(args.threads)
    store = FeatureStore.open(args.store)
    features = FeatureChoice(tuple(args.audio) if args.modalities != "text" else (),
                             args.text if args.modalities != "audio" else None)
    if args.modalities != "text" and not features.audio or args.modalities != "audio" and not features.text:
        raise SystemExit(f"--modalities {args.modalities} needs " + ("--audio" if not features.audio else "--text"))
    dims = {"audio_dim": sum(store.dim(n) for n in features.audio) or 1,
            "text_dim": store.dim(features.text) if features.text else 1}
    head_cfg = HeadConfig(**dims, hidden=args.hidden, dropout=args.dropout, modalities=args.modalities,
                          use_sca=not args.no_sca)
    base = TrainConfig(batch_size=args.batch, max_epochs=args.epochs, patience=args.patience, lr=args.lr,
                       weight_decay=args.weight_decay, protocol=args.protocol, window_utts=args.window,
                       class_weighting=args.class_weighting, modality_dropout=args.modality_dropout,
                       ema=args.ema)

    def load(split):
        return load_dialogues(store, split, list(features.audio), features.text, audio_norm=args.audio_norm)

    if args.cv_folds:
        plans = [(f"fold{f}", tr, dv, {"test": te}) for f, tr, dv, te in _folds(load(args.train_split), args.cv_folds)]
    else:
        plans = [("", load(args.train_split), load(args.dev_split), {s: load(s) for s in args.eval_splits})]
    runs = []
    dist = init_distributed()
    try:
        for seed in args.seeds:
            for tag, train, dev, evals in plans:
                name = f"seed{seed}" + (f"_{tag}" if tag else "")
                metrics = run_one(store, features, head_cfg, replace(base, seed=seed), train, dev, evals,
                                  args.out / name, name, audio_norm=args.audio_norm, dist=dist)
                runs.append({"run": name, "seed": seed, "fold": tag or None, "metrics": metrics})
                log.info("%s: %s", name, {s: round(m["weighted_f1"], 2) for s, m in metrics.items()})
    finally:
        dist.close()
    if dist.is_main:
        summary = summarise(runs, head_cfg, base, sys.argv[1:] if argv is None else argv)
        summary["ranks"] = dist.world
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(summary["table"])
    return 0


def summarise(runs: list[dict], head_cfg: HeadConfig, cfg, argv: list[str]) -> dict:
    """mean ± std over seeds of every scored split (with folds: each seed's mean over its folds),
    plus the command that made it."""
    out = {"command": "python -m cmer_edge.train " + " ".join(argv), "head": head_cfg.to_dict(),
           "train": asdict(cfg), "runs": runs}
    lines = ["| split | weighted F1 | UAR | accuracy | seeds |", "| --- | --- | --- | --- | --- |"]
    seeds = sorted({r["seed"] for r in runs})
    for split in runs[0]["metrics"]:
        stats = {}
        for metric in ("weighted_f1", "uar", "accuracy"):
            # cross-validation: a seed's score is the mean over its folds; then mean ± std over seeds
            per_seed = np.array([np.mean([r["metrics"][split][metric] for r in runs if r["seed"] == s]) for s in seeds])
            stats[metric] = {"mean": float(per_seed.mean()),
                             "std": float(per_seed.std(ddof=1) if len(per_seed) > 1 else 0.0),
                             "per_seed": per_seed.round(3).tolist()}
        out[split] = stats
        cells = [f"{stats[m]['mean']:.2f} ± {stats[m]['std']:.2f}" for m in ("weighted_f1", "uar", "accuracy")]
        lines.append(f"| {split} | " + " | ".join(cells) + f" | {len(seeds)} |")
    out["table"] = "\n".join(lines)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
