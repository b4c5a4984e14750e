"""`python -m cmer_edge.training.voice_trust`: how much the voice alone and the words alone weigh against the fused head, fitted on dev.

Words can pull the fused head off an emotional voice (an angry "the noise grows more annoying each
day" heard as disgust), a flat voice can pull it off the words (a synthetic reader heard as neutral),
and how far they do is settled differently by every training seed. The runtime can pool the fused
output with the same head's views of the voice alone (the utterance's words hidden) and of the words
alone (its audio hidden), log-linearly, with weights that follow how emotional the voice sounds:
p ∝ p_both^(1-g-h) · p_voice^g · p_text^h, g = w_v · (1 - p_voice[neutral]), h = w_t · p_voice[neutral]
(cmer_edge.model.voice_pool; w_v, w_t are the bundle's `runtime.voice_weight` / `runtime.text_weight`,
0 and 0 = the fused head as trained). Both are fitted here, together, on the dev analogues of the
fusion checks, never on their test material; each is a gap in points against the single modality
that should decide:
- neutral_words: the dev speakers' clips saying random neutral MELD dev lines, UAR pooled - voice alone;
- emotional_words: the same clips saying random emotional MELD dev lines, UAR pooled - voice alone
  (its neutral clips are the neutral voices reading emotional words);
- spoken_meld: MELD dev lines spoken in a flat synthetic voice (`--spoken-dev`, a manifest of
  `python -m cmer_edge.testing.spoken_meld --split dev`), weighted F1 pooled - text alone.
The rule: the (w_v, w_t) of the grid with the best worst gap (ties: the better next-worst gap, then the
smaller w_v + w_t, then the smaller w_v). The dev sets are rebuilt
from the command the bundle records (`recipe.command`, a `training.edge` run), with its seed; their
words are encoded as the live runtime encodes them (one line per encoder run: TextEncoder.encode).

    python -m cmer_edge.training.voice_trust runs/edge/bundle --spoken-dev runs/spoken_meld_dev \\
        --out runs/edge_vt --json runs/edge_vt.json
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

import numpy as np

from cmer_edge.bundle import Bundle, load_bundle, save_bundle
from cmer_edge.cli_common import UserError, cli_entry
from cmer_edge.model.config import EMOTIONS
from cmer_edge.model.voice_pool import pool_voice
from cmer_edge.training import edge_data, edge_sets, fusion_pairs
from cmer_edge.training.dialogues import Dialogue
from cmer_edge.training.metrics import score

log = logging.getLogger("cmer_edge")
NEUTRAL = EMOTIONS.index("neutral")
GRID = tuple(float(w) for w in np.round(np.arange(0.0, 1.001, 0.05), 2))
SHOWN = 10  # rows of the printed table
# dev set -> (the metric, the view it is compared with)
GAPS = {"neutral_words": ("uar", "voice"), "emotional_words": ("uar", "voice"), "spoken_meld": ("weighted_f1", "text")}


def views(model, dialogues: list[Dialogue], window_utts: int) -> dict[str, np.ndarray]:
    """Labels and the head's probabilities with both modalities, the voice alone, the words alone."""
    from cmer_edge.training.trainer import predict

    out = {"labels": np.concatenate([d.labels for d in dialogues])}
    for view, hide in (("both", None), ("voice", "text"), ("text", "audio")):
        out[view] = np.concatenate(predict(model, dialogues, "live", window_utts, hide))
    return out


def gap_table(dev_views: dict[str, dict[str, np.ndarray]], grid=GRID, text_grid=GRID) -> list[dict]:
    """For each (w_v, w_t): every dev set's pooled score, its reference score and the gap (points)."""
    alone = {name: getattr(score(v["labels"], v[GAPS[name][1]].argmax(-1), EMOTIONS), GAPS[name][0])
             for name, v in dev_views.items()}
    rows = []
    for w in grid:
        for w_t in text_grid:
            row = {"voice_weight": w, "text_weight": w_t}
            for name, v in dev_views.items():
                metric, reference = GAPS[name]
                pooled = pool_voice(v["both"], v["voice"], w, NEUTRAL, v["text"], w_t).argmax(-1)
                pooled = getattr(score(v["labels"], pooled, EMOTIONS), metric)
                row[name] = {"pooled": round(pooled, 2), reference: round(alone[name], 2),
                             "gap": round(pooled - alone[name], 2)}
            row["gaps"] = sorted(row[name]["gap"] for name in dev_views)
            row["worst_gap"] = row["gaps"][0]
            rows.append(row)
    return rows


def rank(row: dict) -> tuple:
    """Sort key, best first: the worst gap, then the next-worst..., then the smaller weights."""
    return tuple(-g for g in row["gaps"]) + (row["voice_weight"] + row["text_weight"], row["voice_weight"])


def choose(rows: list[dict]) -> dict:
    """The row with the best worst gap (ties: module doc)."""
    return min(rows, key=rank)


def recipe_args(bundle: Bundle, spoken_dev: list[Path], cache: Path | None) -> argparse.Namespace:
    """The `training.edge` arguments the bundle records, plus the spoken MELD dev manifests."""
    from cmer_edge.training.edge import COMMAND, recorded_args, seed_args

    args = recorded_args(bundle)
    if args is None:
        raise UserError(f"{bundle.path}: its manifest records no `{COMMAND}` command (recipe.command); "
                        "voice_trust rebuilds its dev sets from that command")
    args.manifest = list(args.manifest) + [m for m in spoken_dev if m not in args.manifest]
    if cache is not None:
        args.cache = cache
    return seed_args(args, args.seeds[0])  # an ensemble's dev sets are its first seed's


def dev_views_for(bundle: Bundle, args: argparse.Namespace, threads: int) -> dict[str, dict[str, np.ndarray]]:
    """The three dev sets of the module doc, each with the bundle's views."""
    from cmer_edge.backends.torch_models import load_head_module

    model, window = load_head_module(bundle), bundle.manifest.window_utts
    return {name: views(model, dialogues, window) for name, dialogues in dev_sets_for(bundle, args, threads).items()}


def dev_sets_for(bundle: Bundle, args: argparse.Namespace, threads: int) -> dict[str, list[Dialogue]]:
    """The three dev sets of the module doc, rebuilt from the recorded command `args`."""
    from cmer_edge.training.edge import open_clip_encoders

    text_bundle = load_bundle(args.text_bundle) if args.text_bundle else bundle
    extractor, encoder = open_clip_encoders(args.audio, text_bundle, threads)
    if extractor.dim != bundle.head_config.audio_dim:
        raise UserError(f"the recorded --audio {' '.join(args.audio)} gives {extractor.dim} features, "
                        f"the head takes {bundle.head_config.audio_dim}")
    sets = edge_sets.build(args, extractor, encoder, args.cache or args.out / "cache")
    voiced = [d for d in sets.clip_dev if fusion_pairs.voice_labelled(d)]
    spoken = [d for d in sets.clip_dev if not fusion_pairs.voice_labelled(d) and d.dialogue_id.endswith("/k0")]
    if not spoken:
        raise UserError("no spoken MELD dev lines among the dev sets: pass --spoken-dev (a manifest from "
                        "python -m cmer_edge.testing.spoken_meld --split dev)")

    lines = {neutral: edge_data.encode_texts(encoder, fusion_pairs.meld_line_texts(
        sets.meld.get("dev", []), sets.meld_texts.get("dev", []), args.neutral_min_words, neutral=neutral))[0]
        for neutral in (True, False)}
    rng = np.random.default_rng([args.seed, 1])  # its own draws, apart from the training's
    neutral = fusion_pairs.give_words(voiced, lines[True], 1.0, rng)
    emotional = fusion_pairs.give_words(voiced, lines[False], 1.0, rng, tag="emotional-text")
    dev = {"neutral_words": neutral, "emotional_words": emotional, "spoken_meld": spoken}
    empty = [name for name, dialogues in dev.items() if not dialogues]
    if empty:
        raise UserError(f"no dev utterances for {', '.join(empty)}: the recorded command's --dev-speakers "
                        f"({' '.join(args.dev_speakers)}) need clips with audio, and MELD dev lines of >= "
                        f"{args.neutral_min_words} words are needed for the words")
    return dev


def write_weighted(bundle: Bundle, out_dir: Path, fit: dict, command: str) -> Path:
    """A copy of the bundle whose manifest sets runtime.voice_weight, records the fit and adds `command`
    (this step) to recipe.command."""
    manifest = {k: v for k, v in bundle.manifest.to_dict().items()
                if k not in ("format", "format_version", "head", "files", "sha256")}
    chosen = fit["chosen"]
    manifest["runtime"] = dict(manifest.get("runtime", {}), voice_weight=chosen["voice_weight"],
                               text_weight=chosen["text_weight"])
    manifest["training"] = dict(manifest.get("training", {}),
                                voice_trust={k: v for k, v in fit.items() if k != "grid"})  # the grid: --json
    recipe = dict(manifest.get("recipe", {}))
    recipe["command"] = " && ".join(c for c in (recipe.get("command"), command) if c)
    manifest["recipe"] = recipe
    extra = {role: bundle.file(role) for role in bundle.manifest.files if role != "head"}
    return save_bundle(out_dir, head_config=bundle.head_config, head_tensors=bundle.head_members(),
                       manifest=manifest, extra_files=extra, local_paths=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cmer_edge.training.voice_trust", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="example: python -m cmer_edge.training.voice_trust runs/edge/bundle "
                                       "--spoken-dev runs/spoken_meld_dev --out runs/edge_vt")
    p.add_argument("bundle", type=Path, help="a bundle trained by python -m cmer_edge.training.edge")
    p.add_argument("--spoken-dev", type=Path, nargs="+", default=[],
                   help="spoken MELD dev manifests (python -m cmer_edge.testing.spoken_meld --split dev)")
    p.add_argument("--cache", type=Path, default=None, help="feature cache (default: the recorded command's)")
    p.add_argument("--out", type=Path, default=None, help="write the bundle with the fitted voice weight here")
    p.add_argument("--json", type=Path, default=None, help="write the fit (every weight's gaps) here")
    p.add_argument("--threads", type=int, default=1)
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle)
    if bundle.head_config.modalities != "both":
        raise UserError(f"{args.bundle}: an {bundle.head_config.modalities}-only head has nothing to pool")
    dev_views = dev_views_for(bundle, recipe_args(bundle, args.spoken_dev, args.cache), args.threads)
    rows = gap_table(dev_views)
    chosen = choose(rows)
    fit = {"chosen": chosen, "rule": "the grid (voice, text) weights with the best worst dev gap (ties: the better "
                                     "next-worst gap, then the smaller sum, then the smaller voice weight)",
           "sizes": {name: int(len(v["labels"])) for name, v in dev_views.items()}, "grid": rows}
    names = list(dev_views)
    best = sorted(rows, key=rank)[:SHOWN]
    off = next(r for r in rows if r["voice_weight"] == 0 and r["text_weight"] == 0)
    print(f"the {SHOWN} best of {len(rows)} weight pairs (all in --json), and the pool off:")
    print("| voice weight | text weight | " + " | ".join(f"{n} gap" for n in names) + " | worst |")
    print("| --- " * (len(names) + 3) + "|")
    for r in best + ([] if off in best else [off]):
        mark = " (chosen)" if r is chosen else ""
        print(f"| {r['voice_weight']:.2f}{mark} | {r['text_weight']:.2f} | "
              + " | ".join(f"{r[n]['gap']:+.2f}" for n in names) + f" | {r['worst_gap']:+.2f} |")
    if args.json:
        args.json.write_text(json.dumps(fit, indent=1) + "\n")
    if args.out:
        command = "python -m cmer_edge.training.voice_trust " + " ".join(
            shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
        print(f"wrote {write_weighted(bundle, args.out, fit, command)} (runtime.voice_weight "
              f"{chosen['voice_weight']}, runtime.text_weight {chosen['text_weight']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
