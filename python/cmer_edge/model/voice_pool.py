"""The voice pool: the fused head's probabilities pooled with the same head's views of each modality alone.

    probs = pool_voice(p_both, p_voice, weight, neutral=0)                       # the voice gate only
    probs = pool_voice(p_both, p_voice, weight, neutral, p_text, text_weight)    # both gates

A log-linear (geometric) opinion pool whose weights follow the voice:
p ∝ p_both^(1 - g - h) · p_voice^g · p_text^h with g = weight · (1 - p_voice[neutral]) and
h = text_weight · p_voice[neutral]. A voice that sounds emotional (little probability on neutral) holds
its emotion against emotional-sounding words; a voice that sounds neutral (a synthetic reader, a calm
speaker) leaves the decision to the words alone as far as `text_weight` says, so a flat voice cannot
pull the words towards neutral. g + h <= max(weight, text_weight) <= 1. Both weights 0 is the fused
head as trained. The bundle's weights are `runtime.voice_weight` and `runtime.text_weight`, fitted
together on dev by `cmer_edge.training.voice_trust`; the runtime's head session applies them
(runtime/head.py). Torch-free: numpy only.
"""

from __future__ import annotations

import numpy as np

FLOOR = 1e-12  # probabilities are floored before the log, so a zero in either view is not absolute


def pool_problem(weight: float, modalities: str, labels, text_weight: float = 0.0) -> str | None:
    """Why pool weights cannot apply to a head with these modalities and labels (None: they can)."""
    if (weight or text_weight) and (modalities != "both" or "neutral" not in labels):
        which = f"a voice weight ({weight:g})" if weight else f"a text weight ({text_weight:g})"
        return (f"{which} needs a bimodal head with a 'neutral' label, this head is "
                f"modalities={modalities!r} with labels {tuple(labels)}")
    return None


def pool_voice(p_both: np.ndarray, p_voice: np.ndarray, weight: float, neutral: int = 0,
               p_text: np.ndarray | None = None, text_weight: float = 0.0) -> np.ndarray:
    """[..., C] class probabilities of the fused head, of the voice alone and (with a text weight) of the
    words alone -> pooled [..., C] (sums to 1)."""
    for name, value in (("voice weight", weight), ("text weight", text_weight)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    if text_weight and p_text is None:
        raise ValueError(f"a text weight ({text_weight:g}) needs the words-alone view p_text")
    p_both = np.asarray(p_both, np.float64)
    if weight == 0.0 and text_weight == 0.0:
        return p_both.astype(np.float32)
    p_voice = np.asarray(p_voice, np.float64)
    neutral_voice = p_voice[..., neutral:neutral + 1]
    g, h = weight * (1.0 - neutral_voice), text_weight * neutral_voice
    log_p = (1.0 - g - h) * np.log(np.maximum(p_both, FLOOR)) + g * np.log(np.maximum(p_voice, FLOOR))
    if text_weight:
        log_p += h * np.log(np.maximum(np.asarray(p_text, np.float64), FLOOR))
    log_p -= log_p.max(axis=-1, keepdims=True)
    p = np.exp(log_p)
    return (p / p.sum(axis=-1, keepdims=True)).astype(np.float32)
