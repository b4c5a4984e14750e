"""Per-speaker (per-session) standardisation of audio features.

Acoustic functionals shift a lot from one voice to another; z-scoring each speaker's features
with that speaker's own statistics removes much of it (EmoDB, eGeMAPS + SVM, leave-two-speakers-out:
55 -> 72 % UAR; see docs/results.md). Offline, a speaker's statistics come from all of their
utterances in the split (`speaker_zscore`). Live, they come from the utterances heard so far in
the session, shrunk towards the training population for the first ones (`OnlineZScore`).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def speaker_zscore(values: np.ndarray, speakers: list, usable: np.ndarray) -> np.ndarray:
    """values [N, D] -> per-speaker z-scores (rows with usable=False stay as they are)."""
    out = values.astype(np.float32, copy=True)
    speakers = np.asarray([str(s) for s in speakers])
    for speaker in np.unique(speakers):
        rows = np.flatnonzero((speakers == speaker) & usable)
        if len(rows) == 0:
            continue
        block = values[rows].astype(np.float64)
        out[rows] = ((block - block.mean(0)) / (block.std(0) + EPS)).astype(np.float32)
    return out


class OnlineZScore:
    """Running per-session z-scoring: mean/variance of the session's utterances so far, blended
    with the population's (`prior_mean`, `prior_var`) as if `prior_weight` utterances of it had
    been seen. `update_then_apply(x)` includes x in the statistics before using them, as the
    offline version includes every utterance of the speaker."""

    def __init__(self, prior_mean: np.ndarray, prior_var: np.ndarray, prior_weight: float = 4.0) -> None:
        if prior_mean.shape != prior_var.shape or prior_mean.ndim != 1:
            raise ValueError(f"prior mean/var must be matching vectors, got {prior_mean.shape} and {prior_var.shape}")
        if prior_weight <= 0:
            raise ValueError(f"prior_weight must be > 0, got {prior_weight}")
        self.prior_mean = prior_mean.astype(np.float64)
        self.prior_var = np.maximum(prior_var.astype(np.float64), EPS)
        self.prior_weight = float(prior_weight)
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.sum = np.zeros_like(self.prior_mean)
        self.sum_sq = np.zeros_like(self.prior_mean)

    def update_then_apply(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if x.shape != self.prior_mean.shape:
            raise ValueError(f"features must have shape {self.prior_mean.shape}, got {x.shape}")
        self.count += 1
        self.sum += x
        self.sum_sq += x * x
        w = self.prior_weight
        n = self.count
        mean = (self.sum + w * self.prior_mean) / (n + w)
        second = (self.sum_sq + w * (self.prior_var + self.prior_mean ** 2)) / (n + w)
        var = np.maximum(second - mean ** 2, EPS)
        return ((x - mean) / np.sqrt(var)).astype(np.float32)
