"""Labelled speech corpora from a manifest CSV: RAVDESS, SAVEE, EmoDB, or your own.

Columns (one row per clip, paths relative to the CSV):
  path, label, meld_label, transcript, language, corpus, speaker, gender, sr, duration_s, transcript_note
`path`, `label` and `speaker` are required. `meld_label` is the clip's class among MELD's 7 (the
classes the model predicts); a manifest without that column (EmoDB's) is mapped from `label`
through the known corpus mappings (EmoDB: boredom -> neutral, happiness -> joy). An empty transcript
means the clip is audio-only.

Bad rows are errors naming file and line (missing file, unknown label, unreadable audio, a sample
rate that contradicts the `sr` column); with `skip_bad=True` they are skipped and returned with their
reasons, so a caller can count and report them. Nothing is dropped silently. Rows may have different
sample rates: the pipeline resamples every clip to 16 kHz.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from cmer_edge.model.config import EMOTIONS

REQUIRED = ("path", "label", "speaker")
# corpus label -> MELD label, for manifests that carry no meld_label column
LABEL_TO_MELD = {
    "anger": "anger", "angry": "anger", "happiness": "joy", "happy": "joy", "joy": "joy",
    "sadness": "sadness", "sad": "sadness", "fear": "fear", "fearful": "fear", "disgust": "disgust",
    "neutral": "neutral", "calm": "neutral", "boredom": "neutral", "surprise": "surprise", "surprised": "surprise",
}


class ManifestError(ValueError):
    """A manifest row or file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str            # the corpus's own label
    meld_label: int       # index into EMOTIONS
    speaker: str
    transcript: str = ""
    corpus: str = ""
    gender: str = ""
    language: str = ""
    sample_rate_hz: int = 0
    duration_s: float = 0.0
    line: int = 0         # line in the manifest, for messages

    @property
    def speaker_key(self) -> str:
        """Speaker id unique across corpora ("RAVDESS/01")."""
        return f"{self.corpus}/{self.speaker}"


@dataclass
class Manifest:
    path: Path
    clips: list[Clip]
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, reason) with skip_bad

    def summary(self) -> str:
        rates = Counter(c.sample_rate_hz for c in self.clips)
        text = sum(1 for c in self.clips if c.transcript)
        return (f"{self.path}: {len(self.clips)} clips ({text} with transcripts), "
                f"{len({c.speaker_key for c in self.clips})} speakers, rates {dict(rates)}, "
                f"{len(self.skipped)} skipped")


def _meld_index(row: dict[str, str], where: str) -> int:
    raw = (row.get("meld_label") or "").strip().lower()
    if not raw:
        raw = LABEL_TO_MELD.get(row["label"].strip().lower(), "")
        if not raw:
            raise ManifestError(f"{where}: label {row['label']!r} has no MELD mapping and the row has no "
                                f"meld_label; known labels: {sorted(LABEL_TO_MELD)}")
    if raw not in EMOTIONS:
        raise ManifestError(f"{where}: meld_label {raw!r} is not one of MELD's classes {EMOTIONS}")
    return EMOTIONS.index(raw)


def _parse(row: dict[str, str], base: Path, where: str, check_audio: bool) -> Clip:
    if not (row.get("path") or "").strip():
        raise ManifestError(f"{where}: empty path")
    if not (row.get("label") or "").strip():
        raise ManifestError(f"{where}: empty label")
    path = (base / row["path"].strip()).resolve()
    if not path.is_file():
        raise ManifestError(f"{where}: audio file not found: {path}")
    try:
        rate = int(float(row.get("sr") or 0))
        duration = float(row.get("duration_s") or 0.0)
    except ValueError:
        raise ManifestError(f"{where}: bad sr {row.get('sr')!r} or duration_s {row.get('duration_s')!r}") from None
    if check_audio:
        try:
            info = sf.info(str(path))
        except Exception as exc:  # soundfile raises its own LibsndfileError / RuntimeError
            raise ManifestError(f"{where}: unreadable audio {path}: {exc}") from None
        if rate and info.samplerate != rate:
            raise ManifestError(f"{where}: {path.name} is {info.samplerate} Hz but the manifest says sr={rate}")
        rate, duration = info.samplerate, info.frames / info.samplerate
    corpus = (row.get("corpus") or "").strip() or base.name
    return Clip(path=path, label=row["label"].strip().lower(), meld_label=_meld_index(row, where),
                speaker=row["speaker"].strip(), transcript=(row.get("transcript") or "").strip(), corpus=corpus,
                gender=(row.get("gender") or "").strip().lower(), language=(row.get("language") or "").strip(),
                sample_rate_hz=rate, duration_s=duration, line=int(where.rsplit(":", 1)[1]))


def load_manifest(path: str | Path, *, skip_bad: bool = False, check_audio: bool = True) -> Manifest:
    """Read a manifest (a CSV, or a folder holding manifest.csv). ManifestError on a bad file or row
    (unless `skip_bad`), and on a manifest with no usable rows."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.csv"
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    clips, skipped = [], []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            try:
                clips.append(_parse(row, path.parent.resolve(), f"{path}:{line}", check_audio))
            except ManifestError as exc:
                if not skip_bad:
                    raise
                skipped.append((line, str(exc)))
    if not clips:
        raise ManifestError(f"{path}: no usable rows ({len(skipped)} skipped)")
    return Manifest(path, clips, skipped)


def load_manifests(paths: list[str | Path], **kwargs) -> Manifest:
    """Several manifests as one (clips in order; skipped rows keep their own file in the reason)."""
    loaded = [load_manifest(p, **kwargs) for p in paths]
    return Manifest(loaded[0].path if len(loaded) == 1 else Path("+".join(str(m.path) for m in loaded)),
                    [c for m in loaded for c in m.clips], [s for m in loaded for s in m.skipped])
