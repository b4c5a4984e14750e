"""MELD transcripts and labels as dialogues: ordered utterance sequences with speakers.

Two layouts are found from one root (see docs/data.md):
- flat: `{train,dev,test}_sent_emo.csv` in one folder (the repo's `data/MELD/`, ../shared/data/meld);
- MELD.Raw: the CSVs next to (or inside) the clip folders `train_splits/`, `dev_splits_complete/`,
  `output_repeated_splits_test/` holding `dia{D}_utt{U}.mp4`; the root may be the folder that holds
  `MELD.Raw/`, `MELD.Raw/` itself, and the clip folders may sit under `train/`, `dev/`, `test/`.
When a split's clip folder exists, every utterance of that split gets `audio_path` (the expected
clip path, whether or not the file is there: `meld_audio` reports the missing ones).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from cmer_edge.data.text_norm import normalize_text
from cmer_edge.model.config import EMOTIONS

log = logging.getLogger("cmer_edge")

SPLITS = ("train", "dev", "test")
CLIP_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
SENTIMENTS = ("negative", "neutral", "positive")
CSV_COLUMNS = ("Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
               "Season", "Episode", "StartTime", "EndTime")
REQUIRED_COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
_TIME = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?$")


class MeldError(ValueError):
    """Base of every MELD loading error."""


class MeldLayoutError(MeldError):
    """The root is not a MELD folder, or a split's CSV is not where MELD puts it."""


class MeldFormatError(MeldError):
    """A CSV row that cannot be read (bad integer, time, duplicate id, missing column)."""


class MeldLabelError(MeldFormatError):
    """An emotion or sentiment outside MELD's label sets."""


@dataclass(frozen=True)
class Utterance:
    """One MELD row. `label` indexes cmer_edge.model.config.EMOTIONS; times are in seconds of the
    episode (None when the CSV has no times); `audio_path` is the expected clip (None without clips)."""

    split: str
    dialogue_id: int
    utterance_id: int
    speaker: str
    text: str
    label: int
    sentiment: str
    sr_no: int | None = None
    season: int | None = None
    episode: int | None = None
    start_s: float | None = None
    end_s: float | None = None
    audio_path: Path | None = None

    @property
    def emotion(self) -> str:
        return EMOTIONS[self.label]

    @property
    def clip_name(self) -> str:
        return f"dia{self.dialogue_id}_utt{self.utterance_id}"


@dataclass(frozen=True)
class Dialogue:
    """A dialogue's utterances ordered by Utterance_ID (MELD ids may have gaps; they are kept)."""

    split: str
    dialogue_id: int
    utterances: tuple[Utterance, ...]

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def speakers(self) -> tuple[str, ...]:
        """Distinct speakers in order of first appearance."""
        return tuple(dict.fromkeys(u.speaker for u in self.utterances))

    @property
    def labels(self) -> tuple[int, ...]:
        return tuple(u.label for u in self.utterances)

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(u.text for u in self.utterances)


@dataclass(frozen=True)
class MeldLayout:
    """Where a root keeps each split's CSV and clip folder (None where absent)."""

    root: Path
    csv_files: dict[str, Path | None] = field(default_factory=dict)
    clip_dirs: dict[str, Path | None] = field(default_factory=dict)


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown MELD split {split!r}; expected one of {SPLITS}")
    return split


def _bases(root: Path) -> list[Path]:
    raw = root / "MELD.Raw"
    return [root, raw] if raw.is_dir() else [root]


def _candidates(root: Path, split: str) -> tuple[list[Path], list[Path]]:
    csvs, clips = [], []
    for base in _bases(root):
        for sub in ("", split, CLIP_DIRS[split]):
            csvs.append((base / sub if sub else base) / f"{split}_sent_emo.csv")
        clips += [base / CLIP_DIRS[split], base / split / CLIP_DIRS[split]]
    return csvs, clips


def find_layout(root: str | Path) -> MeldLayout:
    """Locate each split's CSV and clip folder under `root`; MeldLayoutError if it holds neither."""
    root = Path(root)
    if not root.is_dir():
        raise MeldLayoutError(f"MELD root {str(root)!r} does not exist or is not a directory")
    csv_files, clip_dirs = {}, {}
    for split in SPLITS:
        csvs, clips = _candidates(root, split)
        csv_files[split] = next((p for p in csvs if p.is_file()), None)
        clip_dirs[split] = next((p for p in clips if p.is_dir()), None)
    if not any(csv_files.values()):
        tried = ", ".join(str(p) for p in _candidates(root, "train")[0])
        raise MeldLayoutError(f"{str(root)!r} is not a MELD root: no *_sent_emo.csv found (tried {tried}, "
                              f"and the same for dev/test)")
    return MeldLayout(root, csv_files, clip_dirs)


def read_csv_rows(path: str | Path) -> list[dict[str, str]]:
    """The raw rows of a MELD CSV (UTF-8, or cp1252 as a fallback), header names stripped."""
    path = Path(path)
    if not path.is_file():
        raise MeldLayoutError(f"MELD CSV not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        log.warning("%s is not UTF-8 (%s); reading it as cp1252", path, exc)
        text = data.decode("cp1252", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None:
        raise MeldFormatError(f"{path}: empty file, expected the header {','.join(CSV_COLUMNS)}")
    reader.fieldnames = [name.strip() for name in reader.fieldnames]
    missing = [c for c in REQUIRED_COLUMNS if c not in reader.fieldnames]
    if missing:
        raise MeldFormatError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
    return [{k: (v if v is not None else "") for k, v in row.items() if k is not None} for row in reader]


def parse_time_s(value: str) -> float | None:
    """MELD's "H:MM:SS,mmm" -> seconds; "" -> None; anything else raises ValueError."""
    value = value.strip()
    if not value:
        return None
    m = _TIME.match(value)
    if not m:
        raise ValueError(f"time {value!r} is not H:MM:SS,mmm")
    h, mi, s, ms = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(s) + int((ms or "0").ljust(3, "0")) / 1000.0


def _int(row: dict[str, str], name: str, where: str, optional: bool = False) -> int | None:
    value = row.get(name, "").strip()
    if optional and not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise MeldFormatError(f"{where}: column {name!r} must be an integer, got {value!r}") from None


def parse_row(row: dict[str, str], split: str, where: str, *, normalize: bool = True,
              clip_dir: Path | None = None) -> Utterance:
    """One CSV row -> Utterance; `where` names the file and line in error messages."""
    emotion = row["Emotion"].strip().lower()
    if emotion not in EMOTIONS:
        raise MeldLabelError(f"{where}: unknown emotion {row['Emotion']!r}; expected one of {EMOTIONS}")
    sentiment = row["Sentiment"].strip().lower()
    if sentiment not in SENTIMENTS:
        raise MeldLabelError(f"{where}: unknown sentiment {row['Sentiment']!r}; expected one of {SENTIMENTS}")
    try:
        start_s, end_s = parse_time_s(row.get("StartTime", "")), parse_time_s(row.get("EndTime", ""))
    except ValueError as exc:
        raise MeldFormatError(f"{where}: {exc}") from None
    text, speaker = row["Utterance"], row["Speaker"]
    if normalize:
        text, speaker = normalize_text(text), normalize_text(speaker)
    dia, utt = _int(row, "Dialogue_ID", where), _int(row, "Utterance_ID", where)
    return Utterance(
        split=split, dialogue_id=dia, utterance_id=utt, speaker=speaker, text=text,
        label=EMOTIONS.index(emotion), sentiment=sentiment, sr_no=_int(row, "Sr No.", where, True),
        season=_int(row, "Season", where, True), episode=_int(row, "Episode", where, True),
        start_s=start_s, end_s=end_s,
        audio_path=None if clip_dir is None else clip_dir / f"dia{dia}_utt{utt}.mp4",
    )


def read_meld_csv(path: str | Path, split: str, *, normalize: bool = True,
                  clip_dir: str | Path | None = None) -> tuple[Dialogue, ...]:
    """Any MELD-format CSV -> dialogues sorted by Dialogue_ID, utterances by Utterance_ID."""
    check_split(split)
    path = Path(path)
    clip_dir = None if clip_dir is None else Path(clip_dir)
    by_dialogue: dict[int, dict[int, Utterance]] = {}
    for line, row in enumerate(read_csv_rows(path), start=2):
        utt = parse_row(row, split, f"{path}:{line}", normalize=normalize, clip_dir=clip_dir)
        turns = by_dialogue.setdefault(utt.dialogue_id, {})
        if utt.utterance_id in turns:
            raise MeldFormatError(f"{path}:{line}: duplicate Dialogue_ID {utt.dialogue_id} "
                                  f"Utterance_ID {utt.utterance_id}")
        turns[utt.utterance_id] = utt
    return tuple(Dialogue(split, d, tuple(turns[u] for u in sorted(turns)))
                 for d, turns in sorted(by_dialogue.items()))


def load_meld_split(root: str | Path, split: str, *, normalize: bool = True) -> tuple[Dialogue, ...]:
    """Load one split ("train", "dev", "test") from a flat or MELD.Raw root."""
    check_split(split)
    layout = find_layout(root)
    path = layout.csv_files[split]
    if path is None:
        tried = ", ".join(str(p) for p in _candidates(Path(root), split)[0])
        raise MeldLayoutError(f"no {split}_sent_emo.csv under {str(root)!r} (tried {tried})")
    return read_meld_csv(path, split, normalize=normalize, clip_dir=layout.clip_dirs[split])


def load_meld(root: str | Path, splits: tuple[str, ...] = SPLITS, *,
              normalize: bool = True) -> dict[str, tuple[Dialogue, ...]]:
    """Several splits at once: {split: dialogues}."""
    return {split: load_meld_split(root, split, normalize=normalize) for split in splits}


def iter_utterances(dialogues: tuple[Dialogue, ...] | list[Dialogue]):
    """Utterances of the dialogues in order."""
    for dialogue in dialogues:
        yield from dialogue.utterances
