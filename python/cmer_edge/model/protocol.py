"""The two context protocols (DESIGN.md §3).

paper: each utterance sees its whole dialogue (bidirectional). live: utterance i sees only
utterances max(0, i-W+1)..i, the model run on that window and read at its last position.
"""

from __future__ import annotations


def window_bounds(num_utts: int, window_utts: int) -> list[tuple[int, int]]:
    """[(start, end)) of the live window ending at each utterance."""
    if window_utts < 1:
        raise ValueError(f"window_utts must be >= 1, got {window_utts}")
    return [(max(0, i - window_utts + 1), i + 1) for i in range(num_utts)]


def predict_live(model, x_a, x_t, window_utts: int, present=None):
    """Live-protocol logits [T, C] for one dialogue (x_a [T, Da], x_t [T, Dt], torch tensors):
    every window becomes one padded batch row, read at its last valid position."""
    import torch

    t = x_a.shape[0] if x_a is not None else x_t.shape[0]
    bounds = window_bounds(t, window_utts)
    width = max(end - start for start, end in bounds)

    def batch(x):
        if x is None:
            return None
        out = x.new_zeros((len(bounds), width) + tuple(x.shape[1:]))
        for row, (start, end) in enumerate(bounds):
            out[row, : end - start] = x[start:end]
        return out

    lengths = torch.tensor([end - start for start, end in bounds])
    logits = model(batch(x_a), batch(x_t), lengths, batch(present))
    return logits[torch.arange(len(bounds)), lengths - 1]
