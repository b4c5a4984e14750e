"""The voice pool: the fused head's probabilities pooled with the same head's view of the voice alone.

    probs = pool_voice(p_both, p_voice, weight, neutral=0)

A log-linear (geometric) opinion pool whose weight follows the voice:
p ∝ p_both^(1 - g) · p_voice^g with g = weight · (1 - p_voice[neutral]). A voice that sounds emotional
(little probability on neutral) holds its emotion against emotional-sounding words; a flat or
neutral voice (a synthetic reader, a calm speaker) gets no say of its own and leaves the decision to
the fused head, which was trained for those cases. weight = 0 is the fused head as trained.
The bundle's weight is `runtime.voice_weight`, fitted on dev by `cmer_edge.training.voice_trust`;
the runtime's head session applies it (runtime/head.py). Torch-free: numpy only.
"""

from __future__ import annotations

import numpy as np

FLOOR = 1e-12  # probabilities are floored before the log, so a zero in either view is not absolute


def pool_problem(weight: float, modalities: str, labels) -> str | None:
    """Why a voice weight cannot apply to a head with these modalities and labels (None: it can)."""
    if weight and (modalities != "both" or "neutral" not in labels):
        return (f"a voice weight ({weight:g}) needs a bimodal head with a 'neutral' label, this head is "
                f"modalities={modalities!r} with labels {tuple(labels)}")
    return None


def pool_voice(p_both: np.ndarray, p_voice: np.ndarray, weight: float, neutral: int = 0) -> np.ndarray:
    """[..., C] class probabilities of the fused head and of the voice alone -> pooled [..., C] (sums to 1)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"voice weight must be in [0, 1], got {weight!r}")
    p_both = np.asarray(p_both, np.float64)
    if weight == 0.0:
        return p_both.astype(np.float32)
    p_voice = np.asarray(p_voice, np.float64)
    g = weight * (1.0 - p_voice[..., neutral:neutral + 1])
    log_p = (1.0 - g) * np.log(np.maximum(p_both, FLOOR)) + g * np.log(np.maximum(p_voice, FLOOR))
    log_p -= log_p.max(axis=-1, keepdims=True)
    p = np.exp(log_p)
    return (p / p.sum(axis=-1, keepdims=True)).astype(np.float32)
