"""`Utterance`: what the endpointer hands to the rest of the pipeline (ASR, features, head)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cmer_edge.audio.convert import PIPELINE_RATE_HZ


@dataclass(frozen=True, eq=False)
class Utterance:
    """One stretch of speech. `audio`: float32 mono at `sample_rate_hz`, covering exactly
    [start_s, end_s) on the stream clock (pre-roll and post-roll included; blocks lost to
    overruns inside it are zeros, counted in `missing_s`). `index`: 0, 1, 2... per stream.
    `truncated`: speech went on past `end_s` and was cut at the maximum utterance length; the next
    utterance then has `continued=True` and starts at this one's `end_s`."""

    audio: np.ndarray
    start_s: float
    end_s: float
    index: int
    truncated: bool = False
    continued: bool = False
    missing_s: float = 0.0
    sample_rate_hz: int = PIPELINE_RATE_HZ

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def __repr__(self) -> str:
        flags = "".join([", truncated" if self.truncated else "", ", continued" if self.continued else "",
                         f", missing_s={self.missing_s:.3f}" if self.missing_s else ""])
        return f"Utterance(index={self.index}, {self.start_s:.3f}-{self.end_s:.3f} s{flags})"
