"""Screening other ways to weigh the voice against the words, on dev only (docs/results.md, issue 11).

Not part of the package: a record of how the numbers in "Two more ways to weigh the voice, screened on
dev" were made, runnable from the repository root with the package importable.

    # every bundle's views (both, voice alone, words alone) of voice_trust's three dev sets, the sets
    # rebuilt once from the first bundle's recorded command (~4 min per bundle on one core):
    python docs/experiments/pool_screen.py views --out runs/s28/views01.npz \\
        runs/s27/pack_FVA1L_s0 runs/s27/pack_FVA1L_s1 --spoken-dev runs/spoken_meld_dev_all --cache runs/edge_cache_s27
    # each bundle and the seed ensemble (their mean probabilities) fitted by voice_trust's rule, with
    # the voice gate only (text weight 0) and with both gates:
    python docs/experiments/pool_screen.py report runs/s28/views01.npz [runs/s28/views02.npz]

The symmetric pool ("both gates", cmer_edge.model.voice_pool since stop 33) adds the words alone where
the voice sounds flat: p ∝ p_both^(1-g-h) · p_voice^g · p_text^h, g = w_v (1 - p_voice[neutral]),
h = w_t p_voice[neutral] (w_t = 0: the voice gate only). Stop 28's table listed the best w_v for a few
fixed w_t (the script of that stop); this one prints voice_trust's fit of both.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cmer_edge.bundle import load_bundle
from cmer_edge.model.config import EMOTIONS
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


def report(args) -> None:
    z = {k: v for f in args.views for k, v in np.load(f).items()}  # several files: one set of dev sets
    members = sorted({k.split("|")[0] for k in z})
    sets = sorted({k.split("|")[1] for k in z})
    runs = {m: {s: {view: z[f"{m}|{s}|{view}"] for view in VIEWS} for s in sets} for m in members}
    if len(members) > 1:
        runs["ensemble"] = {s: {"labels": runs[members[0]][s]["labels"],
                                **{view: np.mean([runs[m][s][view] for m in members], 0) for view in VIEWS[1:]}}
                            for s in sets}
    for name, dev in runs.items():
        rows = voice_trust.gap_table(dev)
        voice = score(dev["neutral_words"]["labels"], dev["neutral_words"]["voice"].argmax(-1), EMOTIONS).uar
        off = next(r for r in rows if r["voice_weight"] == 0 and r["text_weight"] == 0)
        print(f"{name}: voice alone UAR {voice:.2f}; pool off: "
              + ", ".join(f"{s} {off[s]['gap']:+.2f}" for s in sets))
        for gates, chosen in (("voice gate only", voice_trust.choose([r for r in rows if r["text_weight"] == 0])),
                              ("both gates", voice_trust.choose(rows))):
            print(f"  {gates}: w_v {chosen['voice_weight']:.2f}, w_t {chosen['text_weight']:.2f}, gaps "
                  + ", ".join(f"{s} {chosen[s]['gap']:+.2f}" for s in sets) + f", worst {chosen['worst_gap']:+.2f}")


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
