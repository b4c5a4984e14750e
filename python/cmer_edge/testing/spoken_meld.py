"""`python -m cmer_edge.testing.spoken_meld`: MELD lines spoken by espeak-ng, as a speech manifest.

A flat synthetic voice carries no emotion, so a bimodal model scored on these clips should do as
well as with the text alone: the fusion check "the voice must not override the words when it says
nothing" (docs/results.md). Lines are a seeded random sample of a split (`--limit`), each its own
clip; the label is MELD's, the transcript the line. `python -m cmer_edge.evaluate --manifest OUT
--modalities both|text` then scores them through the live runtime.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from cmer_edge.data.meld import iter_utterances, load_meld_split
from cmer_edge.model.config import EMOTIONS
from cmer_edge.testing.espeak import speak


VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+m7", "en-gb+f2")


def write_spoken_meld(meld_dir: Path, split: str, out: Path, limit: int, seed: int = 0,
                      varied_voices: bool = False) -> Path:
    utts = [u for u in iter_utterances(load_meld_split(meld_dir, split)) if u.text.strip()]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(utts), size=min(limit, len(utts)), replace=False))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, i in enumerate(chosen):
        u = utts[i]
        name = f"{split}_d{u.dialogue_id}_u{u.utterance_id}.wav"
        voice, speed, pitch = ("en-us", 165, 50) if not varied_voices else (
            VOICES[int(rng.integers(len(VOICES)))], int(rng.integers(140, 191)), int(rng.integers(35, 71)))
        audio = speak(u.text, voice=voice, speed_wpm=speed, pitch=pitch)
        sf.write(str(out / name), audio, 16000, subtype="PCM_16")
        rows.append({"path": name, "label": EMOTIONS[u.label], "meld_label": EMOTIONS[u.label], "transcript": u.text,
                     "language": "en", "corpus": f"MELD-espeak-{split}", "speaker": f"espeak-{voice}",
                     "gender": "", "sr": 16000, "duration_s": round(len(audio) / 16000, 3),
                     "transcript_note": "MELD line spoken by espeak-ng (flat voice)"})
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out / "manifest.csv"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmer_edge.testing.spoken_meld", description=__doc__.splitlines()[0],
                                epilog="example: python -m cmer_edge.testing.spoken_meld --meld-dir ../shared/data/meld "
                                       "--split test --limit 400 --out runs/spoken_meld_test")
    p.add_argument("--meld-dir", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--varied-voices", action="store_true",
                   help="a random espeak-ng voice, speed and pitch per line (training data); default en-us 165 wpm")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    print(write_spoken_meld(args.meld_dir, args.split, args.out, args.limit, args.seed, args.varied_voices))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
