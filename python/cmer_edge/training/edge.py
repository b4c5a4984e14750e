"""`python -m cmer_edge.training.edge`: build the embedded default ("edge") bundle.

One resumable command from ../shared and PyPI packages (each feature stage cached in OUT/cache):

    python -m cmer_edge.training.edge --meld-dir ../shared/data/meld \\
        --manifest ../shared/data/ravdess ../shared/data/savee ../shared/data/emodb --out runs/edge

The head learns fusion from speech and text that were spoken together:
- MELD dialogues (text through the committed MiniLM encoder; no MELD audio here): dialogue context
  and the text branch;
- RAVDESS / SAVEE / EmoDB clips with their real transcripts (neutral words, emotional voice; SAVEE and
  EmoDB are audio-only here): the label is the voice's, so the head learns that the voice corrects
  the words;
- spoken MELD lines in flat synthetic voices, if given as a manifest (corpus "MELD-espeak-<split>"): the
  words decide; lines of MELD's dev split join the selection set (the dev analogue of fusion check
  (ii), scored text-only and with their voice), lines of its test split are never used;
- when to trust which (training/fusion_pairs.py): a fraction `--neutral-text` of the clip copies say
  the words of a random neutral MELD line (the voice decides), a fraction `--emotional-text` of the
  neutral clip copies the words of a random emotional one (the voice decides again), a fraction
  `--neutral-voice` of MELD training utterances get the audio of a neutral clip (the words decide),
  a fraction `--pair` the audio of a same-label clip (the words and the voice agree), and a fraction
  `--flat-voice-alone` of the spoken MELD lines come again as their flat voice alone, labelled neutral;
  with `--words-consistency`, where the words decide and a voice is present the fused answer is also
  pulled towards the same head's words-alone answer (trainer.TrainConfig.words_consistency);
- modality dropout, so either modality alone works.
Audio is normalised as it is live (per-session running statistics with the training population as
prior), simulated after k = 0, 3 and 10 other clips of the same speaker. Speakers in `--holdout` are
never trained on or selected with; `--dev-speakers` and MELD dev choose the epoch (their losses
weighted equally). The step after: `python -m cmer_edge.training.voice_trust OUT/bundle --spoken-dev ...`
fits the weight of the runtime's voice pool on dev (docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
from pathlib import Path


from cmer_edge.bundle import MANIFEST, Bundle, add_artifacts, default_bundle_path, load_bundle
from cmer_edge.bundle.ensemble import ensemble_bundle
from cmer_edge.bundle.manifest import thaw
from cmer_edge.cli_common import UserError, cli_entry, fraction, positive_float
from cmer_edge.features.registry import make_audio_extractor
from cmer_edge.model.config import EMOTIONS, HeadConfig
from cmer_edge.runtime.backends import BackendConfig
from cmer_edge.runtime.encoders import open_text_encoder
from cmer_edge.training import edge_data, edge_sets, fusion_pairs
from cmer_edge.training.runs import save_trained, scores_for
from cmer_edge.training.trainer import TrainConfig, train_head

log = logging.getLogger("cmer_edge")

COMMAND = "cmer_edge.training.edge"  # how a bundle's recipe.command names this step
DEFAULT_AUDIO = ("opensmile.eGeMAPSv02", "whisper.tiny.en", "whisper.tiny.en.l2")  # the live runtime's clip features

LICENCES = {
    "MELD": "GPL-3.0 (labels and transcripts, declare-lab/MELD)",
    "RAVDESS": "CC BY-NC-SA 4.0 (Livingstone & Russo 2018)",
    "SAVEE": "research use (University of Surrey)",
    "EmoDB": "research use (TU Berlin)",
    "MELD-espeak-train": "GPL-3.0 (MELD training lines, spoken by espeak-ng: cmer_edge.testing.spoken_meld)",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cmer_edge.training.edge", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="example: python -m cmer_edge.training.edge --meld-dir ../shared/data/meld "
                                       "--manifest ../shared/data/ravdess ../shared/data/savee ../shared/data/emodb "
                                       "--out runs/edge")
    p.add_argument("--meld-dir", type=Path, default=None, help="MELD CSV folder (omit: speech clips only)")
    p.add_argument("--manifest", type=Path, nargs="+", required=True, help="labelled speech manifests")
    p.add_argument("--text-bundle", type=Path, default=None,
                   help="bundle whose text encoder (ONNX + tokenizer) is reused (default: the embedded one)")
    p.add_argument("--audio", nargs="+", default=list(DEFAULT_AUDIO),
                   help="audio extractors, concatenated in order")
    p.add_argument("--holdout", nargs="*", default=["RAVDESS/19", "RAVDESS/20"],
                   help="speakers (CORPUS/ID) never trained on nor used for selection")
    p.add_argument("--dev-speakers", nargs="*", default=["RAVDESS/17", "RAVDESS/18", "EmoDB/03", "EmoDB/08"])
    p.add_argument("--exclude-corpus", nargs="*", default=[], help="corpora left out of training entirely")
    p.add_argument("--online-k", type=int, nargs="+", default=[0, 3, 10],
                   help="training copies of each clip, normalised after k other clips of its speaker")
    p.add_argument("--pair", type=fraction("--pair"), default=0.3,
                   help="fraction of MELD train utterances given the audio of a same-label clip")
    p.add_argument("--neutral-voice", type=fraction("--neutral-voice"), default=0.0,
                   help="fraction of MELD train utterances given the audio of a neutral clip (the words decide)")
    p.add_argument("--neutral-text", type=fraction("--neutral-text"), default=1.0,
                   help="fraction of clip copies given the words of a random neutral MELD line (the voice decides)")
    p.add_argument("--emotional-text", type=fraction("--emotional-text"), default=1.0,
                   help="fraction of neutral clip copies also given the words of a random emotional MELD line "
                        "(the voice decides)")
    p.add_argument("--emotional-text-clips", choices=("neutral", "all"), default="neutral",
                   help="which clip copies --emotional-text gives emotional words: the neutral ones, or every "
                        "acted clip (an angry voice saying a sad line is still angry)")
    p.add_argument("--flat-voice-alone", type=fraction("--flat-voice-alone"), default=0.0,
                   help="fraction of spoken MELD training lines also given as their flat voice alone, labelled "
                        "neutral (what a flat reader's voice says without its words)")
    p.add_argument("--words-consistency", type=positive_float("--words-consistency", allow_zero=True), default=0.0,
                   help="weight of the term that pulls the fused answer to the same head's words-alone answer where "
                        "the words decide and a voice is present (the spoken MELD lines; 0: off)")
    p.add_argument("--neutral-min-words", type=int, default=4, help="shortest neutral line used as such words")
    p.add_argument("--modality-dropout", type=fraction("--modality-dropout", below_one=True), default=0.3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--dropout", type=fraction("--dropout", below_one=True), default=HeadConfig.dropout,
                   help="the head's dropout (inputs, branches, classifier)")
    p.add_argument("--weight-decay", type=positive_float("--weight-decay", allow_zero=True),
                   default=TrainConfig.weight_decay, help="Adam's L2 penalty")
    p.add_argument("--ema", type=fraction("--ema", below_one=True), default=0.0,
                   help="decay of the weights' moving average that dev scores and the bundle keeps (0: off)")
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="one head per seed; several: each in OUT/seed<S>/bundle (kept: a finished one is reused), "
                        "their ensemble (probabilities averaged) in OUT/bundle")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--class-weighting", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", type=Path, default=None, help="feature cache (default OUT/cache; share it across runs)")
    p.add_argument("--out", type=Path, required=True)
    return p


def open_clip_encoders(audio: list[str], text_bundle: Bundle, threads: int):
    """The audio extractor chain and the bundle's text encoder: the clips' features, computed as live."""
    try:
        extractor = make_audio_extractor("+".join(audio))
    except ValueError as exc:  # an unknown name or a bad chain: the user's --audio
        raise UserError(f"--audio: {exc}") from exc
    return extractor, open_text_encoder(text_bundle, BackendConfig.from_env(threads=threads))


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(args.threads)
    words = sys.argv[1:] if argv is None else list(argv)
    text_bundle = load_bundle(args.text_bundle or default_bundle_path())
    extractor, encoder = open_clip_encoders(args.audio, text_bundle, args.threads)
    if len(set(args.seeds)) != len(args.seeds):
        raise UserError(f"--seeds: each seed once, got {args.seeds}")
    if len(args.seeds) == 1:
        metrics = train_member(args, args.seeds[0], extractor, encoder, text_bundle, words, args.out / "bundle")
    else:
        members = []
        for seed in args.seeds:
            member = args.out / f"seed{seed}" / "bundle"
            if (member / MANIFEST).is_file():
                check_member_recipe(load_bundle(member), args, seed)
                log.info("seed %d: reusing %s", seed, member)
            else:
                train_member(args, seed, extractor, encoder, text_bundle, words, member)
            members.append(load_bundle(member))
        metrics = report_ensemble(args, members, extractor, encoder, words)
    print(json.dumps({k: {m: round(v[m], 2) for m in ("weighted_f1", "uar")} for k, v in metrics.items()}, indent=2))
    return 0


def seed_args(args: argparse.Namespace, seed: int) -> argparse.Namespace:
    """`args` for one seed: every random draw of the sets and the training comes from `seed`."""
    return argparse.Namespace(**{**vars(args), "seeds": [seed], "seed": seed})


def command_for(words: list[str], seeds: list[int]) -> str:
    """The training.edge command `words` with `--seeds` set to `seeds` (what reproduces that run)."""
    kept, skipping = [], False
    for word in words:
        if word.startswith("--"):
            skipping = word.split("=")[0] in ("--seeds", "--seed")
            if skipping:
                continue
        elif skipping and word.lstrip("-").isdigit():
            continue
        skipping = False
        kept.append(word)
    return " ".join(["python -m", COMMAND, *kept, "--seeds", *map(str, seeds)])


# arguments that do not change what a member learns: where it is written, the cache, the threads
NOT_RECIPE = ("out", "cache", "threads", "seeds", "seed")


def recorded_args(bundle: Bundle) -> argparse.Namespace | None:
    """The `training.edge` arguments of the command the bundle records (`recipe.command`); None if it
    records none."""
    command = str(thaw(bundle.manifest.provenance.get("recipe", {})).get("command", ""))
    part = next((p for p in command.split("&&") if COMMAND in p), None)
    if part is None:
        return None
    words = shlex.split(part)
    return build_parser().parse_args(words[words.index(COMMAND) + 1:])


def check_member_recipe(member: Bundle, args: argparse.Namespace, seed: int) -> None:
    """A finished member is reused only if its recorded command trained what this one would."""
    recorded = recorded_args(member)
    if recorded is None:
        raise UserError(f"{member.path} records no `{COMMAND}` command: remove it to retrain seed {seed}")
    recorded, wanted = vars(recorded), vars(args)
    differ = sorted(k for k in wanted if k not in NOT_RECIPE and recorded.get(k) != wanted[k])
    if recorded.get("seeds") != [seed] or differ:
        what = ", ".join(f"--{k.replace('_', '-')} {recorded.get(k)!r} (now {wanted[k]!r})" for k in differ)
        raise UserError(f"{member.path} was trained by another recipe ({what or 'another seed'}): remove it to "
                        f"retrain seed {seed}, or rerun with its arguments")


def train_member(args: argparse.Namespace, seed: int, extractor, encoder, text_bundle: Bundle, words: list[str],
                 out: Path) -> dict:
    """Train one head with `seed` and save it as the bundle `out`; returns its metrics."""
    args = seed_args(args, seed)
    sets = edge_sets.build(args, extractor, encoder, args.cache or args.out / "cache")
    meld, clip_train, clip_dev = sets.meld, sets.clip_train, sets.clip_dev
    text_dim, audio_dim = encoder.dim, extractor.dim
    # equal weight for MELD dev and speech dev in the selection loss: repeat the (few) dev clips
    clip_dev_all = clip_dev + sets.clip_dev_neutral
    repeat = max(1, round(sum(len(d.labels) for d in meld.get("dev", [])) / max(1, len(clip_dev_all))))
    # clips without transcripts and no MELD (e.g. a speech protocol leaving out the only corpus with
    # transcripts): nothing would teach or normalise a text stream, so the head is audio-only
    trains_text = any((d.present[:, 1] > 0).any() for d in meld.get("train", []) + clip_train)
    if not trains_text:
        log.warning("no training utterance has text: training an audio-only head")
    head_cfg = HeadConfig(audio_dim=audio_dim, text_dim=text_dim, hidden=args.hidden,
                          dropout=args.dropout, modalities="both" if trains_text else "audio")
    cfg = TrainConfig(protocol="live", window_utts=args.window, max_epochs=args.epochs, patience=args.patience,
                      modality_dropout=args.modality_dropout, class_weighting=args.class_weighting, seed=seed,
                      weight_decay=args.weight_decay, ema=args.ema, words_consistency=args.words_consistency)
    log.info("seed %d: training on %d MELD dialogues (paired: %s) + %d clip copies; "
             "dev %d MELD + %d clips x%d; held out %d clips", seed, len(meld.get("train", [])), sets.paired,
             len(clip_train), len(meld.get("dev", [])), len(clip_dev_all), repeat, len(sets.clip_test[0]))
    result = train_head(head_cfg, cfg, meld.get("train", []) + clip_train, meld.get("dev", []) + clip_dev_all * repeat)
    metrics = report(result.model, sets, cfg.window_utts)
    features = {"audio": extractor.spec(), "text": thaw(text_bundle.manifest.features.text.raw)}
    corpora = sorted({sets.clips[i].corpus for i in sets.train_rows} | ({"MELD"} if meld else set()))
    text_files = {role: text_bundle.file(role) for role in text_bundle.manifest.files
                  if role == "text_tokenizer" or role.startswith("onnx.text_encoder")}
    onnx_precision = {"text_encoder": r.split(".")[2] if r.count(".") == 2 else "fp32"
                      for r in text_files if r.startswith("onnx.")}
    saved = save_trained(
        out, result, head_cfg, cfg, name="edge", labels=EMOTIONS, features=features,
        audio_norm="speaker",
        train=edge_data.clip_dialogues(sets.data, sets.clips, sets.train_rows, sets.audio_prior[0], "prior"),
        metrics=metrics, profile="edge", runtime={"onnx_precision": onnx_precision},
        licences={c: LICENCES.get(c, "see the corpus") for c in corpora},
        recipe={"command": command_for(words, [seed]), "training_corpora": corpora,
                "use": "non-commercial research use only (inherits RAVDESS CC BY-NC-SA 4.0, SAVEE and EmoDB "
                       "research-use terms)",
                "holdout_speakers": args.holdout, "dev_speakers": args.dev_speakers,
                "fusion_pairs": sets.paired, "online_k": args.online_k})
    _copy_text_files(saved, text_files)
    return metrics


def report_ensemble(args: argparse.Namespace, members: list[Bundle], extractor, encoder, words: list[str]) -> dict:
    """OUT/bundle: the members' ensemble, scored on the first seed's sets (as a member is on its own)."""
    from cmer_edge.backends.torch_models import load_head_module
    from cmer_edge.model.cm_roberta import HeadEnsemble

    first = seed_args(args, args.seeds[0])
    sets = edge_sets.build(first, extractor, encoder, args.cache or args.out / "cache")
    model = HeadEnsemble([load_head_module(m) for m in members]).eval()
    metrics = report(model, sets, first.window)
    recipe = dict(thaw(members[0].manifest.provenance["recipe"]), command=command_for(words, args.seeds))
    ensemble_bundle(members, args.out / "bundle", recipe=recipe, local_paths=True,
                    metrics={k: {m: v[m] for m in ("weighted_f1", "uar", "accuracy")} for k, v in metrics.items()})
    return metrics


def _copy_text_files(bundle_dir: Path, files: dict[str, Path]) -> None:
    """Add the reused text encoder's files to the saved bundle (listed with their sha256)."""
    for src in files.values():
        shutil.copy2(src, bundle_dir / src.name)
    add_artifacts(bundle_dir, {role: src.name for role, src in files.items()})


def report(model, sets: edge_sets.EdgeSets, window_utts: int) -> dict:
    """MELD text-only (dev, test), the dev speakers' clips (audio only; with neutral MELD words; the
    neutral ones with emotional MELD words: `accuracy` is how often the voice still decides), spoken
    MELD dev lines (a stranger's first utterance: text only / both) and the held-out speakers' clips
    (audio only / both; k = 0 and 10)."""
    meld, clip_dev, clip_test = sets.meld, sets.clip_dev, sets.clip_test
    clip_dev_neutral, clip_dev_emotional = sets.clip_dev_neutral, sets.clip_dev_emotional

    def score(dialogues, hide: str | None):
        return scores_for(model, dialogues, "live", window_utts, EMOTIONS, hide)[0].to_dict()

    metrics = {}
    for split in ("dev", "test"):
        if split in meld:
            metrics[f"meld_{split}_text"] = score(meld[split], "audio")
    voiced = [d for d in clip_dev if fusion_pairs.voice_labelled(d)]
    spoken = [d for d in clip_dev if not fusion_pairs.voice_labelled(d) and d.dialogue_id.endswith("/k0")]
    metrics["clips_dev_audio"] = score(voiced, "text")
    if spoken:
        metrics["spoken_meld_dev_text"] = score(spoken, "audio")
        metrics["spoken_meld_dev_both"] = score(spoken, None)
    if clip_dev_neutral:
        metrics["clips_dev_neutral_words"] = score(clip_dev_neutral, None)
    if clip_dev_emotional:
        metrics["clips_dev_emotional_words"] = score(clip_dev_emotional, None)
    for k, dialogues in clip_test.items():
        if dialogues:
            metrics[f"holdout_k{k}_audio"] = score(dialogues, "text")
            metrics[f"holdout_k{k}_both"] = score(dialogues, None)
    return metrics


if __name__ == "__main__":
    raise SystemExit(main())
