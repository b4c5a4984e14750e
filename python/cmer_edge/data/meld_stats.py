"""Counts of a MELD copy (utterances, dialogues, labels) and the check against the official sizes.

CLI: `python -m cmer_edge.data.meld_stats ../shared/data/meld --check`
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from cmer_edge.data.meld import SENTIMENTS, SPLITS, Dialogue, MeldFormatError, load_meld
from cmer_edge.model.config import EMOTIONS

# The official MELD sizes: split -> (utterances, dialogues).
EXPECTED_COUNTS = {"train": (9989, 1038), "dev": (1109, 114), "test": (2610, 280)}


@dataclass(frozen=True)
class MeldStats:
    utterances: int
    dialogues: int
    speakers: int
    max_dialogue_utts: int
    mean_dialogue_utts: float
    emotion_counts: dict[str, int]
    sentiment_counts: dict[str, int]
    with_times: int
    over_30_s: int

    def to_dict(self) -> dict:
        return asdict(self)


def meld_stats(dialogues: tuple[Dialogue, ...] | list[Dialogue]) -> MeldStats:
    """Sizes and label distribution (every label listed, zeros included, in EMOTIONS order)."""
    utts = [u for d in dialogues for u in d.utterances]
    emotions = Counter(u.emotion for u in utts)
    sentiments = Counter(u.sentiment for u in utts)
    timed = [u for u in utts if u.start_s is not None and u.end_s is not None]
    lengths = [len(d) for d in dialogues]
    return MeldStats(
        utterances=len(utts),
        dialogues=len(dialogues),
        speakers=len({u.speaker for u in utts}),
        max_dialogue_utts=max(lengths, default=0),
        mean_dialogue_utts=round(sum(lengths) / len(lengths), 3) if lengths else 0.0,
        emotion_counts={e: emotions.get(e, 0) for e in EMOTIONS},
        sentiment_counts={s: sentiments.get(s, 0) for s in SENTIMENTS},
        with_times=len(timed),
        over_30_s=sum(1 for u in timed if u.end_s - u.start_s > 30.0),
    )


def check_official_counts(splits: dict[str, tuple[Dialogue, ...]]) -> dict[str, MeldStats]:
    """Stats per split; MeldFormatError naming every split whose sizes differ from MELD's."""
    stats = {split: meld_stats(dialogues) for split, dialogues in splits.items()}
    wrong = [f"{split}: {s.utterances} utterances in {s.dialogues} dialogues, expected "
             f"{EXPECTED_COUNTS[split][0]} in {EXPECTED_COUNTS[split][1]}"
             for split, s in stats.items() if (s.utterances, s.dialogues) != EXPECTED_COUNTS[split]]
    if wrong:
        raise MeldFormatError("not the official MELD sizes: " + "; ".join(wrong))
    return stats


def format_table(stats: dict[str, MeldStats]) -> str:
    head = f"{'split':6s} {'utts':>6s} {'dials':>6s} {'spk':>5s} " + " ".join(f"{e[:7]:>7s}" for e in EMOTIONS)
    rows = [f"{split:6s} {s.utterances:6d} {s.dialogues:6d} {s.speakers:5d} "
            + " ".join(f"{s.emotion_counts[e]:7d}" for e in EMOTIONS) for split, s in stats.items()]
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cmer_edge.data.meld_stats",
        description="Utterance, dialogue and label counts of a MELD copy (flat CSV dir or MELD.Raw).",
        epilog="example: python -m cmer_edge.data.meld_stats ../shared/data/meld --check",
    )
    parser.add_argument("root", type=Path, help="folder with *_sent_emo.csv, or a MELD.Raw root")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--check", action="store_true", help="fail (exit 1) unless the official sizes")
    parser.add_argument("--json", action="store_true", help="print the stats as JSON")
    args = parser.parse_args(argv)
    splits = load_meld(args.root, tuple(args.splits))
    if args.check:
        try:
            stats = check_official_counts(splits)
        except MeldFormatError as exc:
            print(f"error: {exc}")
            return 1
    else:
        stats = {split: meld_stats(d) for split, d in splits.items()}
    print(json.dumps({k: v.to_dict() for k, v in stats.items()}, indent=2) if args.json else format_table(stats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
