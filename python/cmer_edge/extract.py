"""`python -m cmer_edge.extract`: a corpus -> a feature store (openSMILE / L3 audio, text encoder).

Resumable: re-running the same command continues where an interrupted one stopped; a changed
feature spec under the same name is refused. Every clip's audio features are computed on its speech
span, as `listen` hears it (features/extraction.py; clips where the VAD finds no speech are used
whole and counted). Broken or missing clips are reported and stored as "unusable" rows (the trainer
treats that modality as missing), never a crash.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from cmer_edge.data.clip_audio import ExtractConfig
from cmer_edge.data.emodb import EMODB_LABELS, emodb_folds, load_emodb
from cmer_edge.data.meld import iter_utterances, load_meld
from cmer_edge.data.meld_audio import extract_meld_audio, wav_path
from cmer_edge.data.speech_manifest import load_manifests
from cmer_edge.features.extraction import fill_audio_feature, fill_text_feature
from cmer_edge.features.store import FeatureStore
from cmer_edge.features.text import TextEncoderSpec
from cmer_edge.model.config import EMOTIONS
from cmer_edge.cli_common import UserError, cli_entry, int_in_range

log = logging.getLogger("cmer_edge")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cmer_edge.extract", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python -m cmer_edge.extract meld --root ../shared/data/meld --store features/meld \\\n"
               "      --text sentence-transformers/all-MiniLM-L6-v2 --text-path runs/minilm_ft --pooling mean\n"
               "  python -m cmer_edge.extract meld --root ~/MELD.Raw --store features/meld_paper \\\n"
               "      --audio opensmile.emo_large l3.mel256.6144 --audio-option l3.mel256.6144:weights=openl3.h5\n"
               "  python -m cmer_edge.extract emodb --root ../shared/data/emodb --store features/emodb \\\n"
               "      --audio opensmile.eGeMAPSv02 opensmile.emo_large \\\n"
               "      --audio-option opensmile.emo_large:config_path=../shared/opensmile/emo_large.conf\n"
               "  python -m cmer_edge.extract manifest --manifest ../shared/data/ravdess ../shared/data/savee \\\n"
               "      ../shared/data/emodb --store features/speech --audio opensmile.eGeMAPSv02 whisper.tiny.en \\\n"
               "      --text minilm --text-path runs/minilm_ft --pooling mean")
    p.add_argument("corpus", choices=("meld", "emodb", "manifest"))
    p.add_argument("--root", type=Path, help="corpus root (MELD CSV dir or MELD.Raw; EmoDB dir)")
    p.add_argument("--manifest", type=Path, nargs="+", default=[],
                   help="corpus 'manifest': speech manifest(s) (cmer_edge.data.speech_manifest), one split 'all'")
    p.add_argument("--skip-bad", action="store_true", help="manifest: skip (and count) bad rows")
    p.add_argument("--store", required=True, type=Path, help="feature store directory (created if absent)")
    p.add_argument("--splits", nargs="+", default=["train", "dev", "test"], help="MELD splits")
    p.add_argument("--audio", nargs="*", default=[], help="audio extractor names (cmer_edge.features.base)")
    p.add_argument("--audio-option", action="append", default=[], metavar="NAME:KEY=VALUE",
                   help="extractor option, e.g. edgel3.sea.64:weights=edgel3.h5.gz (repeatable)")
    p.add_argument("--wav-dir", type=Path, default=None,
                   help="MELD: where clip audio is (or will be) extracted as 16 kHz WAV (default STORE/wav)")
    p.add_argument("--text", default=None, help="text encoder: Hugging Face id or path")
    p.add_argument("--text-path", default=None, help="weights to load instead (e.g. a fine-tuned copy)")
    p.add_argument("--text-name", default=None, help="feature name in the store (default derived)")
    p.add_argument("--pooling", choices=("cls", "mean"), default="cls")
    p.add_argument("--last-layers", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--workers", type=int_in_range(1, 64, "workers"), default=2, help="audio extraction processes")
    return p


def parse_options(items: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items:
        name, sep, kv = item.partition(":")
        key, eq, value = kv.partition("=")
        if not (sep and eq and key):
            raise SystemExit(f"--audio-option must look like NAME:KEY=VALUE, got {item!r}")
        out.setdefault(name, {})[key] = value
    return out


def meld_rows(args) -> dict[str, tuple[list[dict], list[Path | None], list[str]]]:
    """Per split: index rows, WAV paths (None where the clip is unusable) and texts."""
    splits = load_meld(args.root, tuple(args.splits))
    wav_dir = args.wav_dir or args.store / "wav"
    out = {}
    for split in args.splits:
        utts = list(iter_utterances(list(splits[split])))
        rows = [{"dialogue_id": u.dialogue_id, "utterance_id": u.utterance_id, "label": u.label,
                 "speaker": u.speaker} for u in utts]
        wavs: list[Path | None] = [None] * len(utts)
        if args.audio:
            report = extract_meld_audio(splits[split], wav_dir, ExtractConfig(workers=args.workers))
            log.info("%s clips: %s", split, report.summary())
            usable = {str(r.output) for r in report.ok}
            wavs = [wav_path(wav_dir, u) if str(wav_path(wav_dir, u)) in usable else None for u in utts]
        out[split] = (rows, wavs, [u.text for u in utts])
    return out


def emodb_rows(args) -> dict[str, tuple[list[dict], list[Path | None], list[str]]]:
    utts = load_emodb(args.root)
    fold_of = {spk: i for i, fold in enumerate(emodb_folds(utts)) for spk in fold.test_speakers}
    rows = [{"dialogue_id": u.path.stem, "utterance_id": 0, "label": u.label_index, "meld_label": u.meld_label,
             "speaker": u.speaker, "fold": fold_of[u.speaker]} for u in utts]
    return {"all": (rows, [u.path for u in utts], [u.transcript for u in utts])}


def manifest_rows(args) -> dict[str, tuple[list[dict], list[Path | None], list[str]]]:
    """One split 'all': a clip per dialogue; the transcript is the text unless it is not English
    (the text encoders are English; EmoDB's German syllables would be noise) or empty."""
    manifest = load_manifests(args.manifest, skip_bad=args.skip_bad)
    log.info("%s", manifest.summary())
    for line, why in manifest.skipped:
        log.warning("skipped line %d: %s", line, why)
    rows = [{"dialogue_id": f"{c.corpus}/{c.path.stem}", "utterance_id": 0, "label": c.meld_label,
             "meld_label": c.meld_label, "corpus_label": c.label, "emotion": EMOTIONS[c.meld_label],
             "speaker": c.speaker_key, "corpus": c.corpus, "gender": c.gender} for c in manifest.clips]
    texts = [c.transcript if c.language in ("", "en") else "" for c in manifest.clips]
    return {"all": (rows, [c.path for c in manifest.clips], texts)}


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.corpus == "manifest" and not args.manifest:
        raise UserError("corpus 'manifest' needs --manifest CSV [CSV ...]")
    if args.corpus != "manifest" and args.root is None:
        raise UserError(f"corpus '{args.corpus}' needs --root")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if not args.audio and not args.text:
        raise SystemExit("nothing to extract: give --audio and/or --text")
    options = parse_options(args.audio_option)
    rows_of = {"meld": meld_rows, "emodb": emodb_rows, "manifest": manifest_rows}[args.corpus]
    splits = rows_of(args)
    empty = [split for split, (rows, _, _) in splits.items() if not len(rows)]
    if empty:
        raise UserError(f"nothing to extract: no utterances in {', '.join(empty)} under {args.root}")
    store = FeatureStore.open(args.store, create=True, corpus=args.corpus)
    if args.corpus == "emodb":
        store.manifest["labels"] = list(EMODB_LABELS)
    else:
        store.manifest["labels"] = list(EMOTIONS)
    store._save_manifest()
    report = {}
    for split, (rows, wavs, texts) in splits.items():
        store.set_index(split, rows)
        for name in args.audio:
            report[f"{split}/{name}"] = fill_audio_feature(store, split, name, options.get(name, {}), wavs,
                                                           args.workers)
        if args.text:
            spec = TextEncoderSpec(args.text, args.pooling, args.last_layers, args.max_tokens)
            name = args.text_name or f"text.{Path(args.text_path or args.text).name}.{args.pooling}{args.last_layers}"
            report[f"{split}/{name}"] = fill_text_feature(store, split, name, spec, texts, args.text_path)
    (args.store / "extract_report.json").write_text(json.dumps(report, indent=2) + "\n")
    for key, value in report.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
