"""Screening audio front-end changes with the linear baseline (docs/results.md, issue 11).

Not part of the package: a record of how the numbers in "Two front-end changes, screened with the
linear model" were made, runnable from the repository root with the package importable.

    # the clips' features through the runtime chain (eGeMAPS + Whisper tiny.en), changed audio:
    python docs/experiments/front_end_screen.py features --level-db -26 --out runs/level26.npz
    python docs/experiments/front_end_screen.py features --speed 0.9 --out runs/speed09.npz
    # eGeMAPS next to the states after Whisper encoder layers 1, 2, 3 and 4 (one file per choice):
    python docs/experiments/front_end_screen.py features --whisper-layers 2 4 --out runs/layers24.npz
    # Whisper base's states alone, after layer L of 6 (stop 30; --chain whisper.base / whisper.base.l2 are the
    # registered layers 6 and 2, the same vectors):
    python docs/experiments/front_end_screen.py features --whisper-model base --whisper-layers 3 --no-egemaps \
        --out runs/base_l3.npz
    # the linear model trained without SAVEE: its confusions on SAVEE, setting (a):
    python docs/experiments/front_end_screen.py confusion --cache runs/edge_cache_l24 --corpus SAVEE
    # each corpus's active speech level per emotion (400 random clips, seed 0):
    python docs/experiments/front_end_screen.py levels
    # logistic regression, RAVDESS folds + leave one corpus out, exactly as speech_cv --linear-only:
    python docs/experiments/front_end_screen.py linear --cache runs/edge_cache                      # as shipped
    python docs/experiments/front_end_screen.py linear --cache runs/edge_cache --features runs/level26.npz
    python docs/experiments/front_end_screen.py linear --cache runs/edge_cache --augment runs/speed09.npz
    # speaker / channel perturbations as extra training copies (runs/edge_cache_l24: the L24 chain):
    python docs/experiments/front_end_screen.py features --pitch 3 --seed 1 --out runs/aug_pitch.npz
    python docs/experiments/front_end_screen.py features --eq-db 6 --reverb 0.5 --snr-db 15 --seed 2 \
        --out runs/aug_chan.npz
    python docs/experiments/front_end_screen.py linear --cache runs/edge_cache_l24 --augment runs/aug_pitch.npz
    # other openSMILE functionals (the issue's list), alone and next to the shipped chain's features:
    CMER_EDGE_EMO_LARGE_CONF=../shared/opensmile/emo_large.conf python docs/experiments/front_end_screen.py \
        features --chain opensmile.emo_large --out runs/emo_large.npz                     # | opensmile.ComParE_2016
    python docs/experiments/front_end_screen.py features --chain edgel3.sea.64 \
        --l3-weights ../shared/weights/edgel3/edgel3_sea_ust_audio_emb_64.h5.gz --out runs/edgel3.npz
    python docs/experiments/front_end_screen.py linear --features runs/emo_large.npz \
        [--with-cache --cache runs/edge_cache_l24]
    # the span of each clip the live segmenter (Silero VAD + endpointer, runtime defaults) would hand on,
    # and the features of only that span (stop 32):
    python docs/experiments/front_end_screen.py spans --out runs/spans.npz
    python docs/experiments/front_end_screen.py features --trim runs/spans.npz --out runs/trimmed.npz
    # the normaliser's prior from the training speakers of the clip's gender (known, or predicted):
    python docs/experiments/front_end_screen.py linear --cache runs/edge_cache_l24 --gender-prior predicted

`--level-db`: every clip scaled so that its active speech level (90th percentile of 25-ms frame
energies) is that many dBFS; `--speed`: resampled as if played `speed` times as fast (pitch and
tempo together, as Kaldi's speed perturbation); `--pitch`, `--eq-db`, `--reverb`, `--snr-db`: a random
speaker / microphone / room / noise variant per clip; `--trim`: only the span `spans` found (from the
first utterance's start to the last one's end, pre- and post-roll included; the whole clip where the
VAD finds no speech; the features of `training.edge` since stop 32). `--augment` adds the changed copies of the training
clips (each as its own speaker for the normaliser) to the training set only.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import numpy as np

from cmer_edge.audio.channel import active_level_db
from cmer_edge.audio.convert import load_audio
from cmer_edge.data.emodb import SPEAKER_GENDER
from cmer_edge.data.speech_manifest import load_manifests
from cmer_edge.training.edge import DEFAULT_AUDIO
from cmer_edge.training.edge_data import load_cached_features
from cmer_edge.training.speech_cv import LOCO, linear_predictions, linear_scores, ravdess_folds

MANIFESTS = [Path("../shared/data") / c for c in ("ravdess", "savee", "emodb")]
CORPORA = ("RAVDESS", "SAVEE", "EmoDB")


def _layers(layers: list[int], model_id: str = "tiny.en", egemaps: bool = True):
    """eGeMAPS (unless not `egemaps`) next to the Whisper `model_id` states after each of `layers`
    (prefix copies of the encoder)."""
    from cmer_edge.features.base import ChainExtractor
    from cmer_edge.features.registry import make_audio_extractor
    from cmer_edge.features.whisper_encoder import WhisperEncoderExtractor, local_whisper_model, _model_sha256
    from cmer_edge.features.whisper_prefix import encoder_prefix

    source = Path(local_whisper_model(model_id))
    depth = {"tiny.en": 4, "base": 6}[model_id]
    parts = [make_audio_extractor("opensmile.eGeMAPSv02")] if egemaps else []
    for layer in layers:
        model = source if layer == depth else encoder_prefix(source, layer, _model_sha256(source))
        part = WhisperEncoderExtractor(f"whisper.{model_id}", model=str(model))
        part.name = f"whisper.{model_id}.layer{layer}"  # chain parts need distinct names
        parts.append(part)
    return ChainExtractor(parts)


def biquad_peak(f0: float, gain_db: float, q: float, sr: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook peaking EQ."""
    a, w = 10 ** (gain_db / 40), 2 * np.pi * f0 / sr
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return b / den[0], den / den[0]


def perturbed(audio: np.ndarray, rng: np.random.Generator, args) -> np.ndarray:
    """One random speaker / channel variant of a clip (parameters drawn per clip)."""
    from scipy.signal import fftconvolve, lfilter

    if args.pitch:
        import librosa

        steps = rng.uniform(-args.pitch, args.pitch)
        audio = librosa.effects.pitch_shift(audio, sr=16000, n_steps=steps)
    if args.eq_db:
        for _ in range(2):  # two random resonances / notches of the microphone and room
            b, a = biquad_peak(np.exp(rng.uniform(np.log(150), np.log(6000))), rng.uniform(-args.eq_db, args.eq_db),
                               rng.uniform(0.7, 2.0))
            audio = lfilter(b, a, audio)
    if args.reverb:
        rt60 = rng.uniform(0.15, args.reverb)
        t = np.arange(int(rt60 * 16000)) / 16000
        rir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
        rir *= 10 ** (-rng.uniform(0, 10) / 20) / np.sqrt((rir ** 2).sum())  # direct-to-reverberant 0-10 dB
        rir[0] = 1.0
        audio = fftconvolve(audio, rir)[: len(audio)]
    if args.snr_db is not None:
        noise = rng.standard_normal(len(audio))
        if rng.random() < 0.5:  # brown (low-frequency) noise, without its drift
            noise = np.cumsum(noise)
            noise -= np.convolve(noise, np.ones(400) / 400, "same")
        snr = rng.uniform(args.snr_db, args.snr_db + 15)
        level = 10 ** (active_level_db(audio) / 20)
        audio = audio + noise / (noise.std() + 1e-12) * level * 10 ** (-snr / 20)
    return audio


def features(args) -> None:
    from scipy.signal import resample_poly

    from cmer_edge.features.registry import make_audio_extractor

    clips = load_manifests(MANIFESTS, check_audio=False).clips
    options = {"weights": str(args.l3_weights)} if args.l3_weights else {}
    extractor = (make_audio_extractor(args.chain, **options) if not args.whisper_layers
                 else _layers(args.whisper_layers, args.whisper_model, not args.no_egemaps))
    x = np.zeros((len(clips), extractor.dim), np.float32)
    ok = np.zeros(len(clips), bool)
    speed = Fraction(args.speed).limit_denominator(100)
    spans = np.load(args.trim)["spans"] if args.trim else None
    for i, clip in enumerate(clips):
        audio = load_audio(clip.path)
        if spans is not None and spans[i, 2] > 0:
            audio = audio[int(round(spans[i, 0] * 16000)):int(round(spans[i, 1] * 16000))]
        if args.level_db is not None:
            audio = audio * 10 ** ((args.level_db - active_level_db(audio)) / 20)
        if speed != 1:
            audio = resample_poly(audio, speed.denominator, speed.numerator)
        audio = perturbed(audio, np.random.default_rng([args.seed, i]), args)
        try:
            x[i], ok[i] = extractor(audio.astype(np.float32)), True
        except ValueError as exc:
            print(f"no features for {clip.path}: {exc}")
    np.savez(args.out, x_a=x, audio_ok=ok)


def linear(args) -> None:
    clips = load_manifests(MANIFESTS, check_audio=False).clips
    parts = [dict(np.load(f)) for f in args.features]
    if not parts or args.with_cache:
        parts.insert(0, load_cached_features(MANIFESTS, args.cache))
    data = {"x_a": np.concatenate([d["x_a"] for d in parts], axis=1),
            "audio_ok": np.logical_and.reduce([d["audio_ok"] for d in parts])}
    extra = [(d["x_a"], d["audio_ok"]) for d in map(np.load, args.augment)]
    speakers = [c.speaker_key for c in clips]
    corpus = np.array([c.corpus for c in clips])
    y = np.array([c.meld_label for c in clips])
    plans = [(f"fold{k}", test, dev) for k, (test, dev) in enumerate(ravdess_folds())]
    plans += [(f"without_{c}", sorted({s for s, c2 in zip(speakers, corpus) if c2 == c}), dev) for c, dev in LOCO.items()]
    gender = np.array([(c.gender or SPEAKER_GENDER.get(c.speaker, ""))[:1] for c in clips])
    folds = []
    for name, test, dev in plans:
        groups = None
        if args.gender_prior != "none":
            train = ~np.isin(speakers, test + dev) & data["audio_ok"]
            guess = gender if args.gender_prior == "oracle" else predicted_gender(data["x_a"], gender, train)
            held = np.isin(speakers, test) & data["audio_ok"]
            print(f"{name}: gender right for {100 * (guess[held] == gender[held]).mean():.0f} % of the test clips")
            groups = (gender, np.where(train, gender, guess))
        _, which, sizes = np.unique(corpus, return_inverse=True, return_counts=True)
        weights = 1.0 / sizes[which] if args.balanced_prior else None
        out = linear_scores(data["x_a"], data["audio_ok"], speakers, y, test, dev, np.ones(len(y), bool), 0, extra,
                            groups, weights)
        if name.startswith("fold"):
            folds.append(out)
        print(name, " ".join(f"{k} {out[k]:.1f}" for k in ("dev_k0", "dev_k10", "k0", "k10")), flush=True)
    print("RAVDESS mean", " ".join(f"{k} {np.mean([f[k] for f in folds]):.1f}" for k in ("dev_k0", "dev_k10", "k0", "k10")))


def predicted_gender(x: np.ndarray, gender: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Each clip's gender as a logistic regression on its own (globally z-scored) features tells it."""
    from sklearn.linear_model import LogisticRegression

    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    return LogisticRegression(C=0.05, max_iter=3000).fit((x[train] - mean) / std, gender[train]).predict((x - mean) / std)


def confusion(args) -> None:
    """The linear model trained without one corpus: its confusion matrix on that corpus, setting (a)."""
    from sklearn.metrics import confusion_matrix

    from cmer_edge.model.config import EMOTIONS

    clips = load_manifests(MANIFESTS, check_audio=False).clips
    data = load_cached_features(MANIFESTS, args.cache)
    speakers = [c.speaker_key for c in clips]
    y = np.array([c.meld_label for c in clips])
    test = sorted({c.speaker_key for c in clips if c.corpus == args.corpus})
    pred = linear_predictions(data["x_a"], data["audio_ok"], speakers, y, test, [], np.ones(len(y), bool), 0)[0]
    rows = np.isin(speakers, test) & data["audio_ok"]
    print("rows: true class, columns: predicted;", " ".join(EMOTIONS))
    print(confusion_matrix(y[rows], pred[rows], labels=range(len(EMOTIONS))))


def spans(args) -> None:
    """Per clip: (start_s, end_s, speech found) of what the runtime's Segmenter hands on from it
    (`speech_span`), and the clip's duration; then each corpus's mean lead / trailing silence."""
    from cmer_edge.audio.segmenter import speech_span

    clips = load_manifests(MANIFESTS, check_audio=False).clips
    out, duration = np.zeros((len(clips), 3)), np.zeros(len(clips))
    for i, clip in enumerate(clips):
        audio = load_audio(clip.path)
        duration[i] = len(audio) / 16000
        start, end, found = speech_span(audio)
        out[i] = start / 16000, end / 16000, found
    np.savez(args.out, spans=out, duration=duration)
    corpus = np.array([c.corpus for c in clips])
    for name in CORPORA:
        m = corpus == name
        print(f"{name}: {m.sum()} clips, {duration[m].mean():.2f} s, lead {out[m, 0].mean():.2f} s, trailing "
              f"{(duration[m] - out[m, 1]).mean():.2f} s, speech span {((out[m, 1] - out[m, 0]) / duration[m]).mean():.0%}"
              f" of the clip; no speech found in {(out[m, 2] == 0).sum()}")


def levels(args) -> None:
    from cmer_edge.model.config import EMOTIONS

    clips = load_manifests(MANIFESTS, check_audio=False).clips
    by_class: dict[tuple[str, int], list[float]] = {}
    for i in np.random.default_rng(0).permutation(len(clips))[:400]:
        by_class.setdefault((clips[i].corpus, clips[i].meld_label), []).append(active_level_db(load_audio(clips[i].path)))
    for corpus in CORPORA:
        print(corpus, " ".join(f"{EMOTIONS[label]} {np.mean(v):.1f}" for (c, label), v in sorted(by_class.items())
                                if c == corpus))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("features")
    f.add_argument("--level-db", type=float, default=None)
    f.add_argument("--speed", type=float, default=1.0)
    f.add_argument("--pitch", type=float, default=0.0, help="shift pitch by U(-P, P) semitones (tempo kept)")
    f.add_argument("--eq-db", type=float, default=0.0, help="two random peaking filters of U(-D, D) dB")
    f.add_argument("--reverb", type=float, default=0.0, help="synthetic room, RT60 U(0.15, R) s")
    f.add_argument("--snr-db", type=float, default=None, help="white or brown noise at U(S, S + 15) dB SNR")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--whisper-layers", type=int, nargs="*", default=[], help="eGeMAPS + these layers' states")
    f.add_argument("--whisper-model", choices=("tiny.en", "base"), default="tiny.en", help="with --whisper-layers")
    f.add_argument("--no-egemaps", action="store_true", help="with --whisper-layers: the states alone")
    f.add_argument("--chain", default="+".join(DEFAULT_AUDIO), help="the extractor chain (registry names joined by +)")
    f.add_argument("--l3-weights", type=Path, default=None, help="with an L3 --chain (alone): its Keras weights")
    f.add_argument("--trim", type=Path, default=None, help="an npz from `spans`: each clip cut to its speech span")
    f.add_argument("--out", type=Path, required=True)
    sub.add_parser("levels")
    sp = sub.add_parser("spans")
    sp.add_argument("--out", type=Path, required=True)
    conf = sub.add_parser("confusion")
    conf.add_argument("--cache", type=Path, default=Path("runs/edge_cache_l24"))
    conf.add_argument("--corpus", default="SAVEE", choices=("RAVDESS", "SAVEE", "EmoDB"))
    lin = sub.add_parser("linear")
    lin.add_argument("--cache", type=Path, default=Path("runs/edge_cache"))
    lin.add_argument("--features", type=Path, nargs="*", default=[],
                     help="changed or other features instead of the cached ones (several: side by side)")
    lin.add_argument("--with-cache", action="store_true", help="the cached features next to --features")
    lin.add_argument("--balanced-prior", action="store_true",
                     help="the normaliser's prior with every corpus weighing the same (not every clip)")
    lin.add_argument("--augment", type=Path, nargs="*", default=[], help="changed copies added to training")
    lin.add_argument("--gender-prior", choices=("none", "oracle", "predicted"), default="none",
                     help="the normaliser's prior from the training speakers of the clip's (known / predicted) gender")
    args = p.parse_args()
    {"features": features, "spans": spans, "levels": levels, "linear": linear, "confusion": confusion}[args.command](args)


if __name__ == "__main__":
    main()
