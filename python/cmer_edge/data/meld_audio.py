"""MELD clips -> OUT/{split}/dia{D}_utt{U}.wav (16 kHz mono), parallel, resumable, bad clips reported.

The clip decoding and the bad-clip policy live in cmer_edge.data.clip_audio (docs/data.md).
CLI: `python -m cmer_edge.data.meld_audio MELD_RAW_ROOT OUT_DIR --splits dev --workers 2`
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Iterable

from cmer_edge.data.clip_audio import (  # noqa: F401  (re-exported: the MELD audio API in one place)
    STATUSES, ClipError, ClipResult, DecodedClip, ExtractConfig, ExtractReport, decode_clip, extract_clip,
    extract_clips, require_ffmpeg,
)
from cmer_edge.data.meld import SPLITS, Dialogue, Utterance, iter_utterances, load_meld


def wav_path(out_dir: str | Path, utt: Utterance) -> Path:
    """Where extract_meld_audio puts an utterance's WAV: OUT/{split}/dia{D}_utt{U}.wav."""
    return Path(out_dir) / utt.split / f"{utt.clip_name}.wav"


def extract_meld_audio(dialogues: Iterable[Dialogue], out_dir: str | Path,
                       config: ExtractConfig = ExtractConfig()) -> ExtractReport:
    """Every utterance's clip -> OUT/{split}/dia{D}_utt{U}.wav; resumable; bad clips reported."""
    utts = list(iter_utterances(list(dialogues)))
    no_clip = [u for u in utts if u.audio_path is None]
    if no_clip:
        splits = sorted({u.split for u in no_clip})
        raise ValueError(f"{len(no_clip)} utterances have no audio_path: the MELD root has no clip folder "
                         f"for split(s) {splits} (train_splits/, dev_splits_complete/, output_repeated_splits_test/)")
    return extract_clips(((u.audio_path, wav_path(out_dir, u)) for u in utts), config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cmer_edge.data.meld_audio",
        description="Extract MELD clip audio with ffmpeg to 16 kHz mono WAV (resumable, bad clips reported).",
        epilog="example: python -m cmer_edge.data.meld_audio ~/MELD.Raw ~/meld_wav --splits dev --workers 2",
    )
    parser.add_argument("root", type=Path, help="MELD.Raw root (CSVs + clip folders)")
    parser.add_argument("out_dir", type=Path, help="output folder: OUT/{split}/dia{D}_utt{U}.wav")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--workers", type=int, default=ExtractConfig.workers)
    parser.add_argument("--max-duration-s", type=float, default=ExtractConfig.max_duration_s)
    parser.add_argument("--sample-rate-hz", type=int, default=ExtractConfig.sample_rate_hz)
    parser.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config = ExtractConfig(sample_rate_hz=args.sample_rate_hz, max_duration_s=args.max_duration_s,
                           workers=args.workers, overwrite=args.overwrite)
    splits = load_meld(args.root, tuple(args.splits))
    report = extract_meld_audio([d for s in args.splits for d in splits[s]], args.out_dir, config)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = report.write_json(args.out_dir / "extract_report.json")
    print(f"{report.summary()}; report: {path}")
    return 0 if report.ok or not report.results else 1  # 1: not a single clip could be read


if __name__ == "__main__":
    raise SystemExit(main())
