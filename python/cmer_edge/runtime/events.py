"""What the live runtime emits per utterance, and how it is printed.

Each utterance gets one "final" event. When the recognizer scores the audio before the transcript is
in (both modalities in use, the caller asked for all events), a "provisional" event with the same
`utterance_id` comes first; the final one replaces it (docs/live_audio.md, "Provisional and final").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


def clock(seconds: float) -> str:
    """mm:ss.s on the stream clock."""
    minutes, rest = divmod(max(0.0, seconds), 60.0)
    return f"{int(minutes):02d}:{rest:04.1f}"


@dataclass(frozen=True)
class EmotionEvent:
    utterance_id: int
    start_s: float
    end_s: float
    text: str | None                 # the transcript used (None: audio only)
    label: str | None                # argmax emotion (None only when no modality could be computed)
    probs: dict[str, float]          # over the bundle's labels, sums to 1
    confidence: float                # probability of `label`
    modalities: tuple[str, ...]      # ("audio", "text"), ("audio",) or ("text",)
    latency_ms: dict[str, float]     # per stage, and "total": end of utterance -> event
    truncated: bool = False          # the utterance hit the maximum length and was split
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. "text late", "asr failed: ..."
    stage: str = "final"  # "provisional": audio + context, before the transcript; then "final", same id

    def to_dict(self) -> dict:
        out = asdict(self)
        out["modalities"], out["notes"] = list(self.modalities), list(self.notes)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def console_line(self) -> str:
        span = f"[{clock(self.start_s)}–{clock(self.end_s)}]"
        what = f"{self.label} {self.confidence:.2f}" if self.label else "no prediction"
        text = f'"{self.text}"' if self.text else "(audio only)"
        if self.stage == "provisional":
            what, text = f"{what} (provisional)", "(transcript pending)"
        extra = f" | {'; '.join(self.notes)}" if self.notes else ""
        return f"{span} {what} | {text} | {self.latency_ms.get('total', 0.0):.0f} ms{extra}"
