"""`python -m cmer_edge.evaluate`: score a bundle on a split, in the paper's Table 1/2 format.

Prints weighted F1 overall and per class (`--json` for JSON), writes a confusion-matrix PNG, and
with `--predictions FILE` a CSV of Dialogue_ID,Utterance_ID,label,pred (+ p_<class>, the head's
probabilities, for ensembles and calibration) so anyone can recompute the
metric. `--modalities text|audio` hides the other modality of a bimodal bundle.

Features come from a feature store (`--store`, as trained), or straight from a MELD directory
(`--meld-dir`) through the bundle's own runtime encoders (ONNX Runtime / TensorRT, no torch), i.e.
what the deployed model sees. Without `--bundle` the embedded default bundle is evaluated.

`--manifest CSV` scores labelled speech clips (RAVDESS, SAVEE, EmoDB or your own; see
cmer_edge.data.speech_manifest) through the live runtime itself, each clip its own fresh conversation
and cut as the live segmenter cuts it (its speech span: a corpus's silence around the speech is not
what a microphone stream hands on): UAR, accuracy, weighted F1, per-class recall and the confusion
matrix, and how many clips were scored of how many listed (and how many on the whole clip, where the
VAD found no speech). `--warmup-clips N`: the per-speaker normaliser first hears N other clips
of the same speaker.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

from cmer_edge.bundle import default_bundle_path, load_bundle
from cmer_edge.cli_common import UserError, cli_entry, fraction, int_in_range, window_arg
from cmer_edge.data.speech_manifest import load_manifests
from cmer_edge.features.store import FeatureStore
from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig
from cmer_edge.training.clip_eval import evaluate_clips
from cmer_edge.training.corpus_features import meld_dialogues
from cmer_edge.training.dialogues import load_dialogues
from cmer_edge.training.metrics import score
from cmer_edge.training.predictors import make_predictor
from cmer_edge.training.report import plot_confusion, scores_table

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
    source.add_argument("--manifest", type=Path, nargs="+",
                        help="labelled speech manifest(s) (CSV or folder with manifest.csv): each clip's speech span "
                             "through the live runtime as its own conversation")
    p.add_argument("--asr", choices=("none", "whisper"), default="none",
                   help="with --manifest: text from the manifest transcript (none) or from Whisper tiny.en")
    p.add_argument("--warmup-clips", type=int_in_range(0, 1000, "--warmup-clips"), default=0,
                   help="with --manifest: other clips of the same speaker the normaliser hears first")
    p.add_argument("--speakers", nargs="*", default=None, help="with --manifest: only these speaker ids")
    p.add_argument("--skip-bad", action="store_true", help="with --manifest: skip (and count) bad rows")
    p.add_argument("--seed", type=int, default=0, help="with --warmup-clips: which other clips")
    p.add_argument("--threads", type=int, default=1, help="with --manifest: runtime CPU threads")
    p.add_argument("--onnx-precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="with --meld-dir: which exported encoder graph ONNX Runtime runs (default: the bundle's)")
    p.add_argument("--split", default="test")
    p.add_argument("--modalities", choices=("both", "audio", "text"), default=None,
                   help="use only these inputs (default: what the bundle was trained on)")
    p.add_argument("--protocol", choices=("paper", "live"), default=None, help="default: the bundle's")
    p.add_argument("--window", type=window_arg, default=None, help="live window (default: the bundle's)")
    p.add_argument("--engine", choices=("native", "torch"), default="native")
    p.add_argument("--precision", choices=("fp32", "bf16", "int8"), default=None,
                   help="the native head's input projections (default: the bundle's runtime.head_precision)")
    p.add_argument("--label-key", default="label", help="index field holding the label")
    p.add_argument("--voice-weight", type=fraction("--voice-weight"), default=None,
                   help="the voice pool's weight, 0-1 (default: the bundle's runtime.voice_weight; 0: off); "
                        "applied by the live native head, as in listen")
    p.add_argument("--text-weight", type=fraction("--text-weight"), default=None,
                   help="the pool's words-alone weight under a neutral voice, 0-1 (default: the bundle's "
                        "runtime.text_weight; 0: off); applied by the live native head, as in listen")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.add_argument("--predictions", type=Path, default=None, help="write a CSV: Dialogue_ID,Utterance_ID (or path,speaker),label,pred, the "
                   "class probabilities p_<class> (and the clip's text)")
    p.add_argument("--confusion", type=Path, default=None, help="write the confusion matrix PNG here")
    return p


def bundle_feature_names(bundle) -> tuple[list[str], str | None]:
    """The store feature names a bundle was trained on: (audio parts in order, text)."""
    feats = bundle.manifest.features
    names = [] if feats.audio is None else [p.name for p in feats.audio.parts]
    return names, feats.text.name if feats.text is not None else None


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.manifest:
        return evaluate_manifest(args)
    bundle = load_bundle(args.bundle or default_bundle_path())
    if args.store is not None:
        audio, text = bundle_feature_names(bundle)
        dialogues = load_dialogues(FeatureStore.open(args.store), args.split, audio, text, label_key=args.label_key,
                                   audio_norm=bundle.manifest.audio_norm)
    else:
        dialogues = meld_dialogues(bundle, args.meld_dir, args.split, onnx_precision=args.onnx_precision)
    if not sum(len(d.labels) for d in dialogues):
        raise UserError(f"split {args.split!r} has no labelled utterances (an empty or header-only CSV?)")
    modalities = args.modalities or bundle.head_config.modalities
    for d in dialogues:
        if modalities == "text":
            d.present[:, 0] = 0
        elif modalities == "audio":
            d.present[:, 1] = 0
    protocol = args.protocol or bundle.manifest.protocol or "paper"
    window = args.window or bundle.window_utts
    runtime = bundle.manifest.runtime
    weight = runtime.voice_weight if args.voice_weight is None else args.voice_weight
    text_weight = runtime.text_weight if args.text_weight is None else args.text_weight
    if (weight or text_weight) and modalities == "both" and (args.engine != "native" or protocol != "live"):
        log.warning("the voice pool (weights %g / %g) is applied by the live native head only; these are the "
                    "fused head's scores (--engine native --protocol live applies it)", weight, text_weight)
    probs = make_predictor(bundle, args.engine, args.precision, voice_weight=weight,
                           text_weight=text_weight)(dialogues, protocol, window)
    y_true = np.concatenate([d.labels for d in dialogues])
    y_pred = np.concatenate([p.argmax(-1) for p in probs])
    scores = score(y_true, y_pred, bundle.labels)
    if args.predictions:
        with open(args.predictions, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["Dialogue_ID", "Utterance_ID", "label", "pred", *probability_columns(bundle.labels)])
            for d, p in zip(dialogues, probs):
                for u, y, row in zip(d.utterance_ids, d.labels, p):
                    writer.writerow([d.dialogue_id, u, bundle.labels[y], bundle.labels[row.argmax()],
                                     *probability_values(row)])
    name = f"{bundle.manifest.name or bundle.path.name} [{modalities}, {protocol}, {args.engine}]"
    if args.confusion:
        plot_confusion(scores, str(args.confusion), f"{name}: {args.split} weighted F1 {scores.weighted_f1:.2f}")
    if args.json:
        print(json.dumps({"bundle": str(bundle.path), "split": args.split, "modalities": modalities,
                          "protocol": protocol, "window_utts": window, "engine": args.engine,
                          "precision": args.precision or (bundle.manifest.runtime.head_precision
                                                          if args.engine == "native" else "fp32"),
                          **scores.to_dict()}, indent=2))
    else:
        print(f"{args.split}: {len(y_true)} utterances in {len(dialogues)} dialogues")
        print(scores_table({name: [scores]}))
        print(f"weighted F1 {scores.weighted_f1:.2f}  accuracy {scores.accuracy:.2f}  UAR {scores.uar:.2f}")
    return 0


def probability_columns(labels) -> list[str]:
    return [f"p_{name}" for name in labels]


def probability_values(probs) -> list[str]:
    return [f"{float(v):.5f}" for v in probs]


def evaluate_manifest(args) -> int:
    manifest = load_manifests(args.manifest, skip_bad=args.skip_bad)
    clips = manifest.clips
    if args.speakers is not None:
        clips = [c for c in clips if c.speaker in set(args.speakers)]
        if not clips:
            raise UserError(f"no clip of speakers {args.speakers} in {manifest.path}")
    modalities = args.modalities or "both"
    asr = "whisper" if args.asr == "whisper" else ("none" if modalities == "audio" else "external")
    recognizer = Recognizer(RecognizerConfig(bundle=str(args.bundle) if args.bundle else None, asr=asr,
                                             modalities=modalities, threads=args.threads, text_timeout_s=0.0,
                                             voice_weight=args.voice_weight, text_weight=args.text_weight))
    try:
        result = evaluate_clips(clips, recognizer, asr=args.asr, modalities=modalities,
                                warmup_clips=args.warmup_clips, seed=args.seed)
    finally:
        recognizer.close()
    labels = recognizer.bundle.labels
    scores = score(result.y_true, result.y_pred, labels)
    support = scores.confusion.sum(axis=1)
    recall = {name: (100.0 * scores.confusion[k, k] / support[k] if support[k] else None)
              for k, name in enumerate(labels)}
    listed = len(manifest.clips) + len(manifest.skipped)
    counts = {"listed": listed, "selected": len(clips), "scored": len(result.scored),
              "skipped_rows": len(manifest.skipped), "unscored": len(result.unscored),
              "whole_clip_no_speech_found": len(result.whole_clip)}
    if args.predictions:
        with open(args.predictions, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "speaker", "label", "pred", "text", *probability_columns(labels)])
            for k, i in enumerate(result.scored):
                writer.writerow([clips[i].path, clips[i].speaker_key, labels[result.y_true[k]],
                                 labels[result.y_pred[k]], result.texts[k], *probability_values(result.probs[k])])
    weight, text_weight = recognizer.head.voice_weight, recognizer.head.text_weight
    title = (f"{recognizer.bundle.manifest.name or 'bundle'} [{modalities}, asr {args.asr}"
             + (f", voice weight {weight:g}" if weight and modalities == "both" else "")
             + (f", text weight {text_weight:g}" if text_weight and modalities == "both" else "") + "]")
    if args.confusion:
        plot_confusion(scores, str(args.confusion), f"{title}: UAR {scores.uar:.2f}")
    if args.json:
        print(json.dumps({"manifest": [str(m) for m in args.manifest], "modalities": modalities, "asr": args.asr,
                          "warmup_clips": args.warmup_clips, "voice_weight": weight,
                          "text_weight": text_weight, "counts": counts,
                          "per_class_recall": recall,
                          "unscored": [(str(clips[i].path), why) for i, why in result.unscored],
                          "skipped": manifest.skipped, **scores.to_dict()}, indent=2))
        return 0
    print(f"{title}: scored {counts['scored']} of {counts['selected']} clips selected "
          f"({listed} listed, {counts['skipped_rows']} bad rows skipped, {counts['unscored']} unscored); "
          f"{counts['whole_clip_no_speech_found']} scored on the whole clip (the VAD found no speech in it)")
    print(f"UAR {scores.uar:.2f}  accuracy {scores.accuracy:.2f}  weighted F1 {scores.weighted_f1:.2f}")
    print("per-class recall: " + ", ".join(f"{k} {'-' if v is None else f'{v:.1f}'}" for k, v in recall.items()))
    print("confusion (rows true, columns predicted: " + " ".join(labels) + ")")
    for k, name in enumerate(labels):
        print(f"  {name:9s} " + " ".join(f"{n:4d}" for n in scores.confusion[k]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
