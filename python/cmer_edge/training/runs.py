"""One training run end to end: dialogues from a store -> trained head -> bundle + dev/test scores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from cmer_edge.bundle import save_bundle
from cmer_edge.features.store import FeatureStore
from cmer_edge.model.config import EMOTIONS, HeadConfig
from cmer_edge.training.dialogues import Dialogue
from cmer_edge.training.distributed import Distributed
from cmer_edge.training.metrics import Scores, score
from cmer_edge.training.trainer import TrainConfig, predict, train_head


@dataclass(frozen=True)
class FeatureChoice:
    audio: tuple[str, ...]
    text: str | None

    def manifest(self, store: FeatureStore) -> dict:
        """features.audio / features.text as the runtime rebuilds them: the extractor spec of each
        stored feature (several audio features become a chain, like make_audio_extractor("a+b"))."""
        specs = store.manifest["features"]
        out = {}
        if len(self.audio) == 1:
            out["audio"] = dict(specs[self.audio[0]], name=self.audio[0])
        elif self.audio:
            out["audio"] = {"name": "+".join(self.audio), "kind": "chain",
                            "dim": sum(int(specs[n]["dim"]) for n in self.audio),
                            "parts": [dict(specs[n], name=n) for n in self.audio]}
        if self.text:
            out["text"] = dict(specs[self.text], name=self.text)
        return out


def write_population_stats(out_dir: Path, train: list[Dialogue]) -> Path:
    """The training population's raw audio mean/var: the prior of live per-session z-scoring."""
    raw = np.concatenate([d.x_a_raw[d.present[:, 0] > 0] for d in train]).astype(np.float64)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "audio_norm.safetensors"
    save_file({"mean": raw.mean(0).astype(np.float32), "var": raw.var(0).astype(np.float32)}, str(path))
    return path


def store_labels(store: FeatureStore) -> tuple[str, ...]:
    return tuple(store.manifest.get("labels") or EMOTIONS)


def scores_for(model, dialogues: list[Dialogue], protocol: str, window_utts: int,
               labels: tuple[str, ...], hide: str | None = None) -> tuple[Scores, list[np.ndarray]]:
    """Scores and probabilities of `model` on `dialogues` (`hide`: a modality scored as missing)."""
    probs = predict(model, dialogues, protocol, window_utts, hide)
    y_true = np.concatenate([d.labels for d in dialogues])
    y_pred = np.concatenate([p.argmax(-1) for p in probs])
    return score(y_true, y_pred, labels), probs


def save_trained(out_dir: Path, result, head_cfg: HeadConfig, cfg: TrainConfig, *, name: str,
                 labels: tuple[str, ...], features: dict, audio_norm: str, train: list[Dialogue], metrics: dict,
                 **manifest_extra) -> Path:
    """Write a trained head as a bundle: weights, features spec, protocol, dev/test metrics, history."""
    manifest = {
        "name": name, "labels": list(labels), "features": features, "audio_norm": audio_norm,
        "protocol": cfg.protocol, "window_utts": cfg.window_utts,
        "metrics": {split: {k: m[k] for k in ("weighted_f1", "uar", "accuracy")} for split, m in metrics.items()},
        "training": result.summary(cfg), **manifest_extra,
    }
    tensors = {k: v.detach().numpy() for k, v in result.model.state_dict().items()}
    extra = {"audio_norm": write_population_stats(out_dir, train)} if audio_norm == "speaker" else {}
    return save_bundle(out_dir, head_config=head_cfg, head_tensors=tensors, manifest=manifest, extra_files=extra,
                       local_paths=True)  # a working bundle: the exporter reads its model paths


def run_one(store: FeatureStore, features: FeatureChoice, head_cfg: HeadConfig, cfg: TrainConfig,
            train: list[Dialogue], dev: list[Dialogue], evals: dict[str, list[Dialogue]], out_dir: Path,
            name: str, audio_norm: str = "global", dist: Distributed = Distributed()) -> dict:
    """Train one seed, save its bundle in `out_dir` (rank 0 under torchrun), score dev (selection) and
    `evals` (report only)."""
    labels = store_labels(store)
    result = train_head(head_cfg, cfg, train, dev, dist)
    metrics = {"dev": scores_for(result.model, dev, cfg.protocol, cfg.window_utts, labels)[0].to_dict()}
    for split, dialogues in evals.items():
        metrics[split] = scores_for(result.model, dialogues, cfg.protocol, cfg.window_utts, labels)[0].to_dict()
    if not dist.is_main:
        return metrics
    save_trained(out_dir, result, head_cfg, cfg, name=name, labels=labels, features=features.manifest(store),
                 audio_norm=audio_norm, train=train, metrics=metrics,
                 profile=store.manifest.get("profile", "custom"), store=str(store.root))
    return metrics
