"""How the embedded default holds up when the microphone, the room or the gain change (stop 34).

Not part of the package. Writes a changed copy of held-out clips (a new folder: FLAC files and a
manifest.csv with the same rows) per condition, scores each copy through the live runtime with
`python -m cmer_edge.evaluate --manifest` (audio only; setting (a), a stranger, and (b), after 10 other
clips of the speaker, the same draw of clips in every condition) and prints one table:

    python docs/experiments/channel_robustness.py --manifest ../shared/data/ravdess --speakers 19 20 \
        --out runs/s34/channel          # ~2 min per condition and setting, one core

Conditions are fixed `audio.channel.Channel`s, not drawn (the noise itself is seeded per clip): a
gain change (the converter clips at full scale), white or brown noise at a set SNR against the clip's
active speech level, a synthetic room (RT60 0.4 s, direct-to-reverberant 3 dB), a telephone band
(4th-order Butterworth 300-3400 Hz). `--bundle` scores another bundle on the same copies.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from cmer_edge.audio.channel import SR, Channel
from cmer_edge.audio.convert import load_audio
from cmer_edge.data.speech_manifest import load_manifests

# fixed conditions (only the noise is drawn, per clip); the telephone band is one that
# `training.channel_copies` never draws
CONDITIONS = {
    "clean": Channel(),
    "gain -12 dB": Channel(gain_db=-12), "gain +10 dB (clipped)": Channel(gain_db=10),
    "white noise, 20 dB SNR": Channel(noise_colour="white", snr_db=20),
    "brown noise, 10 dB SNR": Channel(noise_colour="brown", snr_db=10),
    "room, RT60 0.4 s": Channel(rt60_s=0.4, drr_db=3.0), "telephone band": Channel(band_hz=(300, 3400)),
}


def changed_copy(manifest: Path, speakers: list[str], change, out: Path) -> Path:
    """The manifest's rows of `speakers`, each clip changed, under `out` (written once)."""
    if (out / "manifest.csv").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    source = manifest / "manifest.csv" if manifest.is_dir() else manifest
    with source.open(newline="") as f:
        rows = list(csv.DictReader(f))
    clips = {str(c.path.resolve()): c for c in load_manifests([manifest], check_audio=False).clips}
    kept = []
    for i, row in enumerate(rows):
        clip = clips[str((source.parent / row["path"]).resolve())]
        if clip.speaker not in speakers:
            continue
        audio = change(load_audio(clip.path).astype(np.float64), np.random.default_rng(i))
        name = Path(row["path"]).with_suffix(".flac").name
        sf.write(out / name, audio.astype(np.float32), SR)
        kept.append(row | {"path": name})
    with (out / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return out


def scores(manifest: Path, warmup: int, bundle: Path | None) -> dict:
    cmd = [sys.executable, "-m", "cmer_edge.evaluate", "--manifest", str(manifest), "--modalities", "audio",
           *(["--bundle", str(bundle)] if bundle else []),
           "--threads", "1", "--warmup-clips", str(warmup), "--seed", "0", "--json"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--speakers", nargs="+", required=True, help="speaker ids of the held-out clips")
    ap.add_argument("--bundle", type=Path, default=None, help="default: the embedded one")
    ap.add_argument("--out", type=Path, required=True, help="the changed copies (written once, reused)")
    args = ap.parse_args()
    rows = ["| condition | (a) UAR | (b) UAR | (a) most predicted class (share of clips) |", "| --- | --- | --- | --- |"]
    changed = []
    for k, (name, change) in enumerate(CONDITIONS.items()):
        copy = changed_copy(args.manifest, args.speakers, change, args.out / f"c{k}")
        a, b = scores(copy, 0, args.bundle), scores(copy, 10, args.bundle)
        predicted = np.asarray(a["confusion"]).sum(0)
        top = int(predicted.argmax())
        rows.append(f"| {name} | {a['uar']:.1f} | {b['uar']:.1f} | {a['labels'][top]} "
                    f"({100 * predicted[top] / predicted.sum():.0f} %) |")
        print(rows[-1], flush=True)
        if k:
            changed.append((a["uar"], b["uar"]))
    a_mean, b_mean = np.mean(changed, axis=0)
    rows.append(f"| mean of the {len(changed)} changed conditions | {a_mean:.1f} | {b_mean:.1f} | |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
