"""EmoDB (Berlin Database of Emotional Speech): manifest, labels, speakers, speaker-independent folds.

Folds: leave-two-speakers-out, 5 folds, each one male + one female speaker. The pairs were chosen
once from the full corpus so fold sizes are close (99..113 utterances, docs/data.md) and are fixed
here, so a filtered subset keeps the same speaker split. A manifest with other speakers gets folds by
sorted speaker id, dealt round-robin.

Label mapping to MELD (for joint training): anger->anger, happiness->joy, sadness->sadness,
fear->fear, disgust->disgust, neutral->neutral, boredom->neutral (MELD has no boredom; it is a
low-arousal, non-valenced state, nearest to neutral).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from cmer_edge.model.config import EMOTIONS

EMODB_LABELS = ("anger", "boredom", "neutral", "happiness", "fear", "sadness", "disgust")
# letter in EmoDB file names (e.g. 03a01Wa.wav): German initials of the emotion
EMODB_CODES = {"W": "anger", "L": "boredom", "N": "neutral", "F": "happiness", "A": "fear",
               "T": "sadness", "E": "disgust"}
EMODB_TO_MELD = {"anger": "anger", "happiness": "joy", "sadness": "sadness", "fear": "fear",
                 "disgust": "disgust", "neutral": "neutral", "boredom": "neutral"}
SPEAKER_GENDER = {"03": "m", "10": "m", "11": "m", "12": "m", "15": "m",
                  "08": "f", "09": "f", "13": "f", "14": "f", "16": "f"}
# (male, female) per fold, balanced by utterance count over the 535-file corpus
GENDER_BALANCED_FOLDS = (("15", "09"), ("11", "08"), ("03", "13"), ("10", "14"), ("12", "16"))
MANIFEST_COLUMNS = ("path", "label", "transcript", "language", "corpus", "speaker", "sr", "duration_s",
                    "transcript_note")
_NAME = re.compile(r"^(\d\d)([ab]\d\d)([WLNFATE])[a-z]?\.wav$")


class EmodbError(ValueError):
    """A manifest that cannot be used: missing file or column, unknown label, bad number."""


@dataclass(frozen=True)
class EmodbUtterance:
    path: Path
    label: str  # one of EMODB_LABELS
    speaker: str
    transcript: str
    language: str = "de"
    sample_rate_hz: int = 0
    duration_s: float = 0.0
    text_id: str = ""  # EmoDB sentence code (a01..b10) when the file name follows EmoDB's scheme

    @property
    def label_index(self) -> int:
        return EMODB_LABELS.index(self.label)

    @property
    def gender(self) -> str | None:
        return SPEAKER_GENDER.get(self.speaker)

    @property
    def meld_label(self) -> int:
        """Index into cmer_edge.model.config.EMOTIONS (MELD's order)."""
        return to_meld_label(self.label)


@dataclass(frozen=True)
class Fold:
    index: int
    test_speakers: tuple[str, ...]
    train_speakers: tuple[str, ...]
    dev_speakers: tuple[str, ...] = ()


def to_meld_label(label: str) -> int:
    """EmoDB label -> MELD label index (boredom maps to neutral)."""
    if label not in EMODB_TO_MELD:
        raise EmodbError(f"unknown EmoDB label {label!r}; expected one of {EMODB_LABELS}")
    return EMOTIONS.index(EMODB_TO_MELD[label])


def _manifest_path(root: str | Path) -> Path:
    root = Path(root)
    path = root / "manifest.csv" if root.is_dir() else root
    if not path.is_file():
        raise EmodbError(f"EmoDB manifest not found: {path} (expected a folder with manifest.csv, or the file)")
    return path


def _parse(row: dict[str, str], base: Path, where: str) -> EmodbUtterance:
    label = row["label"].strip().lower()
    if label not in EMODB_LABELS:
        raise EmodbError(f"{where}: unknown EmoDB label {row['label']!r}; expected one of {EMODB_LABELS}")
    path = base / row["path"].strip()
    m = _NAME.match(path.name)
    if m and EMODB_CODES[m.group(3)] != label:
        raise EmodbError(f"{where}: label {label!r} contradicts the file name {path.name!r} "
                         f"(code {m.group(3)} = {EMODB_CODES[m.group(3)]})")
    speaker = row["speaker"].strip().zfill(2)
    try:
        rate = int(row.get("sr") or 0)
        duration = float(row.get("duration_s") or 0.0)
    except ValueError:
        raise EmodbError(f"{where}: bad sr {row.get('sr')!r} or duration_s {row.get('duration_s')!r}") from None
    return EmodbUtterance(path, label, speaker, row.get("transcript", "").strip(),
                          row.get("language", "de").strip() or "de", rate, duration, m.group(2) if m else "")


def load_emodb(root: str | Path, *, check_files: bool = True) -> tuple[EmodbUtterance, ...]:
    """Read manifest.csv (paths relative to it); EmodbError on missing columns/files or bad labels."""
    path = _manifest_path(root)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("path", "label", "speaker") if c not in (reader.fieldnames or [])]
        if missing:
            raise EmodbError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
        utts = tuple(_parse(row, path.parent.resolve(), f"{path}:{line}") for line, row in enumerate(reader, start=2))
    if not utts:
        raise EmodbError(f"{path}: no rows")
    if check_files:
        absent = [u.path for u in utts if not u.path.is_file()]
        if absent:
            raise EmodbError(f"{len(absent)} EmoDB audio file(s) listed in {path} are missing, first: {absent[0]}")
    return utts


def speakers_of(utts: Iterable[EmodbUtterance]) -> tuple[str, ...]:
    return tuple(sorted({u.speaker for u in utts}))


def emodb_folds(speakers: Sequence[str] | Iterable[EmodbUtterance], n_folds: int = 5, *,
                with_dev: bool = False) -> tuple[Fold, ...]:
    """Speaker-independent folds. With EmoDB's ten speakers and n_folds=5: GENDER_BALANCED_FOLDS.
    with_dev: the next fold's test speakers become this fold's dev speakers (out of train)."""
    items = list(speakers)
    speakers = sorted({s.speaker if isinstance(s, EmodbUtterance) else str(s) for s in items})
    if not 2 <= n_folds <= len(speakers):
        raise ValueError(f"n_folds must be in [2, {len(speakers)}] for speakers {speakers}, got {n_folds}")
    if n_folds == 5 and set(speakers) == set(SPEAKER_GENDER):
        groups = [tuple(sorted(pair)) for pair in GENDER_BALANCED_FOLDS]
    else:
        groups = [tuple(speakers[i::n_folds]) for i in range(n_folds)]
    folds = []
    for i, test in enumerate(groups):
        dev = groups[(i + 1) % n_folds] if with_dev else ()
        train = tuple(s for s in speakers if s not in test and s not in dev)
        folds.append(Fold(i, test, train, dev))
    return tuple(folds)


def split_fold(utts: Sequence[EmodbUtterance], fold: Fold) -> tuple[tuple[EmodbUtterance, ...], ...]:
    """(train, dev, test) utterances of a fold (dev empty unless the fold has dev speakers)."""
    def pick(speakers: tuple[str, ...]) -> tuple[EmodbUtterance, ...]:
        return tuple(u for u in utts if u.speaker in speakers)

    return pick(fold.train_speakers), pick(fold.dev_speakers), pick(fold.test_speakers)
