"""Whisper tiny.en's encoder fine-tuned on emotion: does it carry a stranger from an unseen corpus further?

Not part of the package: a record of how the numbers in docs/results.md ("The encoder fine-tuned")
were made, runnable from the repository root with the package importable.

Every earlier screen read the encoder's states frozen (mean + std over time) and trained only what
sits on top. Here the encoder itself learns (its float16 weights read from the installed CTranslate2
model.bin into a PyTorch copy, checked against CTranslate2's own output first), with a learned mix of
its layers' states, mean + std pooling and a linear classifier, class-balanced cross-entropy, no
speaker or corpus statistics anywhere (setting (a): each clip scored alone).

    python docs/experiments/whisper_finetune_screen.py --out runs/s35/ft            # all plans, both arms
    python docs/experiments/whisper_finetune_screen.py --plans nest_SAVEE:RAVDESS->EmoDB --arms frozen

Plans: the nested cross-corpus dev of the SAVEE target ("nest_SAVEE:A->B": train on corpus A, test on
corpus B, SAVEE never touched) and the test ("without_SAVEE": train on RAVDESS + EmoDB, test on SAVEE).
Arms: "frozen" (encoder fixed: the same head on the same states, the fair baseline) and "tuned".
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmer_edge.asr.whisper import resolve_whisper_model
from cmer_edge.audio.convert import load_audio
from cmer_edge.data.speech_manifest import load_manifests
from cmer_edge.features.whisper_prefix import ENCODER_LAYER, read_model_bin
from cmer_edge.model.config import EMOTIONS

PLANS = {"nest_SAVEE:RAVDESS->EmoDB": (["RAVDESS"], "EmoDB"), "nest_SAVEE:EmoDB->RAVDESS": (["EmoDB"], "RAVDESS"),
         "without_SAVEE": (["RAVDESS", "EmoDB"], "SAVEE")}
CT2_DTYPES = {0: np.float32, 4: np.float16}


def read_ct2_encoder(model_bin: Path) -> dict[str, np.ndarray]:
    """The encoder's float variables of a CTranslate2 model.bin, as float32 arrays."""
    _, _, _, variables, _ = read_model_bin(model_bin)
    return {name: np.frombuffer(data, dtype=CT2_DTYPES[dtype]).reshape(dims).astype(np.float32)
            for name, dims, dtype, data in variables if name.startswith("encoder/") and dtype in CT2_DTYPES}


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class Encoder(nn.Module):
    """Whisper's encoder (conv front, sinusoidal positions, pre-LN blocks); returns every block's states."""

    def __init__(self, w: dict[str, np.ndarray]):
        super().__init__()
        d = w["encoder/conv1/bias"].shape[0]
        depth = 1 + max(int(m.group(1)) for n in w if (m := ENCODER_LAYER.match(n)))
        self.conv1, self.conv2 = nn.Conv1d(80, d, 3, padding=1), nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList(Block(d, d // 64) for _ in range(depth))
        self.ln_post = nn.LayerNorm(d)
        self.register_buffer("pos", torch.from_numpy(w["encoder/position_encodings/encodings"]))
        t = lambda n: torch.from_numpy(w[n])  # noqa: E731
        with torch.no_grad():
            for conv, n in ((self.conv1, "conv1"), (self.conv2, "conv2")):
                conv.weight.copy_(t(f"encoder/{n}/weight")), conv.bias.copy_(t(f"encoder/{n}/bias"))
            for i, blk in enumerate(self.blocks):
                p = f"encoder/layer_{i}/"
                pairs = [(blk.ln1, "self_attention/layer_norm"), (blk.ln2, "ffn/layer_norm")]
                for ln, n in pairs:
                    ln.weight.copy_(t(p + n + "/gamma")), ln.bias.copy_(t(p + n + "/beta"))
                for lin, n in ((blk.qkv, "self_attention/linear_0"), (blk.proj, "self_attention/linear_1"),
                               (blk.fc1, "ffn/linear_0"), (blk.fc2, "ffn/linear_1")):
                    lin.weight.copy_(t(p + n + "/weight")), lin.bias.copy_(t(p + n + "/bias"))
            self.ln_post.weight.copy_(t("encoder/layer_norm/gamma"))
            self.ln_post.bias.copy_(t("encoder/layer_norm/beta"))

    def forward(self, mel: torch.Tensor, keep: torch.Tensor) -> list[torch.Tensor]:
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        x = x + self.pos[: x.shape[1]]
        states = []
        for i, blk in enumerate(self.blocks):
            x = blk(x, keep)
            states.append(self.ln_post(x) if i == len(self.blocks) - 1 else x)
        return states


class Classifier(nn.Module):
    def __init__(self, encoder: Encoder, dropout: float = 0.2):
        super().__init__()
        self.encoder = encoder
        d, depth = encoder.ln_post.weight.shape[0], len(encoder.blocks)
        self.mix = nn.Parameter(torch.zeros(depth))
        self.norms = nn.ModuleList(nn.LayerNorm(d, elementwise_affine=False) for _ in range(depth))
        self.drop, self.out = nn.Dropout(dropout), nn.Linear(2 * d, len(EMOTIONS))

    def forward(self, mel: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        states = self.encoder(mel, keep)
        w = torch.softmax(self.mix, 0)
        h = sum(w[i] * norm(s) for i, (norm, s) in enumerate(zip(self.norms, states)))
        m = keep[:, :, None].float()
        n = m.sum(1)
        mean = (h * m).sum(1) / n
        std = (((h - mean[:, None]) ** 2 * m).sum(1) / n).clamp_min(1e-6).sqrt()
        return self.out(self.drop(torch.cat([mean, std], 1)))


def log_mels(clips, cache: Path) -> list[np.ndarray]:
    from faster_whisper.feature_extractor import FeatureExtractor
    if cache.is_file():
        z = np.load(cache, allow_pickle=True)
        return list(z["mels"])
    fe = FeatureExtractor(feature_size=80)
    mels = [fe(load_audio(c.path)).astype(np.float16) for c in clips]
    cache.parent.mkdir(parents=True, exist_ok=True)
    arr = np.empty(len(mels), dtype=object)
    arr[:] = mels
    np.savez(cache, mels=arr)
    return mels


def batches(idx: np.ndarray, mels, size: int, rng: np.random.Generator | None):
    """Batches of similar length (shuffled by bucket when rng is given)."""
    order = idx[np.argsort([mels[i].shape[1] for i in idx], kind="stable")]
    chunks = [order[i:i + size] for i in range(0, len(order), size)]
    if rng is not None:
        rng.shuffle(chunks)
    for chunk in chunks:
        frames = max(mels[i].shape[1] for i in chunk)
        frames += frames % 2
        mel = np.full((len(chunk), 80, frames), -1.5, dtype=np.float32)  # Whisper's floor after its scaling
        keep = np.zeros((len(chunk), frames // 2), dtype=bool)
        for j, i in enumerate(chunk):
            mel[j, :, : mels[i].shape[1]] = mels[i]
            keep[j, : (mels[i].shape[1] + 1) // 2] = True
        yield chunk, torch.from_numpy(mel), torch.from_numpy(keep)


def uar(y: np.ndarray, p: np.ndarray) -> tuple[float, list[float]]:
    recalls = [float((p[y == k] == k).mean()) if (y == k).any() else float("nan") for k in range(len(EMOTIONS))]
    return 100 * float(np.nanmean(recalls)), [round(100 * r, 1) for r in recalls]


def run(plan: str, arm: str, seed: int, clips, mels, args) -> dict:
    train_corpora, test_corpus = PLANS[plan]
    y = np.array([c.meld_label for c in clips])
    train = np.array([i for i, c in enumerate(clips) if c.corpus in train_corpora])
    test = np.array([i for i, c in enumerate(clips) if c.corpus == test_corpus])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Classifier(Encoder(read_ct2_encoder(args.model / "model.bin")))
    for p in model.encoder.parameters():
        p.requires_grad = arm == "tuned"
    head = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    groups = [{"params": head, "lr": args.head_lr}]
    if arm == "tuned":
        groups.append({"params": list(model.encoder.parameters()), "lr": args.encoder_lr})
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    counts = np.bincount(y[train], minlength=len(EMOTIONS)).astype(np.float64)
    present = counts > 0
    weight = np.where(present, counts.sum() / np.maximum(counts, 1) / present.sum(), 0.0)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(weight, dtype=torch.float32))
    epochs = args.epochs if arm == "tuned" else args.frozen_epochs
    steps = epochs * math.ceil(len(train) / args.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.1 * steps)) *
                                              0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        if arm == "frozen":
            model.encoder.eval()
        total = 0.0
        for chunk, mel, keep in batches(train, mels, args.batch, rng):
            loss = loss_fn(model(mel, keep), torch.from_numpy(y[chunk]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(chunk)
        print(f"  {plan} {arm} seed {seed} epoch {epoch + 1}: loss {total / len(train):.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    model.eval()
    pred = np.empty(len(clips), dtype=int)
    with torch.no_grad():
        for chunk, mel, keep in batches(test, mels, 32, None):
            pred[chunk] = model(mel, keep).argmax(1).numpy()
    score, recalls = uar(y[test], pred[test])
    return {"plan": plan, "arm": arm, "seed": seed, "uar": round(score, 2), "recall": recalls,
            "train_clips": int(len(train)), "test_clips": int(len(test)), "seconds": round(time.perf_counter() - t0),
            "mix": [round(float(v), 3) for v in torch.softmax(model.mix, 0)]}


def check_against_ctranslate2(model_dir: Path, mel: np.ndarray) -> float:
    """Max |torch - CTranslate2| over the last states of one clip (float32 both)."""
    import ctranslate2
    ct2 = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32")
    frames = mel.shape[1] - mel.shape[1] % 2
    ref = np.asarray(ct2.encode(ctranslate2.StorageView.from_array(
        np.ascontiguousarray(mel[None, :, :frames].astype(np.float32))), to_cpu=True))[0]
    enc = Encoder(read_ct2_encoder(model_dir / "model.bin")).eval()
    with torch.no_grad():
        mine = enc(torch.from_numpy(mel[None, :, :frames].astype(np.float32)),
                   torch.ones(1, frames // 2, dtype=torch.bool))[-1][0].numpy()
    return float(np.abs(mine - ref).max() / np.abs(ref).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", nargs="+", default=["../shared/data/ravdess", "../shared/data/savee",
                                                       "../shared/data/emodb"])
    ap.add_argument("--model", type=Path, default=None, help="CTranslate2 Whisper folder (default: tiny.en)")
    ap.add_argument("--plans", nargs="+", default=list(PLANS), choices=list(PLANS))
    ap.add_argument("--arms", nargs="+", default=["frozen", "tuned"], choices=["frozen", "tuned"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--epochs", type=int, default=8, help="tuned arm")
    ap.add_argument("--frozen-epochs", type=int, default=30, help="frozen arm (only the head learns: cheap steps)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--head-lr", type=float, default=3e-3)
    ap.add_argument("--encoder-lr", type=float, default=3e-5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/s35/ft"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.model = args.model or Path(resolve_whisper_model("tiny.en"))
    clips = load_manifests(args.manifest, check_audio=False).clips
    mels = log_mels(clips, args.out.parent / "mels_tiny.npz")
    print(f"{len(clips)} clips; torch vs CTranslate2 (relative max error, one clip): "
          f"{check_against_ctranslate2(args.model, mels[0].astype(np.float32)):.2e}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    for plan in args.plans:
        for arm in args.arms:
            for seed in args.seeds:
                path = args.out / f"{plan.replace(':', '_').replace('->', '-')}.{arm}.s{seed}.json"
                if path.is_file():
                    result = json.loads(path.read_text())
                else:
                    result = run(plan, arm, seed, clips, mels, args)
                    path.write_text(json.dumps(result))
                print(f"{plan:28s} {arm:6s} seed {seed}: UAR {result['uar']:5.1f}  recall {result['recall']}  "
                      f"mix {result['mix']}", flush=True)


if __name__ == "__main__":
    main()
