"""Screening other ways to weigh the voice against the words, on dev only (docs/results.md, issue 11).

Not part of the package: a record of how the numbers in "Two more ways to weigh the voice, screened on
dev" were made, runnable from the repository root with the package importable.

    # every bundle's views (both, voice alone, words alone) of voice_trust's three dev sets, the sets
    # rebuilt once from the first bundle's recorded command (~4 min per bundle on one core):
    python docs/experiments/pool_screen.py views --out runs/s28/views01.npz \\
        runs/s27/pack_FVA1L_s0 runs/s27/pack_FVA1L_s1 --spoken-dev runs/spoken_meld_dev_all --cache runs/edge_cache_s27
    # each bundle and the seed ensemble (their mean probabilities) fitted by voice_trust's rule, each
    # with the symmetric pool's grid:
    python docs/experiments/pool_screen.py report runs/s28/views01.npz [runs/s28/views02.npz]

The symmetric pool adds the words alone where the voice sounds flat:
p ∝ p_both^(1-g-h) · p_voice^g · p_text^h, g = w (1 - p_voice[neutral]) as in voice_trust, h = u p_voice[neutral]
(u = 0 is the shipped pool).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cmer_edge.bundle import load_bundle
from cmer_edge.model.config import EMOTIONS
from cmer_edge.model.voice_pool import FLOOR
from cmer_edge.training import voice_trust
from cmer_edge.training.metrics import score

VIEWS = ("labels", "both", "voice", "text")
NEUTRAL = EMOTIONS.index("neutral")


def views(args) -> None:
    import torch

    from cmer_edge.backends.torch_models import load_head_module

    torch.set_num_threads(1)
    first = load_bundle(args.bundles[0])
    sets = voice_trust.dev_sets_for(first, voice_trust.recipe_args(first, args.spoken_dev, args.cache), 1)
    arrays = {}
    for path in args.bundles:
        bundle = load_bundle(path)
        model = load_head_module(bundle)
        for name, dialogues in sets.items():
            for view, array in voice_trust.views(model, dialogues, bundle.manifest.window_utts).items():
                arrays[f"{path.name}|{name}|{view}"] = array
        print("views of", path, flush=True)
    np.savez(args.out, **arrays)


def symmetric(v: dict[str, np.ndarray], w: float, u: float) -> np.ndarray:
    flat = v["voice"][:, NEUTRAL:NEUTRAL + 1]
    g, h = w * (1 - flat), u * flat
    log = lambda p: np.log(np.maximum(p, FLOOR))  # noqa: E731
    return (1 - g - h) * log(v["both"]) + g * log(v["voice"]) + h * log(v["text"])


def gaps(dev: dict[str, dict[str, np.ndarray]], reference: dict[str, float], w: float, u: float) -> list[float]:
    """Each dev set's gap (points) of the symmetric pool with weights w, u against its reference score."""
    return [getattr(score(v["labels"], symmetric(v, w, u).argmax(-1), EMOTIONS), voice_trust.GAPS[s][0]) - reference[s]
            for s, v in dev.items()]


def report(args) -> None:
    z = {k: v for f in args.views for k, v in np.load(f).items()}  # several files: one set of dev sets
    members = sorted({k.split("|")[0] for k in z})
    sets = sorted({k.split("|")[1] for k in z})
    runs = {m: {s: {view: z[f"{m}|{s}|{view}"] for view in VIEWS} for s in sets} for m in members}
    runs["ensemble"] = {s: {"labels": runs[members[0]][s]["labels"],
                            **{view: np.mean([runs[m][s][view] for m in members], 0) for view in VIEWS[1:]}}
                        for s in sets}
    for name, dev in runs.items():
        chosen = voice_trust.choose(voice_trust.gap_table(dev))
        voice = score(dev["neutral_words"]["labels"], dev["neutral_words"]["voice"].argmax(-1), EMOTIONS).uar
        print(f"{name}: voice_trust w {chosen['weight']:.2f}, gaps "
              + ", ".join(f"{s} {chosen[s]['gap']:+.2f}" for s in sets)
              + f", worst {chosen['worst_gap']:+.2f}; voice alone UAR {voice:.2f}")
        reference = {s: getattr(score(v["labels"], v[voice_trust.GAPS[s][1]].argmax(-1), EMOTIONS),
                                voice_trust.GAPS[s][0]) for s, v in dev.items()}
        for u in (0.0, 0.1, 0.2, 0.3, 0.5):
            rows = [(gaps(dev, reference, w, u), w) for w in voice_trust.GRID if w + u <= 1]
            best, w = max(rows, key=lambda row: (min(row[0]), -row[1]))  # ties: the smaller w, as voice_trust
            print(f"  symmetric u {u:.1f}: best worst gap {min(best):+.2f} at w {w:.2f} ("
                  + ", ".join(f"{s} {g:+.2f}" for s, g in zip(dev, best)) + ")")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("views")
    v.add_argument("bundles", type=Path, nargs="+")
    v.add_argument("--spoken-dev", type=Path, nargs="+", required=True)
    v.add_argument("--cache", type=Path, default=None)
    v.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("report")
    r.add_argument("views", type=Path, nargs="+", help="files of `views` runs whose first bundle was the same")
    args = p.parse_args()
    {"views": views, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
