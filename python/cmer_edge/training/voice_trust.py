"""`python -m cmer_edge.training.voice_trust`: how much the voice alone weighs against the fused head, fitted on dev.

Words can pull the fused head off an emotional voice (an angry "the noise grows more annoying each
day" heard as disgust), and how far they do is settled differently by every training seed. The
runtime can pool the fused output with the same head's view of the voice alone (the utterance's
words hidden), log-linearly, with a weight that grows with how emotional the voice sounds:
p ∝ p_both^(1-g) · p_voice^g, g = w · (1 - p_voice[neutral]) (cmer_edge.model.voice_pool; w is the
bundle's `runtime.voice_weight`, 0 = the fused head as trained). w is fitted here on the dev analogues of the
fusion checks, never on their test material; each is a gap in points against the single modality
that should decide:
- neutral_words: the dev speakers' clips saying random neutral MELD dev lines, UAR pooled - voice alone;
- emotional_words: the same clips saying random emotional MELD dev lines, UAR pooled - voice alone
  (its neutral clips are the neutral voices reading emotional words);
- spoken_meld: MELD dev lines spoken in a flat synthetic voice (`--spoken-dev`, a manifest of
  `python -m cmer_edge.testing.spoken_meld --split dev`), weighted F1 pooled - text alone.
The rule: the w of the grid with the best worst gap (ties: the smaller w). The dev sets are rebuilt
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
# dev set -> (the metric, the view it is compared with)
GAPS = {"neutral_words": ("uar", "voice"), "emotional_words": ("uar", "voice"), "spoken_meld": ("weighted_f1", "text")}


def views(model, dialogues: list[Dialogue], window_utts: int) -> dict[str, np.ndarray]:
    """Labels and the head's probabilities with both modalities, the voice alone, the words alone."""
    from cmer_edge.training.trainer import predict

    out = {"labels": np.concatenate([d.labels for d in dialogues])}
    for view, hide in (("both", None), ("voice", "text"), ("text", "audio")):
        out[view] = np.concatenate(predict(model, dialogues, "live", window_utts, hide))
    return out


def gap_table(dev_views: dict[str, dict[str, np.ndarray]], grid=GRID) -> list[dict]:
    """For each w: every dev set's pooled score, its reference score and the gap (points)."""
    alone = {name: getattr(score(v["labels"], v[GAPS[name][1]].argmax(-1), EMOTIONS), GAPS[name][0])
             for name, v in dev_views.items()}
    rows = []
    for w in grid:
        row = {"weight": w}
        for name, v in dev_views.items():
            metric, reference = GAPS[name]
            pooled = getattr(score(v["labels"], pool_voice(v["both"], v["voice"], w, NEUTRAL).argmax(-1), EMOTIONS),
                             metric)
            row[name] = {"pooled": round(pooled, 2), reference: round(alone[name], 2),
                         "gap": round(pooled - alone[name], 2)}
        row["worst_gap"] = min(row[name]["gap"] for name in dev_views)
        rows.append(row)
    return rows


def choose(rows: list[dict]) -> dict:
    """The row with the best worst gap; the smallest weight among equals."""
    best = max(r["worst_gap"] for r in rows)
    return min((r for r in rows if r["worst_gap"] == best), key=lambda r: r["weight"])


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
    manifest["runtime"] = dict(manifest.get("runtime", {}), voice_weight=fit["chosen"]["weight"])
    manifest["training"] = dict(manifest.get("training", {}), voice_trust=fit)
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
    fit = {"chosen": chosen, "rule": "the grid weight with the best worst dev gap (ties: the smaller)",
           "sizes": {name: int(len(v["labels"])) for name, v in dev_views.items()}, "grid": rows}
    names = list(dev_views)
    print("| voice weight | " + " | ".join(f"{n} gap" for n in names) + " | worst |")
    print("| --- " * (len(names) + 2) + "|")
    for r in rows:
        mark = " (chosen)" if r is chosen else ""
        print(f"| {r['weight']:.2f}{mark} | " + " | ".join(f"{r[n]['gap']:+.2f}" for n in names)
              + f" | {r['worst_gap']:+.2f} |")
    if args.json:
        args.json.write_text(json.dumps(fit, indent=1) + "\n")
    if args.out:
        command = "python -m cmer_edge.training.voice_trust " + " ".join(
            shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
        print(f"wrote {write_weighted(bundle, args.out, fit, command)} (runtime.voice_weight {chosen['weight']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
