"""`python -m cmer_edge.training.gap_ci`: how sure is a fusion check's gap? A paired bootstrap.

A fusion check compares two runs of one bundle on the same clips (with the words vs from the voice
alone; with the voice vs from the words alone). The gap between them moves with *which* clips were
drawn; this resamples the clips with replacement (the same draw for both runs) and reports the gap's
95 % interval. Given a second pair (another bundle on the same clips), it also reports the interval
of the difference between the two bundles' gaps, on the same draws.

    python -m cmer_edge.evaluate --manifest M --modalities both  --predictions both.csv ...
    python -m cmer_edge.evaluate --manifest M --modalities audio --predictions audio.csv ...
    python -m cmer_edge.training.gap_ci --metric uar both.csv audio.csv [both_B.csv audio_B.csv]

Input: `evaluate --manifest ... --predictions` CSVs (columns path, label, pred), matched by `path`.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from cmer_edge.cli_common import UserError, cli_entry
from cmer_edge.model.config import EMOTIONS
from cmer_edge.training.metrics import score

METRICS = {"uar": "uar", "wf1": "weighted_f1"}


def read_predictions(path: Path) -> dict[str, tuple[int, int]]:
    """path -> (label index, predicted index) from an `evaluate --predictions` CSV of clips."""
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path}")
    out = {}
    with open(path, newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            try:
                out[row["path"]] = (EMOTIONS.index(row["label"]), EMOTIONS.index(row["pred"]))
            except (KeyError, ValueError):
                raise UserError(f"{path}:{line}: needs columns path,label,pred with labels in {EMOTIONS}") from None
    if not out:
        raise UserError(f"{path}: no predictions")
    return out


def aligned(paths: list[Path]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Truth [N] and one prediction array [N] per file, on the clips every file has (same labels)."""
    tables = [read_predictions(p) for p in paths]
    keys = sorted(set(tables[0]).intersection(*tables[1:]))
    if any(len(t) != len(keys) for t in tables):
        raise UserError(f"the files score different clips ({[len(t) for t in tables]} vs {len(keys)} in common)")
    truth = np.array([tables[0][k][0] for k in keys])
    for path, table in zip(paths, tables):
        if any(table[k][0] != t for k, t in zip(keys, truth)):
            raise UserError(f"{path}: labels differ from {paths[0]}")
    return truth, [np.array([t[k][1] for k in keys]) for t in tables]


def gap_draws(truth: np.ndarray, preds: list[np.ndarray], metric: str, draws: int, seed: int
              ) -> tuple[list[float], np.ndarray]:
    """Each pair's gap (first minus second of the pair) on all clips, and [draws, pairs] on resamples."""
    key = METRICS[metric]

    def gaps(rows: np.ndarray) -> list[float]:
        values = [getattr(score(truth[rows], p[rows], EMOTIONS), key) for p in preds]
        return [values[i] - values[i + 1] for i in range(0, len(values), 2)]

    rng = np.random.default_rng(seed)
    n = len(truth)
    return gaps(np.arange(n)), np.array([gaps(rng.integers(n, size=n)) for _ in range(draws)])


def interval(values: np.ndarray) -> str:
    low, high = np.percentile(values, [2.5, 97.5])
    return f"95 % interval [{low:+.2f}, {high:+.2f}]"


@cli_entry
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmer_edge.training.gap_ci", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", type=Path, nargs="+", help="WITH.csv WITHOUT.csv [WITH_B.csv WITHOUT_B.csv]")
    p.add_argument("--metric", choices=sorted(METRICS), default="uar")
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if len(args.files) not in (2, 4):
        raise UserError(f"give 2 or 4 prediction files (one or two pairs), got {len(args.files)}")
    if args.draws < 100:
        raise UserError(f"--draws must be >= 100, got {args.draws}")
    truth, preds = aligned(args.files)
    point, draws = gap_draws(truth, preds, args.metric, args.draws, args.seed)
    for i, gap in enumerate(point):
        print(f"pair {i + 1} ({args.files[2 * i].name} - {args.files[2 * i + 1].name}): {args.metric} gap "
              f"{gap:+.2f}, {interval(draws[:, i])}, {len(truth)} clips")
    if len(point) == 2:
        print(f"pair 2 - pair 1: {point[1] - point[0]:+.2f}, {interval(draws[:, 1] - draws[:, 0])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
