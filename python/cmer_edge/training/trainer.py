"""Train the CM-RoBERTa head on dialogues (DESIGN.md §2): Adam, early stopping on dev loss.

Paper defaults: batch 32 dialogues, up to 200 epochs, stop after 15 epochs without dev-loss
improvement, Adam lr 1e-4, weight decay 3e-4, cross-entropy. Model selection uses dev only.
With `ema` > 0 the weights scored on dev and kept are an exponential moving average of the trained
ones (Polyak averaging, updated after every step; the decay warms up as min(ema, (1 + t) / (10 + t))
so the first steps are not frozen in): a smoother trajectory than the last step of an epoch, for heads
that reach their best dev loss within a few epochs.

Under torchrun (training/distributed.py) every rank builds the same global batches and modality
dropout masks (same seeds) and trains on its rows of each; the loss is the share's summed
cross-entropy over the global batch's (class-weighted) target count, times the world size, so with
DDP's gradient averaging each step is the single-process step up to float noise. Every rank scores
dev itself (same weights, same decision to stop).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from cmer_edge.model.config import HeadConfig
from cmer_edge.training.dialogues import Batch, Dialogue, batches
from cmer_edge.training.distributed import Distributed

log = logging.getLogger("cmer_edge")


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 32          # dialogues (paper) or windows (live) per step
    max_epochs: int = 200
    patience: int = 15
    lr: float = 1e-4
    weight_decay: float = 3e-4
    protocol: str = "paper"       # "paper": whole dialogues; "live": past windows, loss at the last utterance
    window_utts: int = 16
    class_weighting: bool = False
    modality_dropout: float = 0.0  # chance, per bimodal utterance, to hide one modality while training
    seed: int = 0
    ema: float = 0.0              # decay of the weights' moving average scored on dev and kept (0: off)
    # Weight of the words-decide consistency term: where an utterance's words decide (Batch.keep marks
    # the text only) and its voice is present, the KL from the same head's words-alone answer (its
    # audio hidden, no gradient) to its fused answer; a voice that carries no label should not move it.
    words_consistency: float = 0.0

    def __post_init__(self) -> None:
        if self.protocol not in ("paper", "live"):
            raise ValueError(f"protocol must be 'paper' or 'live', got {self.protocol!r}")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1), got {self.modality_dropout}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if not self.words_consistency >= 0.0:
            raise ValueError(f"words_consistency must be >= 0, got {self.words_consistency}")


@dataclass
class TrainResult:
    model: object                      # CMRoberta, best dev-loss state, eval mode
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_dev_loss: float = float("inf")

    def summary(self, cfg: TrainConfig) -> dict:
        return {"config": asdict(cfg), "best_epoch": self.best_epoch, "best_dev_loss": self.best_dev_loss,
                "epochs_run": len(self.history), "history": self.history}


def fit_normalisation(model, dialogues: list[Dialogue]) -> None:
    """Per-dimension mean/std of each modality over the utterances where it is present."""
    import torch

    for index, (name, _) in enumerate(model.streams()):
        column = 0 if name == "audio" else 1
        rows = np.concatenate([(d.x_a if name == "audio" else d.x_t)[d.present[:, column] > 0] for d in dialogues])
        if len(rows) < 2:
            raise ValueError(f"cannot normalise {name}: only {len(rows)} utterances have it")
        model.set_normalisation(name, torch.from_numpy(rows.mean(0)), torch.from_numpy(rows.std(0)))


def _tensors(batch: Batch, device):
    import torch

    return (torch.from_numpy(batch.x_a).to(device), torch.from_numpy(batch.x_t).to(device),
            torch.from_numpy(batch.lengths), torch.from_numpy(batch.present).to(device),
            torch.from_numpy(batch.labels).to(device))


def _drop_modalities(present, p: float, gen, keep=None):
    """Hide one modality of a bimodal utterance with chance p (audio or text, even odds), never one
    that `keep` marks as the one whose label it is (then the other one is hidden)."""
    import torch

    both = (present[..., 0] > 0) & (present[..., 1] > 0)
    drop = both & (torch.rand(both.shape, generator=gen) < p)
    hide_audio = torch.rand(both.shape, generator=gen) < 0.5
    if keep is not None:
        keep = torch.as_tensor(keep)
        drop &= ~(keep[..., 0] & keep[..., 1])
        hide_audio = (hide_audio & ~keep[..., 0]) | keep[..., 1]
    present = present.clone()
    present[..., 0][drop & hide_audio] = 0.0
    present[..., 1][drop & ~hide_audio] = 0.0
    return present


class MovingAverage:
    """An exponential moving average of a model's parameters (buffers copied as they are)."""

    def __init__(self, model, decay: float):
        self.model, self.decay, self.steps = copy.deepcopy(model), decay, 0
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def update(self, model) -> None:
        import torch

        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        with torch.no_grad():
            for avg, p in zip(self.model.parameters(), model.parameters()):
                avg.lerp_(p.detach(), 1.0 - decay)
            for avg, b in zip(self.model.buffers(), model.buffers()):
                avg.copy_(b)


def evaluate_loss(model, dialogues: list[Dialogue], cfg: TrainConfig, loss_fn) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for batch in batches(dialogues, cfg.protocol, cfg.window_utts, 64):
            x_a, x_t, lengths, present, labels = _tensors(batch, "cpu")
            logits = model(x_a, x_t, lengths, present)
            n = int((labels >= 0).sum())
            total += float(loss_fn(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))) * n
            count += n
    return total / max(count, 1)


def train_head(head_cfg: HeadConfig, cfg: TrainConfig, train: list[Dialogue], dev: list[Dialogue],
               dist: Distributed = Distributed()) -> TrainResult:
    import torch
    from torch import nn

    from cmer_edge.model.cm_roberta import CMRoberta

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = CMRoberta(head_cfg)
    fit_normalisation(model, train)
    trained = dist.wrap(model)  # DDP when torchrun started more than one rank
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    weight = torch.ones(head_cfg.num_classes)
    if cfg.class_weighting:
        counts = np.bincount(np.concatenate([d.labels for d in train]), minlength=head_cfg.num_classes)
        weight = torch.tensor(counts.sum() / (head_cfg.num_classes * np.maximum(counts, 1)), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weight, ignore_index=-100, reduction="sum")
    eval_loss_fn = nn.CrossEntropyLoss(ignore_index=-100)
    result = TrainResult(model)
    average = MovingAverage(model, cfg.ema) if cfg.ema > 0 else None
    scored = average.model if average else model  # the weights dev judges and the result keeps
    best_state, stale = None, 0
    for epoch in range(1, cfg.max_epochs + 1):
        started = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for batch in batches(train, cfg.protocol, cfg.window_utts, cfg.batch_size, rng):
            x_a, x_t, lengths, present, labels = _tensors(batch, "cpu")
            if cfg.modality_dropout > 0:  # drawn for the global batch: the same masks on every rank
                present = _drop_modalities(present, cfg.modality_dropout, gen, batch.keep)
            targets = labels[labels >= 0]
            global_weight = float(weight[targets].sum())  # the mean's denominator, over the global batch
            rows = torch.from_numpy(dist.share(np.arange(len(lengths))))
            if len(rows):
                logits = trained(x_a[rows], x_t[rows], lengths[rows], present[rows])
                loss_sum = loss_fn(logits.reshape(-1, logits.shape[-1]), labels[rows].reshape(-1))
                if cfg.words_consistency and batch.keep is not None:
                    loss_sum = loss_sum + cfg.words_consistency * _words_consistency(
                        model, logits, x_a[rows], x_t[rows], lengths[rows], present[rows], labels[rows],
                        torch.as_tensor(batch.keep)[rows])
            else:  # a rank past this batch's end still runs DDP's forward and joins the all-reduce
                loss_sum = trained(x_a[:1], x_t[:1], lengths[:1], present[:1]).sum() * 0.0
            loss = loss_sum * (dist.world / global_weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if average:
                average.update(model)
            total, count = total + dist.all_sum(float(loss_sum.detach())) / global_weight * len(targets), \
                count + len(targets)
        dev_loss = evaluate_loss(scored, dev, cfg, eval_loss_fn)
        result.history.append({"epoch": epoch, "train_loss": total / max(count, 1), "dev_loss": dev_loss,
                               "seconds": round(time.perf_counter() - started, 2)})
        if dev_loss < result.best_dev_loss - 1e-6:
            result.best_dev_loss, result.best_epoch, stale = dev_loss, epoch, 0
            best_state = copy.deepcopy(scored.state_dict())
        else:
            stale += 1
        log.debug("epoch %d train %.4f dev %.4f", epoch, total / max(count, 1), dev_loss)
        if stale >= cfg.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return result


def _words_consistency(model, logits, x_a, x_t, lengths, present, labels, keep):
    """Sum over the labelled cells whose words decide (keep: text only) and whose voice is present of
    KL(words alone || fused): the words-alone answer is the same model's (`model`: the unwrapped module,
    in eval mode for this forward) with those cells' audio hidden (the rest of each window as it is, as
    the runtime's words-alone view), without gradient."""
    import torch

    cells = (labels >= 0) & keep[..., 1] & ~keep[..., 0] & (present[..., 0] > 0) & (present[..., 1] > 0)
    if not bool(cells.any()):
        return logits.sum() * 0.0
    rows = cells.any(dim=1)  # only the windows that have such a cell run again
    words_only = present[rows].clone()
    words_only[..., 0][cells[rows]] = 0.0
    model.eval()
    try:
        with torch.no_grad():
            target = torch.log_softmax(model(x_a[rows], x_t[rows], lengths[rows], words_only)[cells[rows]], dim=-1)
    finally:
        model.train()
    fused = torch.log_softmax(logits[cells], dim=-1)
    return (target.exp() * (target - fused)).sum()


MODALITY_COLUMN = {"audio": 0, "text": 1}  # columns of Dialogue.present


def predict(model, dialogues: list[Dialogue], protocol: str, window_utts: int,
            hide: str | None = None) -> list[np.ndarray]:
    """Class probabilities [T, C] per dialogue under `protocol`; `hide` ("audio" / "text") scores every
    utterance as if that modality were missing."""
    import torch

    model.eval()
    cfg = TrainConfig(protocol=protocol, window_utts=window_utts)
    out = [np.zeros((len(d.labels), model.cfg.num_classes), np.float32) for d in dialogues]
    with torch.inference_mode():
        for batch in batches(dialogues, cfg.protocol, cfg.window_utts, 64):
            x_a, x_t, lengths, present, labels = _tensors(batch, "cpu")
            if hide is not None:
                present[..., MODALITY_COLUMN[hide]] = 0.0
            probs = torch.softmax(model(x_a, x_t, lengths, present), dim=-1).numpy()
            rows, cols = np.nonzero(batch.labels >= 0) if protocol == "live" else np.nonzero(
                np.arange(batch.labels.shape[1])[None, :] < batch.lengths[:, None])
            for (r, c), (d, u) in zip(zip(rows, cols), batch.positions):
                out[d][u] = probs[r, c]
    return out
