"""`python -m cmer_edge.training.channel_copies`: the training clips again, through other microphones and rooms.

A kiosk hears its speakers through a far microphone, in a room, at an unknown gain, with noise; the
corpora were recorded close up in quiet studios. This writes a copy of every clip of the given
manifests (FLAC + a manifest.csv in the same format, for `training.edge --manifest`), each *speaker*
through one random channel (`audio.channel.Channel.drawn`: their microphone, room and gain), the
noise drawn per clip. A copied speaker is a new speaker (`<id>~ch<k>`), so the live normaliser's
statistics never mix two channels. Speakers named in `--exclude-speakers` (held-out and dev
speakers) are not copied.

    python -m cmer_edge.training.channel_copies --manifest ../shared/data/ravdess ../shared/data/savee \\
        ../shared/data/emodb --exclude-speakers RAVDESS/17 RAVDESS/18 RAVDESS/19 RAVDESS/20 EmoDB/03 \\
        EmoDB/08 --out runs/channel_train
"""

from __future__ import annotations

import argparse
import csv
import json
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

from cmer_edge.audio.channel import SR, Channel
from cmer_edge.audio.convert import load_audio
from cmer_edge.cli_common import UserError, cli_entry
from cmer_edge.data.speech_manifest import load_manifests
from cmer_edge.model.config import EMOTIONS

COPY_MARK = "~ch"  # a copied speaker's id: "<speaker>~ch<k>"
FIELDS = ("path", "label", "meld_label", "transcript", "language", "corpus", "speaker", "gender", "sr",
          "duration_s", "transcript_note")


def is_channel_copy(speaker: str) -> bool:
    """Whether a manifest speaker id names a channel copy written here."""
    return COPY_MARK in speaker


def write_channel_copies(manifests: list[Path], out: Path, exclude: set[str], copies: int = 1,
                         seed: int = 0, band_limits: bool = False, voice_only: bool = False) -> Path:
    """Write `copies` channel copies of every clip of speakers not in `exclude`; returns the manifest.
    With `voice_only` the copies carry no transcript (audio-only clips: the words stay their
    originals'). Resumable: a clip file already written is kept."""
    clips = [c for c in load_manifests(manifests).clips if c.speaker_key not in exclude]
    if not clips:
        raise UserError("channel_copies: no clips left to copy (every speaker excluded?)")
    channels = {}  # one channel per copied speaker, the same on every machine
    for k in range(copies):
        for key in sorted({f"{clip.speaker_key}{COPY_MARK}{k}" for clip in clips}):
            channels[key] = Channel.drawn(np.random.default_rng([seed, k, zlib.crc32(key.encode())]),
                                          band_limits=band_limits)
    described = {k: c.describe() for k, c in channels.items()}
    before = json.loads((out / "channels.json").read_text()) if (out / "channels.json").is_file() else {}
    if any(before[k] != v for k, v in described.items() if k in before):  # more --copies may extend a folder
        raise UserError(f"channel_copies: {out} holds copies through other channels (another --seed or "
                        "--band-limits); write to a new --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "channels.json").write_text(json.dumps(before | described, indent=1) + "\n")
    rows = []
    for k in range(copies):
        for clip in clips:
            key = f"{clip.speaker_key}{COPY_MARK}{k}"
            name = f"{clip.corpus}_{clip.speaker}_ch{k}_{clip.path.stem}.flac"
            if not (out / name).is_file():
                rng = np.random.default_rng([seed, k, zlib.crc32(clip.path.name.encode()), clip.line])
                audio = channels[key](load_audio(clip.path), rng)
                sf.write(str(out / f".{name}"), audio.astype(np.float32), SR, format="FLAC")
                (out / f".{name}").rename(out / name)  # never a half-written clip
            rows.append({"path": name, "label": clip.label, "meld_label": EMOTIONS[clip.meld_label],
                         "transcript": "" if voice_only else clip.transcript, "language": clip.language,
                         "corpus": clip.corpus,
                         "speaker": f"{clip.speaker}{COPY_MARK}{k}", "gender": clip.gender, "sr": SR,
                         "duration_s": clip.duration_s or "", "transcript_note": f"channel copy of {clip.path.name}"})
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return out / "manifest.csv"


@cli_entry
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmer_edge.training.channel_copies", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=Path, nargs="+", required=True)
    p.add_argument("--exclude-speakers", nargs="*", default=[], help="corpus/speaker keys not to copy (RAVDESS/19)")
    p.add_argument("--copies", type=int, choices=range(1, 9), default=1, metavar="1..8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--band-limits", action="store_true",
                   help="also draw small microphones' bands (100-250 Hz to 4-7 kHz), one speaker in three")
    p.add_argument("--voice-only", action="store_true", help="copies without transcripts (audio-only clips)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    print(write_channel_copies(args.manifest, args.out, set(args.exclude_speakers), args.copies, args.seed,
                               args.band_limits, args.voice_only))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
