"""Score a bundle on labelled clips through the live runtime: each clip its own fresh conversation.

Every clip goes through the same `Recognizer` that `listen` runs (the bundle's runtime encoders,
its per-session audio normaliser, the native head), with the manifest transcript as the text (or
Whisper's, `asr="whisper"`); a clip with an empty transcript is audio-only. Its audio is what the
live segmenter hands on from it (`audio.segmenter.speech_span`; where the VAD finds no speech, the
whole clip, counted in `whole_clip`). Two settings:
- `warmup_clips=0` (setting a, "a stranger"): the clip is the conversation's first utterance, so
  the normaliser has only the training population's statistics;
- `warmup_clips=N` (setting b): the normaliser first sees N other clips of the same speaker (random
  order, seeded, the scored clip never among them), as it would after N utterances of that speaker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from cmer_edge.audio.segmenter import clip_speech
from cmer_edge.audio.utterance import Utterance
from cmer_edge.audio.vad import SileroVad
from cmer_edge.data.speech_manifest import Clip
from cmer_edge.model.config import EMOTIONS

log = logging.getLogger("cmer_edge")


@dataclass
class ClipEvaluation:
    clips: list[Clip]
    y_true: np.ndarray          # MELD label index per scored clip
    y_pred: np.ndarray
    probs: np.ndarray           # [scored, 7]
    texts: list[str]            # the text the head saw ("" for audio-only)
    scored: list[int]           # indices into `clips`
    unscored: list[tuple[int, str]] = field(default_factory=list)  # (clip index, why)
    whole_clip: list[int] = field(default_factory=list)  # scored clips in which the VAD found no speech

    def summary(self) -> str:
        return (f"scored {len(self.scored)} of {len(self.clips)} clips ({len(self.unscored)} unscored, "
                f"{len(self.whole_clip)} whole: no speech found)")


def evaluate_clips(clips: list[Clip], recognizer, *, asr: str = "none", modalities: str = "both",
                   warmup_clips: int = 0, seed: int = 0) -> ClipEvaluation:
    """Run every clip through `recognizer` (a Recognizer built for this bundle and these modalities)."""
    if tuple(recognizer.bundle.labels) != EMOTIONS:
        raise ValueError(f"the bundle predicts {recognizer.bundle.labels}; clip manifests are labelled with "
                         f"MELD's classes {EMOTIONS}")
    if warmup_clips < 0:
        raise ValueError(f"warmup_clips must be >= 0, got {warmup_clips}")
    rng = np.random.default_rng(seed)
    raw_audio_features: dict[int, np.ndarray] = {}
    by_speaker: dict[str, list[int]] = {}
    for i, clip in enumerate(clips):
        by_speaker.setdefault(clip.speaker_key, []).append(i)
    extractor = recognizer.stages.audio_extractor
    vad = SileroVad()

    def raw_features(i: int) -> np.ndarray:
        if i not in raw_audio_features:
            raw_audio_features[i] = extractor(clip_speech(clips[i].path, vad)[0])
        return raw_audio_features[i]

    y_true, y_pred, probs, texts, scored, unscored, whole_clip = [], [], [], [], [], [], []
    for i, clip in enumerate(clips):
        try:
            audio, speech_found = clip_speech(clip.path, vad)
        except ValueError as exc:
            unscored.append((i, f"unreadable audio: {exc}"))
            continue
        recognizer.reset()
        if warmup_clips and extractor is not None and recognizer.audio_norm is not None:
            others = [j for j in by_speaker[clip.speaker_key] if j != i]
            for j in rng.permutation(others)[:warmup_clips]:
                recognizer.observe_audio(raw_features(int(j)))
        text = None if asr == "whisper" else (clip.transcript if modalities != "audio" else None)
        utt = Utterance(audio, 0.0, len(audio) / 16000.0, index=0)
        event = recognizer.process(utt, text=text)
        if event.label is None:
            unscored.append((i, "; ".join(event.notes) or "no modality"))
            continue
        y_true.append(clip.meld_label)
        y_pred.append(EMOTIONS.index(event.label))
        probs.append([event.probs[name] for name in EMOTIONS])
        texts.append(event.text or "")
        scored.append(i)
        if not speech_found:
            whole_clip.append(i)
    return ClipEvaluation(clips, np.array(y_true, np.int64), np.array(y_pred, np.int64),
                          np.array(probs, np.float32).reshape(-1, len(EMOTIONS)), texts, scored, unscored,
                          whole_clip)
