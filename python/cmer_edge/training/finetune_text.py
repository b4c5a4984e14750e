"""The paper's first step: fine-tune the text encoder on MELD utterance classification.

A linear classifier on the encoder's pooled last layer; AdamW with linear warm-up/decay; the
epoch with the best dev weighted F1 is kept (dev only, never test). The fine-tuned backbone and its
tokenizer are saved with `save_pretrained`, so `load_text_encoder(spec, model_path=out_dir)` then
extracts the paper's features (last four layers) from it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cmer_edge.features.text import TextEncoderSpec, load_text_encoder
from cmer_edge.training.metrics import score

log = logging.getLogger("cmer_edge")


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 4
    lr: float = 5e-5
    weight_decay: float = 0.01
    batch_size: int = 32
    warmup_fraction: float = 0.1
    dropout: float = 0.1
    class_weighting: bool = False
    seed: int = 0


def _batches(lengths: list[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar length (less padding): sort a shuffled order by length within
    chunks of 50 batches, cut into batches, shuffle the batches."""
    order = rng.permutation(len(lengths))
    chunk = 50 * batch_size
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches += [np.array(part[i:i + batch_size]) for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def finetune_text_encoder(spec: TextEncoderSpec, train: tuple[list[str], np.ndarray],
                          dev: tuple[list[str], np.ndarray], labels: tuple[str, ...], out_dir: str | Path,
                          cfg: FinetuneConfig = FinetuneConfig()) -> dict:
    """Fine-tune, keep the best dev epoch in `out_dir`; returns the per-epoch history."""
    import torch
    from torch import nn

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    out_dir = Path(out_dir)
    encoder, tokenizer = load_text_encoder(TextEncoderSpec(spec.model, spec.pooling, 1, spec.max_tokens))
    head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(encoder.dim, len(labels)))
    params = list(encoder.parameters()) + list(head.parameters())
    optimiser = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(train[0]) + cfg.batch_size - 1) // cfg.batch_size)
    warmup = max(1, int(cfg.warmup_fraction * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
    weight = None
    if cfg.class_weighting:
        counts = np.bincount(train[1], minlength=len(labels)).astype(np.float64)
        weight = torch.tensor(counts.sum() / (len(labels) * np.maximum(counts, 1)), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weight)

    def tokens(texts):
        return tokenizer(texts, padding=True, truncation=True, max_length=spec.max_tokens, return_tensors="pt")

    def predict(texts: list[str]) -> np.ndarray:
        encoder.eval(), head.eval()
        preds = []
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                batch = tokens(texts[start:start + 64])
                preds.append(head(encoder(batch["input_ids"], batch["attention_mask"])).argmax(-1).numpy())
        return np.concatenate(preds)

    lengths = [len(t) for t in train[0]]
    history, best = [], -1.0
    for epoch in range(1, cfg.epochs + 1):
        encoder.train(), head.train()
        started, total = time.perf_counter(), 0.0
        for step, idx in enumerate(_batches(lengths, cfg.batch_size, rng), 1):
            batch = tokens([train[0][i] for i in idx])
            logits = head(encoder(batch["input_ids"], batch["attention_mask"]))
            loss = loss_fn(logits, torch.as_tensor(train[1][idx], dtype=torch.long))
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
            if step % 50 == 0:
                log.info("finetune epoch %d step %d: loss %.4f (%.0f s)", epoch, step, float(loss.detach()),
                         time.perf_counter() - started)
        dev_f1 = score(dev[1], predict(dev[0]), labels).weighted_f1
        row = {"epoch": epoch, "train_loss": total / len(train[0]), "dev_weighted_f1": dev_f1,
               "seconds": time.perf_counter() - started}
        history.append(row)
        log.info("finetune epoch %d: loss %.4f dev wF1 %.2f (%.0f s)", epoch, row["train_loss"], dev_f1,
                 row["seconds"])
        if dev_f1 > best:
            best = dev_f1
            encoder.backbone.save_pretrained(out_dir)
            tokenizer.save_pretrained(out_dir)
    summary = {"spec": spec.to_dict(), "config": asdict(cfg), "history": history, "best_dev_weighted_f1": best}
    (out_dir / "finetune.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
