"""A small MELD-format corpus with real audio, so the raw-data path runs end to end without MELD.Raw.

Real rows (from MELD CSVs, or any rows given) are spoken with espeak-ng (voice, speed and pitch
fixed per speaker), packed as mp4 (a tiny mpeg4 video track + 48 kHz AAC audio in 1, 2 or 3
channels, like MELD's clips) and laid out as MELD.Raw: OUT/MELD.Raw/{split}_sent_emo.csv and
OUT/MELD.Raw/{train_splits,dev_splits_complete,output_repeated_splits_test}/dia{D}_utt{U}.mp4.
Broken cases on request: a missing clip, a 0-byte mp4, a truncated (undecodable) mp4, an overlong clip.

CLI: `python -m cmer_edge.testing.meld_synth OUT_DIR --dialogues 6`
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import soundfile as sf

from cmer_edge.data.meld import CLIP_DIRS, CSV_COLUMNS, SPLITS, check_split, find_layout, read_csv_rows
from cmer_edge.data.text_norm import normalize_text
from cmer_edge.testing.espeak import speak
from cmer_edge.testing.synth_lines import builtin_rows

log = logging.getLogger("cmer_edge")

BROKEN_KINDS = ("missing", "empty", "undecodable", "overlong")
VOICES = ("en-us", "en-us+f2", "en-gb", "en-gb+f3", "en-gb-scotland", "en-us+m3", "en-029", "en-gb-x-rp+f4")
RAW_DIR = "MELD.Raw"
MANIFEST = "synth_manifest.json"


@dataclass(frozen=True)
class SynthConfig:
    """Audio and selection knobs. pad_s: silence around each utterance; max_words: longer rows are
    not picked (keeps clips short); overlong_s: length of the `overlong` broken clip."""

    sample_rate_hz: int = 48_000
    pad_s: float = 0.15
    max_words: int = 20
    overlong_s: float = 35.0
    workers: int = 2

    def __post_init__(self) -> None:
        if self.sample_rate_hz < 8000:
            raise ValueError(f"SynthConfig.sample_rate_hz must be >= 8000, got {self.sample_rate_hz!r}")
        if self.pad_s < 0 or self.overlong_s <= 0 or self.max_words < 1 or self.workers < 1:
            raise ValueError(f"SynthConfig: invalid values {self!r}")


@dataclass(frozen=True)
class SynthClip:
    """One generated row. kind: "ok" or one of BROKEN_KINDS; duration_s: audio written (0 for
    missing/empty/undecodable); speech_s: the spoken part (pads excluded)."""

    split: str
    dialogue_id: int
    utterance_id: int
    speaker: str
    text: str
    path: Path
    kind: str
    channels: int
    voice: str
    speed_wpm: int
    pitch: int
    speech_s: float = 0.0
    duration_s: float = 0.0


@dataclass(frozen=True)
class SyntheticMeld:
    root: Path  # give this to load_meld_split / find_layout
    clips: tuple[SynthClip, ...]

    @property
    def raw_dir(self) -> Path:
        return self.root / RAW_DIR

    def of_kind(self, *kinds: str) -> tuple[SynthClip, ...]:
        return tuple(c for c in self.clips if c.kind in kinds)


def _find_source() -> Path | None:
    env = os.environ.get("CMER_EDGE_MELD_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path.cwd() / "../shared/data/meld", Path.cwd() / "shared/data/meld",
                   Path(__file__).resolve().parents[3] / "../shared/data/meld"]
    return next((p for p in candidates if (p / "train_sent_emo.csv").is_file()), None)


def _source_rows(rows, source, splits) -> dict[str, list[Mapping[str, str]]]:
    if isinstance(rows, Mapping):
        missing = [s for s in splits if s not in rows]
        if missing:
            raise ValueError(f"rows has no entry for split(s) {missing}; it has {sorted(rows)}")
        return {s: list(rows[s]) for s in splits}
    if rows is not None:
        return {s: list(rows) for s in splits}
    source = Path(source) if source is not None else _find_source()
    if source is None:
        log.warning("meld_synth: no MELD CSV found (pass source= or set CMER_EDGE_MELD_DIR); "
                    "using the built-in lines")
        return {s: builtin_rows() for s in splits}
    layout = find_layout(source)
    return {s: read_csv_rows(layout.csv_files[s] or layout.csv_files["train"]) for s in splits}


def _speakable(row: Mapping[str, str], max_words: int) -> bool:
    text = normalize_text(row["Utterance"])
    return bool(re.search(r"[A-Za-z]", text)) and len(text.split()) <= max_words


def _pick_dialogues(rows, n, k, rng, config, split) -> list[list[Mapping[str, str]]]:
    by_dia: dict[int, list] = {}
    for row in rows:
        by_dia.setdefault(int(row["Dialogue_ID"]), []).append(row)
    eligible = []
    for dia in sorted(by_dia):
        turns = sorted(by_dia[dia], key=lambda r: int(r["Utterance_ID"]))[:k]
        if len(turns) == k and all(_speakable(r, config.max_words) for r in turns):
            eligible.append(turns)
    if len(eligible) < n:
        raise ValueError(f"meld_synth: only {len(eligible)} {split} dialogues have {k} speakable utterances "
                         f"(<= {config.max_words} words); asked for n_dialogues={n}")
    chosen = rng.choice(len(eligible), size=n, replace=False)
    return [eligible[i] for i in sorted(chosen)]


def _voice(speaker: str, seed: int) -> tuple[str, int, int]:
    h = int.from_bytes(hashlib.blake2b(f"{seed}/{speaker}".encode(), digest_size=8).digest(), "little")
    return VOICES[h % len(VOICES)], 130 + (h >> 8) % 61, 30 + (h >> 16) % 46


def _encode_mp4(samples: np.ndarray, rate: int, channels: int, out: Path) -> None:
    gains = np.array([1.0, 0.8, 0.6][:channels], dtype=np.float32)
    layout = {1: "mono", 2: "stereo", 3: "3.0"}[channels]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "a.wav"
        sf.write(str(wav), samples[:, None] * gains[None, :], rate, subtype="PCM_16")
        cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
               "-f", "lavfi", "-i", "color=c=black:s=64x48:r=10", "-i", str(wav),
               "-map", "0:v", "-map", "1:a", "-shortest", "-af", f"aformat=channel_layouts={layout}",
               "-c:v", "mpeg4", "-c:a", "aac", "-b:a", "96k", "-ar", str(rate), str(out)]
        proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write {out}: {proc.stderr.decode(errors='replace').strip()}")


def _make_clip(clip: SynthClip, config: SynthConfig) -> SynthClip:
    if clip.kind == "missing":
        return clip
    if clip.kind == "empty":
        clip.path.write_bytes(b"")
        return clip
    rate = config.sample_rate_hz
    speech = speak(clip.text, voice=clip.voice, speed_wpm=clip.speed_wpm, pitch=clip.pitch, sample_rate_hz=rate)
    pad = np.zeros(int(round(config.pad_s * rate)), np.float32)
    audio = np.concatenate([pad, speech, pad])
    if clip.kind == "overlong":
        audio = np.concatenate([audio, np.zeros(max(0, int(config.overlong_s * rate) - audio.size), np.float32)])
    _encode_mp4(audio, rate, clip.channels, clip.path)
    if clip.kind == "undecodable":  # an interrupted copy: the header survives, the index does not
        clip.path.write_bytes(clip.path.read_bytes()[:1024])
        return replace(clip, speech_s=speech.size / rate)
    return replace(clip, speech_s=speech.size / rate, duration_s=audio.size / rate)


def _fmt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _write_csv(path: Path, rows: list[Mapping[str, str]], clips: list[SynthClip]) -> None:
    t = {}
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)  # MELD's own dialect: minimal quoting, CRLF
        writer.writerow(CSV_COLUMNS)
        for i, (row, clip) in enumerate(zip(rows, clips, strict=True)):
            out = {c: str(row.get(c, "") or "") for c in CSV_COLUMNS}
            out["Sr No."] = out["Sr No."] or str(i + 1)
            if not out["StartTime"]:  # invent consecutive times from the clip lengths (1 s if none)
                start, length = t.get(clip.dialogue_id, 0.0), clip.duration_s or 1.0
                t[clip.dialogue_id] = start + length + 0.3
                out["StartTime"], out["EndTime"] = _fmt_time(start), _fmt_time(start + length)
            writer.writerow([out[c] for c in CSV_COLUMNS])


def write_synthetic_meld(
    out_dir: str | Path,
    n_dialogues: int = 2,
    seed: int = 0,
    *,
    utts_per_dialogue: int = 3,
    broken: bool | Sequence[str] = (),
    splits: Sequence[str] = SPLITS,
    rows: Sequence[Mapping[str, str]] | Mapping[str, Sequence[Mapping[str, str]]] | None = None,
    source: str | Path | None = None,
    config: SynthConfig = SynthConfig(),
) -> SyntheticMeld:
    """Write a MELD.Raw-layout corpus of `n_dialogues` x `utts_per_dialogue` per split under out_dir.

    Rows come from `rows` (a list for every split, or {split: list}), else the MELD CSVs at `source`,
    else $CMER_EDGE_MELD_DIR or ../shared/data/meld, else a built-in script. `broken=True` (or a
    list of BROKEN_KINDS) turns rows of the first split into broken clips (CSV rows kept). Clips
    cycle through 1, 2 and 3 channels.
    """
    if n_dialogues < 1 or utts_per_dialogue < 1:
        raise ValueError(f"n_dialogues and utts_per_dialogue must be >= 1, got {n_dialogues}, {utts_per_dialogue}")
    splits = tuple(check_split(s) for s in splits)
    kinds = BROKEN_KINDS if broken is True else tuple(broken or ())
    bad = [k for k in kinds if k not in BROKEN_KINDS]
    if bad:
        raise ValueError(f"unknown broken clip kind(s) {bad}; expected some of {BROKEN_KINDS}")
    rng = np.random.default_rng(seed)
    raw = Path(out_dir) / RAW_DIR
    picked = {s: [r for d in _pick_dialogues(rows_, n_dialogues, utts_per_dialogue, rng, config, s) for r in d]
              for s, rows_ in _source_rows(rows, source, splits).items()}
    slots = [(s, i) for s in splits for i in range(len(picked[s]))]
    if len(kinds) > len(slots):
        raise ValueError(f"{len(kinds)} broken kinds need at least as many rows, the corpus has {len(slots)}")
    first = [slot for slot in slots if slot[0] == splits[0]]
    slots = first if len(first) >= len(kinds) else slots  # the first split when it has rows enough
    kind_of = {slots[j]: k for j, k in zip(rng.permutation(len(slots))[: len(kinds)], kinds, strict=True)}
    plans: dict[str, list[SynthClip]] = {}
    for s in splits:
        (raw / CLIP_DIRS[s]).mkdir(parents=True, exist_ok=True)
        plans[s] = []
        for i, row in enumerate(picked[s]):
            dia, utt = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
            voice, speed, pitch = _voice(row["Speaker"], seed)
            plans[s].append(SynthClip(
                s, dia, utt, row["Speaker"], normalize_text(row["Utterance"]),
                raw / CLIP_DIRS[s] / f"dia{dia}_utt{utt}.mp4", kind_of.get((s, i), "ok"),
                channels=1 + sum(map(len, plans.values())) % 3, voice=voice,
                speed_wpm=speed, pitch=pitch))
    with ThreadPoolExecutor(max_workers=config.workers) as pool:
        done = {s: list(pool.map(lambda c: _make_clip(c, config), plans[s])) for s in splits}
    for s in splits:
        _write_csv(raw / f"{s}_sent_emo.csv", picked[s], done[s])
    clips = tuple(c for s in splits for c in done[s])
    manifest = [{k: str(v) if isinstance(v, Path) else v for k, v in asdict(c).items()} for c in clips]
    (Path(out_dir) / MANIFEST).write_text(json.dumps({"seed": seed, "clips": manifest}, indent=1), encoding="utf-8")
    log.info("meld_synth: wrote %d clips (%s broken) under %s", len(clips), len(kinds), raw)
    return SyntheticMeld(Path(out_dir), clips)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cmer_edge.testing.meld_synth",
        description="Write a small MELD-format corpus (MELD.Raw layout, espeak-ng speech in mp4 clips).",
        epilog="example: python -m cmer_edge.testing.meld_synth /tmp/meld_synth --dialogues 6 --broken all",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--dialogues", type=int, default=2, help="dialogues per split (default 2)")
    parser.add_argument("--utterances", type=int, default=3, help="utterances per dialogue (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--broken", nargs="+", default=[], choices=[*BROKEN_KINDS, "all"],
                        help="broken clips to include in the first split")
    parser.add_argument("--source", type=Path, help="MELD CSV folder or MELD.Raw root to take rows from")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    broken = True if "all" in args.broken else args.broken
    corpus = write_synthetic_meld(args.out_dir, args.dialogues, args.seed, utts_per_dialogue=args.utterances,
                                  broken=broken, splits=args.splits, source=args.source)
    print(f"wrote {len(corpus.clips)} clips under {corpus.raw_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
