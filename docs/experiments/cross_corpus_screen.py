"""Screening for a stranger from an unseen corpus with the linear model (docs/results.md, issue 11).

Not part of the package: a record of how the numbers in "Across corpora: nuisance projections and the
feature columns, screened" were made, runnable from the repository root with the package importable.

    # the 8 plans of the earlier screens (RAVDESS folds + leave one corpus out) and the nested cross-corpus
    # plans, on some columns of the cached chain (eGeMAPS 0:88, Whisper layer 4 88:856, layer 2 856:1624):
    python docs/experiments/cross_corpus_screen.py --cache runs/edge_cache_s27 --columns 88:1624
    # each clip's Whisper blocks standardised across their own dims (layer 4 and layer 2):
    python docs/experiments/cross_corpus_screen.py --cache runs/edge_cache_s27 --row-norm 88:856,856:1624
    # the same with a nuisance attribute projection (the top K directions of the speakers' or corpora's
    # class-mean offsets in the training rows, removed before the classifier):
    python docs/experiments/cross_corpus_screen.py --cache runs/edge_cache_s27 --nap 8 --nuisance speaker
    # trained on whole clips, the dev and test speakers scored on their speech spans (stop 32); and trained
    # on both (each clip's span an extra training copy):
    python docs/experiments/cross_corpus_screen.py --features runs/shipped.npz --scored-on runs/trimmed.npz
    python docs/experiments/cross_corpus_screen.py --features runs/shipped.npz --scored-on runs/trimmed.npz \
        --augment runs/trimmed.npz

Nested plans ("nest_T:A->B"): for a corpus T left out, train on one of the two other corpora (A) and
test on the third (B): a cross-corpus dev score that never touches T (the mean of nest_SAVEE:* is the
cross-corpus dev of the SAVEE target).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cmer_edge.data.speech_manifest import load_manifests
from cmer_edge.training.edge_data import load_cached_features
from cmer_edge.training.speech_cv import LOCO, linear_scores, ravdess_folds

MANIFESTS = [Path("../shared/data") / c for c in ("ravdess", "savee", "emodb")]
CORPORA = ("RAVDESS", "SAVEE", "EmoDB")


def nuisance_projection(labels: np.ndarray, groups: np.ndarray, dims: int):
    """A transform for speech_cv.linear_predictions: remove the top `dims` directions of the training
    rows' group-and-class means about their class means (each weighted by sqrt of its row count)."""
    def fit(x: np.ndarray, train: np.ndarray):
        offsets = []
        for c in np.unique(labels[train]):
            mean = x[train & (labels == c)].mean(0)
            for g in np.unique(groups[train & (labels == c)]):
                rows = train & (labels == c) & (groups == g)
                offsets.append((x[rows].mean(0) - mean) * np.sqrt(rows.sum()))
        basis = np.linalg.svd(np.array(offsets), full_matrices=False)[2][:dims].T
        return lambda z: z - (z @ basis) @ basis.T
    return fit


def column_slices(text: str) -> list[slice]:
    """'0:88,856:1624' -> [slice(0, 88), slice(856, 1624)]; anything else is a usage error."""
    try:
        bounds = [tuple(int(v) for v in part.split(":")) for part in text.split(",")]
    except ValueError:
        bounds = [()]
    if not all(len(b) == 2 and 0 <= b[0] < b[1] for b in bounds):
        raise argparse.ArgumentTypeError(f"expected START:STOP[,START:STOP] with 0 <= START < STOP, got {text!r}")
    return [slice(*b) for b in bounds]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, default=Path("runs/edge_cache_s27"))
    p.add_argument("--features", type=Path, nargs="*", default=[],
                   help="feature files (front_end_screen.py features / whisper_layers.py) used instead of --cache, side by side")
    p.add_argument("--columns", type=column_slices, default=None,
                   help="START:STOP[,START:STOP] of the cached chain (default all)")
    p.add_argument("--nap", type=int, default=0, help="nuisance directions removed (0: none)")
    p.add_argument("--nuisance", choices=("speaker", "corpus"), default="speaker")
    p.add_argument("--row-norm", type=column_slices, default=None,
                   help="START:STOP[,...]: each clip's values in each of these blocks standardised across the block "
                        "(an utterance's own scale and offset removed; needs no statistics of anyone)")
    p.add_argument("--scored-on", type=Path, default=None,
                   help="a feature file (as --features) whose rows replace the dev and test speakers' rows")
    p.add_argument("--augment", type=Path, nargs="*", default=[], help="feature files added as training copies")
    args = p.parse_args()
    clips = load_manifests(MANIFESTS, check_audio=False).clips
    parts = [dict(np.load(f)) for f in args.features] or [load_cached_features(MANIFESTS, args.cache)]
    data = {"x_a": np.concatenate([d["x_a"] for d in parts], axis=1),
            "audio_ok": np.logical_and.reduce([d["audio_ok"] for d in parts])}
    raw = data["x_a"]
    if (args.scored_on or args.augment) and (args.columns or args.row_norm):
        p.error("--scored-on / --augment take whole feature files: not with --columns / --row-norm")
    scored_on = dict(np.load(args.scored_on)) if args.scored_on else None
    extra = [(d["x_a"], d["audio_ok"]) for d in map(np.load, args.augment)]
    for block in args.row_norm or []:
        part = raw[:, block]
        raw[:, block] = (part - part.mean(1, keepdims=True)) / np.maximum(part.std(1, keepdims=True), 1e-6)
    if args.columns:
        raw = np.concatenate([raw[:, columns] for columns in args.columns], axis=1)
    speakers = np.array([c.speaker_key for c in clips])
    corpus = np.array([c.corpus for c in clips])
    y = np.array([c.meld_label for c in clips])
    every = np.ones(len(y), bool)
    plans = [(f"fold{k}", test, dev, every) for k, (test, dev) in enumerate(ravdess_folds())]
    plans += [(f"without_{c}", sorted(set(speakers[corpus == c])), dev, every) for c, dev in LOCO.items()]
    for left_out in CORPORA:
        for train_on, test_on in ((a, b) for a in CORPORA for b in CORPORA if left_out not in (a, b) and a != b):
            plans.append((f"nest_{left_out}:{train_on}->{test_on}", sorted(set(speakers[corpus == test_on])), [],
                          corpus == train_on))
    transform = nuisance_projection(y, speakers if args.nuisance == "speaker" else corpus, args.nap) if args.nap else None
    scores = {}
    for name, test, dev, trainable in plans:
        x, usable = raw, data["audio_ok"]
        if scored_on is not None:
            held = np.isin(speakers, list(test) + list(dev))
            x, usable = raw.copy(), usable & scored_on["audio_ok"]
            x[held] = scored_on["x_a"][held]
        scores[name] = linear_scores(x, usable, list(speakers), y, test, dev, trainable, 0, extra,
                                     transform=transform)
        shown = ("k0", "k10") if name.startswith("nest") else ("dev_k0", "dev_k10", "k0", "k10")
        print(name, " ".join(f"{k} {scores[name][k]:.1f}" for k in shown), flush=True)
    eight = [s for n, s in scores.items() if not n.startswith("nest")]
    print("8-plan dev mean (a) / (b): " + " / ".join(f"{np.mean([s[k] for s in eight]):.2f}" for k in ("dev_k0", "dev_k10")))
    for left_out in CORPORA:
        nested = [s["k0"] for n, s in scores.items() if n.startswith(f"nest_{left_out}:")]
        print(f"nested cross-corpus dev for {left_out} (a): {np.mean(nested):.2f}")


if __name__ == "__main__":
    main()
