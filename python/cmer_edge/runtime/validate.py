"""Input checks of the live runtime's Python API (`Recognizer`, `RecognizerConfig`): one place, so
`process()`, `stream()` and the CLIs apply the same rules (docs/live_audio.md, "Bad input").

- `check_config(config)`: ranges of RecognizerConfig (the CLI's argparse types use the same bounds);
- `prepare_utterance(utt)`: an `Utterance` whose audio is float32 mono 16 kHz in [-1, 1] (shape,
  rate and scale repaired with notes, empty / non-finite refused) — cmer_edge.audio.checks;
- `finite_or_none(x, modality)`: an encoder output with NaN/inf becomes a dropped modality + note.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from cmer_edge.audio.checks import mono_16k
from cmer_edge.audio.convert import PIPELINE_RATE_HZ
from cmer_edge.audio.utterance import Utterance

log = logging.getLogger("cmer_edge")
WINDOW_RANGE = (1, 256)  # live context in utterances (cmer_edge.cli_common uses the same bounds)
THREADS_RANGE = (1, 64)


def _finite_number(value, low: float, name: str, *, strict: bool = False) -> None:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value > low if strict else value >= low))
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low:g}, got {value!r}")


def _int_in(value, low: int, high: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")


def check_config(config) -> None:
    """Raise ValueError naming the first out-of-range field of a RecognizerConfig."""
    _finite_number(config.text_timeout_s, 0.0, "text_timeout_s")
    _finite_number(config.new_dialogue_after_s, 0.0, "new_dialogue_after_s", strict=True)
    _int_in(config.threads, *THREADS_RANGE, "threads")
    _int_in(config.max_queued_utterances, 1, 1024, "max_queued_utterances")
    if config.window_utts is not None:
        _int_in(config.window_utts, *WINDOW_RANGE, "window_utts")
    for name in ("voice_weight", "text_weight"):
        value = getattr(config, name)
        if value is not None:
            _finite_number(value, 0.0, name)
            if value > 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def prepare_utterance(utt: Utterance) -> tuple[Utterance, list[str]]:
    """The utterance with its audio as float32 mono 16 kHz, and notes on what was repaired."""
    if not isinstance(utt, Utterance):
        raise TypeError(f"process() needs a cmer_edge.audio.utterance.Utterance, got {type(utt).__name__}")
    if not (math.isfinite(utt.start_s) and math.isfinite(utt.end_s) and utt.end_s >= utt.start_s):
        raise ValueError(f"utterance {utt.index}: need finite start_s <= end_s, got {utt.start_s}, {utt.end_s}")
    audio, notes = mono_16k(utt.audio, utt.sample_rate_hz, f"utterance {utt.index} audio")
    if audio is utt.audio and utt.sample_rate_hz == PIPELINE_RATE_HZ:
        return utt, notes
    return dataclasses.replace(utt, audio=audio, sample_rate_hz=PIPELINE_RATE_HZ), notes


def finite_or_none(x: np.ndarray | None, modality: str, notes: list[str]) -> np.ndarray | None:
    """x, or None (with a note) when it holds NaN or inf: the modality is dropped for this utterance."""
    if x is None:
        return None
    x = np.asarray(x, np.float32)
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if not bad:
        return x
    note = f"{modality} features non-finite ({bad} of {x.size} values): {modality} dropped"
    log.warning("%s", note)
    notes.append(note)
    return None
