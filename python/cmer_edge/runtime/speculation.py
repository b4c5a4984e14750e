"""Features started on the endpointer's candidate, before the utterance has closed.

The endpointer knows an utterance's audio `post_roll_ms` into a pause, `min_silence_ms -
post_roll_ms` before it closes it (audio/endpointer.py, `take_candidate`). `Speculation.offer`
starts the stages on that candidate (audio features; on-device ASR too); `claim` hands the work to
the utterance that closes if it is the same audio, and cancels it if speech went on instead (what had
already started is finished and thrown away, counted in `speculative_wasted`).
"""

from __future__ import annotations

import numpy as np

from cmer_edge.audio.utterance import Utterance
from cmer_edge.runtime.stages import StageJob, Stages


def same_audio(a: Utterance, b: Utterance) -> bool:
    return (a.index, a.start_s, a.end_s) == (b.index, b.start_s, b.end_s) and np.array_equal(a.audio, b.audio)


class Speculation:
    def __init__(self, stages: Stages, stats) -> None:
        self.stages, self.stats = stages, stats
        self._job: StageJob | None = None

    def offer(self, candidate: Utterance | None) -> None:
        """Start the stages on a new candidate (None: nothing new); an older one is dropped."""
        if candidate is None:
            return
        self._drop()
        self._job = self.stages.start(candidate, text=self.stages.speculates_text)
        self.stats.speculative_starts += 1

    def claim(self, utt: Utterance) -> StageJob | None:
        """The work already started for `utt`, or None (the caller starts it now)."""
        job, self._job = self._job, None
        if job is not None and same_audio(job.utt, utt):
            self.stats.speculative_hits += 1
            return job
        self._job = job
        self._drop()
        return None

    def _drop(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.stats.speculative_wasted += 1
            self._job = None
