"""Post-hoc logit adjustment for minority classes, fitted on dev (Menon et al., 2021).

MELD is 47 % neutral and 2-3 % fear / disgust; a head trained with plain cross-entropy almost never
predicts the rare classes. Logit adjustment predicts argmax(logits - tau * log(prior)), with the
prior the training label frequencies; tau = 0 is the trained head, tau = 1 the balanced-error
optimum. tau is chosen on dev only, among the tau whose dev weighted F1 is at most `max_cost` points
below tau = 0's, by one of two rules: `min` (default), the smallest tau at which every class reaches
`min_class_f1` dev F1 (the least change that makes each class usefully predicted; `macro` where no
tau does), or `macro`, the largest dev macro-F1. The adjustment is folded into the classifier's last bias, so
the adjusted head is an ordinary head (ONNX, native, TensorRT unchanged).

    python -m cmer_edge.training.logit_adjust --store features/meld_mpnet --runs runs/mpnet_paper/seed* \\
        --json runs/mpnet_paper/logit_adjust.json
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmer_edge.cli_common import UserError, cli_entry, positive_float
from cmer_edge.training.metrics import score

log = logging.getLogger("cmer_edge")
TAUS = tuple(np.round(np.arange(0.0, 2.01, 0.05), 2))


@dataclass(frozen=True)
class Adjustment:
    tau: float
    bias: np.ndarray           # added to the logits: -tau * log(prior)
    dev_weighted_f1: float
    dev_macro_f1: float
    dev_weighted_f1_at_0: float


def label_prior(labels: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes).astype(np.float64)
    return np.maximum(counts, 1.0) / max(counts.sum(), 1.0)


def adjusted_predictions(log_probs: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.argmax(log_probs + bias, axis=-1)


RULES = ("min", "macro")


def fit(dev_log_probs: np.ndarray, dev_labels: np.ndarray, prior: np.ndarray, labels: tuple[str, ...],
        max_cost: float = 1.0, rule: str = "min", min_class_f1: float = 10.0, taus=TAUS) -> Adjustment:
    """tau on dev (module doc). Softmax is shift-invariant, so log-probabilities stand for logits."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    rows = []
    for tau in taus:
        bias = -float(tau) * np.log(prior)
        s = score(dev_labels, adjusted_predictions(dev_log_probs, bias), labels)
        worst = min(s.per_class_f1[k] for k in labels if s.support[k] > 0)
        rows.append((float(tau), bias, s.weighted_f1, s.macro_f1, worst))
    base = rows[0][2]
    allowed = [r for r in rows if r[2] >= base - max_cost]  # tau = 0 always is
    every_class = [r for r in allowed if r[4] >= min_class_f1]
    if rule == "min" and every_class:
        tau, bias, wf1, mf1, _ = min(every_class, key=lambda r: r[0])
    else:
        tau, bias, wf1, mf1, _ = max(allowed, key=lambda r: (r[3], -r[0]))
    return Adjustment(tau, bias.astype(np.float32), wf1, mf1, base)


def fold_into_head(model, bias: np.ndarray) -> None:
    """Add `bias` to the classifier's last layer (CMRoberta.classifier[-1])."""
    import torch

    with torch.no_grad():
        model.classifier[-1].bias += torch.from_numpy(np.asarray(bias, np.float32))


def _log_probs(model, dialogues, protocol: str, window: int) -> tuple[np.ndarray, np.ndarray]:
    from cmer_edge.training.trainer import predict

    probs = predict(model, dialogues, protocol, window)
    return (np.log(np.maximum(np.concatenate(probs), 1e-12)), np.concatenate([d.labels for d in dialogues]))


def adjust_run(run_dir: Path, store_dir: Path, max_cost: float, eval_splits: list[str], rule: str = "min",
               min_class_f1: float = 10.0) -> dict:
    """Fit tau on dev for a trained run (a bundle from `python -m cmer_edge.train`); scores before/after."""
    from cmer_edge.backends.torch_models import load_head_module
    from cmer_edge.bundle import load_bundle
    from cmer_edge.features.store import FeatureStore
    from cmer_edge.training.dialogues import load_dialogues

    bundle = load_bundle(run_dir)
    manifest = bundle.manifest
    if manifest.head_members > 1:  # the bias folds into one classifier; an ensemble averages probabilities
        raise UserError(f"{run_dir} is an ensemble of {manifest.head_members} heads: adjust each member run, "
                        "then combine them (python -m cmer_edge.bundle.ensemble)")
    store = FeatureStore.open(store_dir)
    feats = manifest.features
    audio = [part.name for part in feats.audio.parts] if feats.audio is not None else []
    text = feats.text.name if feats.text is not None else None
    audio_norm = manifest.audio_norm or "global"
    model = load_head_module(bundle)
    labels = bundle.labels

    def load(split):
        return load_dialogues(store, split, audio, text, audio_norm=audio_norm)

    train_labels = np.concatenate([d.labels for d in load("train")])
    prior = label_prior(train_labels, len(labels))
    dev_lp, dev_y = _log_probs(model, load("dev"), manifest.protocol, manifest.window_utts)
    adj = fit(dev_lp, dev_y, prior, labels, max_cost, rule, min_class_f1)
    out = {"run": str(run_dir), "tau": adj.tau, "bias": adj.bias.round(4).tolist(), "prior": prior.round(4).tolist(),
           "max_cost": max_cost, "rule": rule, "min_class_f1": min_class_f1, "splits": {}}
    for split in ["dev", *eval_splits]:
        lp, y = (dev_lp, dev_y) if split == "dev" else _log_probs(model, load(split), manifest.protocol,
                                                                  manifest.window_utts)
        before = score(y, adjusted_predictions(lp, 0.0), labels)
        after = score(y, adjusted_predictions(lp, adj.bias), labels)
        out["splits"][split] = {"before": _brief(before), "after": _brief(after)}
    return out


def write_adjusted(run_dir: Path, out_dir: Path, result: dict) -> Path:
    """A copy of the run bundle with the adjustment folded into the classifier's last bias."""
    from cmer_edge.backends.torch_models import load_head_module
    from cmer_edge.bundle import load_bundle, save_bundle
    from cmer_edge.bundle.store import MANIFEST

    bundle = load_bundle(run_dir)
    model = load_head_module(bundle)
    fold_into_head(model, np.asarray(result["bias"], np.float32))
    raw = json.loads((run_dir / MANIFEST).read_text())  # the descriptive fields, as written
    manifest = {k: v for k, v in raw.items() if k not in ("format", "format_version", "head", "files", "sha256")}
    manifest["training"] = dict(manifest.get("training", {}), logit_adjustment={
        k: result[k] for k in ("tau", "bias", "prior", "max_cost", "rule", "min_class_f1")})
    manifest["metrics"] = {split: {k: v for k, v in m["after"].items() if k != "per_class_f1"}
                           for split, m in result["splits"].items()}
    extra = {role: run_dir / name for role, name in raw["files"].items() if role != "head"}
    tensors = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return save_bundle(out_dir, head_config=bundle.head_config, head_tensors=tensors, manifest=manifest,
                       extra_files=extra, local_paths=True)


def _brief(s) -> dict:
    return {"weighted_f1": round(s.weighted_f1, 2), "macro_f1": round(s.macro_f1, 2), "uar": round(s.uar, 2),
            "per_class_f1": {k: round(v, 1) for k, v in s.per_class_f1.items()}}


def table(results: list[dict], split: str = "test") -> str:
    """mean ± std over runs, before/after, with per-class F1."""
    labels = list(results[0]["splits"][split]["before"]["per_class_f1"])
    head = "| head | weighted F1 | macro F1 | " + " | ".join(labels) + " |"
    lines = [head, "| --- " * (3 + len(labels)) + "|"]
    for when in ("before", "after"):
        rows = [r["splits"][split][when] for r in results]

        def ms(values):
            v = np.array(values, np.float64)
            return f"{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.2f}"

        cells = [ms([r["weighted_f1"] for r in rows]), ms([r["macro_f1"] for r in rows])]
        cells += [f"{np.mean([r['per_class_f1'][k] for r in rows]):.1f}" for k in labels]
        taus = ", ".join(f"{r['tau']:g}" for r in results)
        lines.append(f"| {'trained' if when == 'before' else f'logit-adjusted (tau on dev: {taus})'} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cmer_edge.training.logit_adjust",
                                description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, type=Path, help="the feature store the runs were trained on")
    p.add_argument("--runs", required=True, nargs="+", type=Path, help="run bundles (python -m cmer_edge.train)")
    p.add_argument("--max-cost", type=positive_float("--max-cost", allow_zero=True), default=1.0, help="dev weighted-F1 points tau may cost (default 1)")
    p.add_argument("--rule", choices=RULES, default="min",
                   help="min: smallest tau with every class >= --min-class-f1 on dev; macro: best dev macro-F1")
    p.add_argument("--min-class-f1", type=positive_float("--min-class-f1", allow_zero=True), default=10.0)
    p.add_argument("--eval-splits", nargs="*", default=["test"])
    p.add_argument("--json", type=Path, default=None, help="also write every number here")
    p.add_argument("--write-dir", type=Path, default=None,
                   help="write each adjusted run as a bundle DIR/<run name> (the bias folded into the head)")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = [adjust_run(run, args.store, args.max_cost, args.eval_splits, args.rule, args.min_class_f1)
               for run in args.runs]
    for r in results:
        log.info("%s: tau %.2f, test wF1 %.2f -> %.2f", r["run"], r["tau"],
                 r["splits"]["test"]["before"]["weighted_f1"], r["splits"]["test"]["after"]["weighted_f1"])
    for split in ["dev", *args.eval_splits]:
        print(f"\n{split}:\n" + table(results, split))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    for run, result in zip(args.runs, results):
        if args.write_dir is not None:
            log.info("wrote %s", write_adjusted(run, args.write_dir / run.name, result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
