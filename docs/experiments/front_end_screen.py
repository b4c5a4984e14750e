"""Screening two audio front-end changes with the linear baseline (docs/results.md, issue 11).

Not part of the package: a record of how the numbers in "Two front-end changes, screened with the
linear model" were made, runnable from the repository root with the package importable.

    # the clips' features through the runtime chain (eGeMAPS + Whisper tiny.en), changed audio:
    python docs/experiments/front_end_screen.py features --level-db -26 --out runs/level26.npz
    python docs/experiments/front_end_screen.py features --speed 0.9 --out runs/speed09.npz
    # eGeMAPS next to the states after Whisper encoder layers 1, 2, 3 and 4 (one file per choice):
    python docs/experiments/front_end_screen.py features --whisper-layers 2 4 --out runs/layers24.npz
    # each corpus's active speech level per emotion (400 random clips, seed 0):
    python docs/experiments/front_end_screen.py levels
    # logistic regression, RAVDESS folds + leave one corpus out, exactly as speech_cv --linear-only:
    python docs/experiments/front_end_screen.py linear --cache runs/edge_cache                      # as shipped
    python docs/experiments/front_end_screen.py linear --cache runs/edge_cache --features runs/level26.npz
    python docs/experiments/front_end_screen.py linear --cache runs/edge_cache --augment runs/speed09.npz

`--level-db`: every clip scaled so that its active speech level (90th percentile of 25-ms frame
energies) is that many dBFS; `--speed`: resampled as if played `speed` times as fast (pitch and
tempo together, as Kaldi's speed perturbation). `--augment` adds the changed copies of the training
clips (each as its own speaker for the normaliser) to the training set only.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import numpy as np

from cmer_edge.audio.convert import load_audio
from cmer_edge.data.speech_manifest import load_manifests
from cmer_edge.training.edge import DEFAULT_AUDIO
from cmer_edge.training.edge_data import load_cached_features
from cmer_edge.training.speech_cv import LOCO, linear_scores, ravdess_folds

MANIFESTS = [Path("../shared/data") / c for c in ("ravdess", "savee", "emodb")]


def active_level_db(x: np.ndarray, frame: int = 400) -> float:
    frames = x[: len(x) // frame * frame].reshape(-1, frame).astype(np.float64)
    return float(np.percentile(10 * np.log10((frames ** 2).mean(1) + 1e-12), 90))


def _layers(layers: list[int]):
    """eGeMAPS next to the Whisper tiny.en states after each of `layers` (prefix copies of the encoder)."""
    from cmer_edge.asr.whisper import resolve_whisper_model
    from cmer_edge.features.base import ChainExtractor
    from cmer_edge.features.registry import make_audio_extractor
    from cmer_edge.features.whisper_encoder import WhisperEncoderExtractor, _model_sha256
    from cmer_edge.features.whisper_prefix import encoder_prefix

    source = Path(resolve_whisper_model("tiny.en"))
    parts = [make_audio_extractor("opensmile.eGeMAPSv02")]
    for layer in layers:
        model = source if layer == 4 else encoder_prefix(source, layer, _model_sha256(source))
        part = WhisperEncoderExtractor("whisper.tiny.en", model=str(model))
        part.name = f"whisper.tiny.en.layer{layer}"  # chain parts need distinct names
        parts.append(part)
    return ChainExtractor(parts)


def features(args) -> None:
    from scipy.signal import resample_poly

    from cmer_edge.features.registry import make_audio_extractor

    clips = load_manifests(MANIFESTS, check_audio=False).clips
    extractor = make_audio_extractor("+".join(DEFAULT_AUDIO)) if not args.whisper_layers else _layers(args.whisper_layers)
    x = np.zeros((len(clips), extractor.dim), np.float32)
    ok = np.zeros(len(clips), bool)
    speed = Fraction(args.speed).limit_denominator(100)
    for i, clip in enumerate(clips):
        audio = load_audio(clip.path)
        if args.level_db is not None:
            audio = audio * 10 ** ((args.level_db - active_level_db(audio)) / 20)
        if speed != 1:
            audio = resample_poly(audio, speed.denominator, speed.numerator)
        try:
            x[i], ok[i] = extractor(audio.astype(np.float32)), True
        except ValueError as exc:
            print(f"no features for {clip.path}: {exc}")
    np.savez(args.out, x_a=x, audio_ok=ok)


def linear(args) -> None:
    clips = load_manifests(MANIFESTS, check_audio=False).clips
    data = dict(np.load(args.features)) if args.features else load_cached_features(MANIFESTS, args.cache)
    extra = [(d["x_a"], d["audio_ok"]) for d in map(np.load, args.augment)]
    speakers = [c.speaker_key for c in clips]
    corpus = np.array([c.corpus for c in clips])
    y = np.array([c.meld_label for c in clips])
    plans = [(f"fold{k}", test, dev) for k, (test, dev) in enumerate(ravdess_folds())]
    plans += [(f"without_{c}", sorted({s for s, c2 in zip(speakers, corpus) if c2 == c}), dev) for c, dev in LOCO.items()]
    folds = []
    for name, test, dev in plans:
        out = linear_scores(data["x_a"], data["audio_ok"], speakers, y, test, dev, np.ones(len(y), bool), 0, extra)
        if name.startswith("fold"):
            folds.append(out)
        print(name, " ".join(f"{k} {out[k]:.1f}" for k in ("dev_k0", "dev_k10", "k0", "k10")), flush=True)
    print("RAVDESS mean", " ".join(f"{k} {np.mean([f[k] for f in folds]):.1f}" for k in ("dev_k0", "dev_k10", "k0", "k10")))


def levels(args) -> None:
    from cmer_edge.model.config import EMOTIONS

    clips = load_manifests(MANIFESTS, check_audio=False).clips
    by_class: dict[tuple[str, int], list[float]] = {}
    for i in np.random.default_rng(0).permutation(len(clips))[:400]:
        by_class.setdefault((clips[i].corpus, clips[i].meld_label), []).append(active_level_db(load_audio(clips[i].path)))
    for corpus in ("RAVDESS", "SAVEE", "EmoDB"):
        print(corpus, " ".join(f"{EMOTIONS[label]} {np.mean(v):.1f}" for (c, label), v in sorted(by_class.items())
                                if c == corpus))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("features")
    f.add_argument("--level-db", type=float, default=None)
    f.add_argument("--speed", type=float, default=1.0)
    f.add_argument("--whisper-layers", type=int, nargs="*", default=[], help="eGeMAPS + these layers' states")
    f.add_argument("--out", type=Path, required=True)
    sub.add_parser("levels")
    lin = sub.add_parser("linear")
    lin.add_argument("--cache", type=Path, default=Path("runs/edge_cache"))
    lin.add_argument("--features", type=Path, default=None, help="changed features instead of the cached ones")
    lin.add_argument("--augment", type=Path, nargs="*", default=[], help="changed copies added to training")
    args = p.parse_args()
    {"features": features, "levels": levels, "linear": linear}[args.command](args)


if __name__ == "__main__":
    main()
