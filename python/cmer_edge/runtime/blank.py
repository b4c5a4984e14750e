"""The rule for an utterance with no usable modality (no audio features and no text), one rule for
the live recognizer and for both live predictors (native session and PyTorch reference):

    The utterance keeps its place in the dialogue: it enters the context window as a blank turn,
    every modality absent (what training calls present = [0, 0]: its inputs are zero after
    normalisation). Its own event has no label (label None, probs {}), since nothing of it was
    seen; the utterances after it see it in their window, exactly as in training and evaluation.

The PyTorch model masks a missing modality by `present`; the native session marks a missing
modality by None but needs at least one modality per push. So a blank is pushed as the head's own
normalisation mean for one modality (normalised: exactly zeros) and None for the other, which is
the same input as present = [0, 0] (tests/test_live_inputs.py checks native == PyTorch on a dialogue
with a blank turn). `Session.push_blank` does it, each member of an ensemble with its own mean
(tests/test_ensemble.py). Nothing in csrc/ changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def blank_inputs(config, head_tensors: Mapping[str, Any]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(x_a, x_t) to push for a turn with no modality: the mean of one modality the head uses."""
    name = "text" if config.uses_text else "audio"
    mean = np.ascontiguousarray(np.asarray(head_tensors[f"{name}.mean"], np.float32))
    return (None, mean) if name == "text" else (mean, None)
