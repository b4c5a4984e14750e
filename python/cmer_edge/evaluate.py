"""`python -m cmer_edge.evaluate`: score a bundle on a split, in the paper's Table 1/2 format.

Prints weighted F1 overall and per class (`--json` for JSON), writes a confusion-matrix PNG, and
with `--predictions FILE` a CSV of Dialogue_ID,Utterance_ID,label,pred so anyone can recompute the
metric. `--modalities text|audio` hides the other modality of a bimodal bundle.

Features come from a feature store (`--store`, as trained), or straight from a MELD directory
(`--meld-dir`) through the bundle's own runtime encoders (ONNX Runtime / TensorRT, no torch), i.e.
what the deployed model sees. Without `--bundle` the embedded default bundle is evaluated.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

from cmer_edge.cli_common import UserError, cli_entry, window_arg

import numpy as np

log = logging.getLogger("cmer_edge")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cmer_edge.evaluate", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples: python -m cmer_edge.evaluate --meld-dir ../shared/data/meld --split test --modalities text\n"
               "          python -m cmer_edge.evaluate --bundle runs/meld_text/seed0 --store features/meld "
               "--split test --predictions test_preds.csv --confusion test_cm.png")
    p.add_argument("--bundle", type=Path, default=None, help="trained bundle directory (default: the embedded one)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", type=Path, help="feature store with the bundle's features")
    source.add_argument("--meld-dir", type=Path, help="MELD CSV directory or MELD.Raw: features computed with the "
                                                      "bundle's runtime encoders")
    p.add_argument("--onnx-precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="with --meld-dir: which exported encoder graph ONNX Runtime runs (default: the bundle's)")
    p.add_argument("--split", default="test")
    p.add_argument("--modalities", choices=("both", "audio", "text"), default=None,
                   help="use only these inputs (default: what the bundle was trained on)")
    p.add_argument("--protocol", choices=("paper", "live"), default=None, help="default: the bundle's")
    p.add_argument("--window", type=window_arg, default=None, help="live window (default: the bundle's)")
    p.add_argument("--engine", choices=("native", "torch"), default="native")
    p.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32", help="native weights")
    p.add_argument("--label-key", default="label", help="index field holding the label")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.add_argument("--predictions", type=Path, default=None, help="write Dialogue_ID,Utterance_ID,label,pred CSV")
    p.add_argument("--confusion", type=Path, default=None, help="write the confusion matrix PNG here")
    return p


def bundle_feature_names(bundle) -> tuple[list[str], str | None]:
    """The store feature names a bundle was trained on: (audio parts in order, text)."""
    feats = bundle.manifest.get("features", {})
    audio = feats.get("audio")
    names = [] if not audio else [p["name"] for p in audio.get("parts", [audio])]
    return names, feats.get("text", {}).get("name")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from cmer_edge.features.store import FeatureStore
    from cmer_edge.model.bundle import load_bundle
    from cmer_edge.training.dialogues import load_dialogues
    from cmer_edge.training.metrics import score
    from cmer_edge.training.predictors import make_predictor
    from cmer_edge.training.report import plot_confusion, scores_table

    from cmer_edge.runtime.default_bundle import default_bundle_path

    bundle = load_bundle(args.bundle or default_bundle_path())
    if args.store is not None:
        audio, text = bundle_feature_names(bundle)
        dialogues = load_dialogues(FeatureStore.open(args.store), args.split, audio, text, label_key=args.label_key,
                                   audio_norm=bundle.manifest.get("audio_norm", "global"))
    else:
        from cmer_edge.training.corpus_features import meld_dialogues

        dialogues = meld_dialogues(bundle, args.meld_dir, args.split, onnx_precision=args.onnx_precision)
    if not sum(len(d.labels) for d in dialogues):
        raise UserError(f"split {args.split!r} has no labelled utterances (an empty or header-only CSV?)")
    modalities = args.modalities or bundle.head_config.modalities
    for d in dialogues:
        if modalities == "text":
            d.present[:, 0] = 0
        elif modalities == "audio":
            d.present[:, 1] = 0
    protocol = args.protocol or bundle.manifest.get("protocol", "paper")
    window = args.window or bundle.window_utts
    probs = make_predictor(bundle, args.engine, args.precision)(dialogues, protocol, window)
    y_true = np.concatenate([d.labels for d in dialogues])
    y_pred = np.concatenate([p.argmax(-1) for p in probs])
    scores = score(y_true, y_pred, bundle.labels)
    if args.predictions:
        with open(args.predictions, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["Dialogue_ID", "Utterance_ID", "label", "pred"])
            for d, p in zip(dialogues, probs):
                for u, y, k in zip(d.utterance_ids, d.labels, p.argmax(-1)):
                    writer.writerow([d.dialogue_id, u, bundle.labels[y], bundle.labels[k]])
    name = f"{bundle.manifest.get('name', bundle.path.name)} [{modalities}, {protocol}, {args.engine}]"
    if args.confusion:
        plot_confusion(scores, str(args.confusion), f"{name}: {args.split} weighted F1 {scores.weighted_f1:.2f}")
    if args.json:
        print(json.dumps({"bundle": str(bundle.path), "split": args.split, "modalities": modalities,
                          "protocol": protocol, "window_utts": window, "engine": args.engine,
                          "precision": args.precision, **scores.to_dict()}, indent=2))
    else:
        print(f"{args.split}: {len(y_true)} utterances in {len(dialogues)} dialogues")
        print(scores_table({name: [scores]}))
        print(f"weighted F1 {scores.weighted_f1:.2f}  accuracy {scores.accuracy:.2f}  UAR {scores.uar:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
