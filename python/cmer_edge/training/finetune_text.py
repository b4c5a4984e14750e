"""The paper's first step: fine-tune the text encoder on MELD utterance classification.

A linear classifier on the encoder's pooled last layer; AdamW with linear warm-up/decay; the
epoch with the best dev weighted F1 is kept (dev only, never test). The fine-tuned backbone and its
tokenizer are saved with `save_pretrained`, so `load_text_encoder(spec, model_path=out_dir)` then
extracts the paper's features (last four layers) from it.

Resumable: every `checkpoint_every` steps and at each epoch's end the whole training state (weights,
optimiser, schedule, random generators, position in the epoch) is written to `OUT/checkpoint/`
(temporary file, then rename); the same command run again continues from there. Runs unchanged under
torchrun (see `training/distributed.py`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cmer_edge.features.text import TextEncoderSpec, load_text_encoder
from cmer_edge.training.distributed import Distributed
from cmer_edge.training.metrics import score

log = logging.getLogger("cmer_edge")

CHECKPOINT = "checkpoint/state.pt"


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
    checkpoint_every: int = 100  # steps; 0: only at epoch ends
    layer_decay: float = 1.0  # layer-wise learning-rate decay: layer i of L trains at lr * decay ** (L - i)


def layer_lr_scales(names: list[str], decay: float) -> list[float]:
    """Each parameter's learning-rate factor for layer-wise decay: 1 for the classifier and anything above
    the transformer layers, decay ** (L - i) for layer i of L (`...layer.<i>.`), decay ** (L + 1) for
    the embeddings; all 1 when decay is 1."""
    layer_of = [int(m.group(1)) if (m := re.search(r"\.layer\.(\d+)\.", n)) else None for n in names]
    top = max([i for i in layer_of if i is not None], default=-1) + 1
    return [decay ** (top - i) if i is not None else decay ** (top + 1) if "embeddings" in n else 1.0
            for n, i in zip(names, layer_of)]


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


def _save_atomic(obj, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _save_best(encoder, tokenizer, out_dir: Path) -> None:
    """save_pretrained into a temporary folder, then move the files over the previous best."""
    tmp = out_dir / ".best.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    encoder.backbone.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    for item in tmp.iterdir():
        os.replace(item, out_dir / item.name)
    tmp.rmdir()


class _Run:
    """The state one fine-tune carries across steps, checkpoints and resumes."""

    def __init__(self, spec: TextEncoderSpec, labels, train, cfg: FinetuneConfig, dist: Distributed) -> None:
        import torch
        from torch import nn

        torch.manual_seed(cfg.seed)
        self.cfg, self.dist = cfg, dist
        self.encoder, self.tokenizer = load_text_encoder(TextEncoderSpec(spec.model, spec.pooling, 1, spec.max_tokens))
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(self.encoder.dim, len(labels)))
        pooler = getattr(self.encoder.backbone, "pooler", None)
        if pooler is not None:  # the pooled features never use it: no gradient (DDP needs every trained
            pooler.requires_grad_(False)  # parameter to get one)
        self.model = dist.wrap(_classifier_class()(self.encoder, self.head))
        self.max_tokens = spec.max_tokens
        named = [(n, q) for n, q in [*self.encoder.backbone.named_parameters(), *self.head.named_parameters()]
                 if q.requires_grad]
        self.params = [q for _, q in named]
        groups: dict[float, list] = {}
        for (_, q), scale in zip(named, layer_lr_scales([n for n, _ in named], cfg.layer_decay)):
            groups.setdefault(scale, []).append(q)
        self.optimiser = torch.optim.AdamW([{"params": g, "lr": cfg.lr * f} for f, g in groups.items()],
                                           lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = cfg.epochs * ((len(train[0]) + cfg.batch_size - 1) // cfg.batch_size)
        warmup = max(1, int(cfg.warmup_fraction * steps))
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
        weight = None
        if cfg.class_weighting:
            counts = np.bincount(train[1], minlength=len(labels)).astype(np.float64)
            weight = torch.tensor(counts.sum() / (len(labels) * np.maximum(counts, 1)), dtype=torch.float32)
        self.weight = weight
        self.loss_fn = nn.CrossEntropyLoss(weight=weight, reduction="sum")
        self.rng = np.random.default_rng(cfg.seed)
        self.epoch, self.step, self.history, self.best = 1, 0, [], -1.0
        self.epoch_rng_state = self.rng.bit_generator.state

    def state(self) -> dict:
        import torch

        return {"encoder": self.encoder.state_dict(), "head": self.head.state_dict(),
                "optimiser": self.optimiser.state_dict(), "schedule": self.schedule.state_dict(),
                "epoch": self.epoch, "step": self.step, "history": self.history, "best": self.best,
                "epoch_rng_state": self.epoch_rng_state, "torch_rng": torch.get_rng_state(),
                "config": asdict(self.cfg)}

    def restore(self, state: dict) -> None:
        import torch

        self.encoder.load_state_dict(state["encoder"])
        self.head.load_state_dict(state["head"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.schedule.load_state_dict(state["schedule"])
        self.epoch, self.step, self.history, self.best = state["epoch"], state["step"], state["history"], state["best"]
        self.epoch_rng_state = state["epoch_rng_state"]
        self.rng.bit_generator.state = self.epoch_rng_state
        torch.set_rng_state(state["torch_rng"])

    def tokens(self, texts):
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                              return_tensors="pt")

    def train_step(self, texts: list[str], targets: np.ndarray, global_weight: float) -> float:
        """One optimiser step on this rank's share; returns the share's summed loss."""
        import torch

        if len(texts):
            batch = self.tokens(texts)
            logits = self.model(batch["input_ids"], batch["attention_mask"])
            loss_sum = self.loss_fn(logits, torch.as_tensor(targets, dtype=torch.long))
        else:  # a rank with nothing in this batch still runs DDP's forward and joins the all-reduce
            batch = self.tokens([""])
            loss_sum = self.model(batch["input_ids"], batch["attention_mask"]).sum() * 0.0
        loss = loss_sum * (self.dist.world / global_weight)
        self.optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimiser.step()
        self.schedule.step()
        return float(loss_sum.detach())

    def predict(self, texts: list[str]) -> np.ndarray:
        import torch

        self.encoder.eval(), self.head.eval()
        preds = []
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                batch = self.tokens(texts[start:start + 64])
                preds.append(self.head(self.encoder(batch["input_ids"], batch["attention_mask"])).argmax(-1).numpy())
        return np.concatenate(preds)


def _classifier_class():
    from torch import nn

    class Classifier(nn.Module):
        def __init__(self, encoder, head) -> None:
            super().__init__()
            self.encoder, self.head = encoder, head

        def forward(self, input_ids, attention_mask):
            return self.head(self.encoder(input_ids, attention_mask))

    return Classifier


def finetune_text_encoder(spec: TextEncoderSpec, train: tuple[list[str], np.ndarray],
                          dev: tuple[list[str], np.ndarray], labels: tuple[str, ...], out_dir: str | Path,
                          cfg: FinetuneConfig = FinetuneConfig(), dist: Distributed = Distributed()) -> dict:
    """Fine-tune (resuming from OUT/checkpoint if it is there), keep the best dev epoch in `out_dir`;
    returns the per-epoch history."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(spec, labels, train, cfg, dist)
    checkpoint = out_dir / CHECKPOINT
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        if state["config"] != asdict(cfg):
            raise ValueError(f"{checkpoint} was written with other settings {state['config']}; "
                             f"delete {checkpoint.parent} to start over")
        run.restore(state)
        log.info("resuming fine-tune at epoch %d step %d", run.epoch, run.step)
    lengths = [len(t) for t in train[0]]
    class_weight = run.weight.numpy() if run.weight is not None else np.ones(len(labels), np.float32)
    while run.epoch <= cfg.epochs:
        run.rng.bit_generator.state = run.epoch_rng_state
        batches = _batches(lengths, cfg.batch_size, run.rng)
        run.encoder.train(), run.head.train()
        started, total, seen = time.perf_counter(), 0.0, 0
        for step in range(run.step, len(batches)):
            idx = batches[step]
            share = dist.share(idx)
            global_weight = float(class_weight[train[1][idx]].sum())
            total += run.train_step([train[0][i] for i in share], train[1][share], global_weight)
            run.step, seen = step + 1, seen + len(idx)
            if run.step % 50 == 0:
                log.info("finetune epoch %d step %d/%d (%.0f s)", run.epoch, run.step, len(batches),
                         time.perf_counter() - started)
            if cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0 and run.step < len(batches):
                if dist.is_main:
                    _save_atomic(run.state(), checkpoint)
                dist.barrier()
        total = dist.all_sum(total)
        if dist.is_main:
            dev_f1 = score(dev[1], run.predict(dev[0]), labels).weighted_f1
            row = {"epoch": run.epoch, "train_loss": total / max(seen, 1), "dev_weighted_f1": dev_f1,
                   "seconds": time.perf_counter() - started}
            run.history.append(row)
            log.info("finetune epoch %d: dev wF1 %.2f (%.0f s)", run.epoch, dev_f1, row["seconds"])
            if dev_f1 > run.best:
                run.best = dev_f1
                _save_best(run.encoder, run.tokenizer, out_dir)
        run.epoch, run.step = run.epoch + 1, 0
        run.epoch_rng_state = run.rng.bit_generator.state
        if dist.is_main:
            _save_atomic(run.state(), checkpoint)
        dist.barrier()
    summary = {"spec": spec.to_dict(), "config": asdict(cfg), "history": run.history,
               "best_dev_weighted_f1": run.best, "ranks": dist.world}
    if dist.is_main:
        (out_dir / "finetune.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
