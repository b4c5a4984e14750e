"""Training pairs that teach the head *when* to trust which modality.

Speech and text that were spoken together disagree in two typical ways, and the head must meet both:
- an emotional voice saying emotionally empty words (acted corpora, a kiosk visitor reading a
  sentence): the voice decides. `give_words` gives speech clips whose label is the voice's the words
  of a random neutral MELD line (a sentence they never said, from a large pool, so the head cannot
  learn a handful of sentences by heart);
- a neutral human voice reading emotional words (an acted neutral clip; someone reading a sad
  sentence aloud): the voice decides too. `give_words(..., neutral_clips_only=True)` gives neutral
  clips the words of a random *emotional* MELD line (or, `neutral_clips_only=False`, every acted clip:
  an angry voice saying a sad line is still angry);
- a flat voice saying emotional words: the words decide. `pair_meld_with_voices` gives MELD lines
  the audio of a neutral clip (a real human voice that says nothing), besides the label-matched
  pairs in which voice and words agree.
Spoken MELD lines (corpus "MELD-…", synthetic flat voices) carry the words' label, so they are
neither donors of an emotional voice nor receivers of other words.
Every such utterance marks the modality whose label it is (`Dialogue.keep`): modality dropout may
hide the other one, never that one (hiding it would leave a label the remaining input cannot carry).
"""

from __future__ import annotations

import numpy as np

from cmer_edge.training.dialogues import Dialogue

NEUTRAL = 0  # index of "neutral" in EMOTIONS


def spoken_meld_split(corpus: str) -> str:
    """MELD split of a spoken MELD line's corpus ("MELD-espeak-dev" -> "dev"); "" for acted speech."""
    return corpus.rsplit("-", 1)[-1] if corpus.startswith("MELD-") else ""


def voice_labelled(dialogue: Dialogue) -> bool:
    """True for a clip whose label is its voice's (acted speech), False for a spoken MELD line."""
    return not dialogue.dialogue_id.startswith("MELD")


def mark_deciding(clips: list[Dialogue]) -> None:
    """Mark (in place) each clip's deciding modality: the voice, or the words for spoken MELD lines."""
    for d in clips:
        d.keep = np.array([[voice_labelled(d), not voice_labelled(d)]] * len(d.labels), bool)


def _line_rows(dialogues: list[Dialogue], texts: list[list[str]], min_words: int, neutral: bool):
    return [(d, i, text) for d, words in zip(dialogues, texts) for i, text in enumerate(words)
            if (d.labels[i] == NEUTRAL) == neutral and d.present[i, 1] > 0 and len(text.split()) >= min_words]


def meld_lines(dialogues: list[Dialogue], texts: list[list[str]], min_words: int, *, neutral: bool) -> np.ndarray:
    """Text features [N, Dt] of the lines labelled neutral (`neutral=False`: any other emotion) with at
    least `min_words` words."""
    rows = [d.x_t[i] for d, i, _ in _line_rows(dialogues, texts, min_words, neutral)]
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, dialogues[0].x_t.shape[1]), np.float32)


def meld_line_texts(dialogues: list[Dialogue], texts: list[list[str]], min_words: int, *, neutral: bool) -> list[str]:
    """The words of the lines `meld_lines` picks, in its order."""
    return [text for _, _, text in _line_rows(dialogues, texts, min_words, neutral)]


def give_words(clips: list[Dialogue], lines: np.ndarray, fraction: float, rng: np.random.Generator, *,
               tag: str = "neutral-text", neutral_clips_only: bool = False) -> list[Dialogue]:
    """Copies (id + "/" + tag) of a `fraction` of the voice-labelled clips with audio (only the neutral
    ones if `neutral_clips_only`) whose text is a random one of `lines`; the label stays the voice's.
    The originals are kept unchanged."""
    out = []
    if not len(lines):
        return out
    for d in clips:
        eligible = voice_labelled(d) and d.present[0, 0] > 0 and (not neutral_clips_only or d.labels[0] == NEUTRAL)
        if eligible and rng.random() < fraction:
            present = d.present.copy()
            present[0, 1] = 1.0
            out.append(Dialogue(f"{d.dialogue_id}/{tag}", d.utterance_ids, d.x_a,
                                lines[rng.integers(len(lines))][None], present, d.labels, d.fold, d.x_a_raw,
                                keep=np.array([[True, False]])))
    return out


def flat_voice_alone(clips: list[Dialogue], fraction: float, rng: np.random.Generator) -> list[Dialogue]:
    """Copies (id + "/voice-alone") of a `fraction` of the spoken MELD lines (flat synthetic voices)
    with the words hidden and the label neutral: a flat reader's voice alone says no emotion. Without
    them the head never hears such a voice without its words (their words decide, so modality dropout
    never hides them), and what it says from that voice alone is left to chance."""
    out = []
    for d in clips:
        if not voice_labelled(d) and d.present[0, 0] > 0 and rng.random() < fraction:
            present = d.present.copy()
            present[0, 1] = 0.0
            out.append(Dialogue(f"{d.dialogue_id}/voice-alone", d.utterance_ids, d.x_a, d.x_t, present,
                                np.array([NEUTRAL], np.int64), d.fold, d.x_a_raw, keep=np.array([[True, False]])))
    return out


def pair_meld_with_voices(meld: list[Dialogue], clips: list[Dialogue], same_label: float, neutral_voice: float,
                          rng: np.random.Generator) -> dict[str, int]:
    """Give MELD utterances (in place) clip audio: with chance `same_label` a clip of the same label
    (voice and words agree), else with chance `neutral_voice` a neutral clip (the words decide,
    marked in `keep`).
    Returns how many of each were paired."""
    pools: dict[int, list[Dialogue]] = {}
    for d in clips:
        if voice_labelled(d) and d.present[0, 0] > 0:
            pools.setdefault(int(d.labels[0]), []).append(d)
    counts = {"same_label": 0, "neutral_voice": 0}
    for d in meld:
        if d.keep is None:
            d.keep = np.zeros((len(d.labels), 2), bool)
        for i, label in enumerate(d.labels):
            draw = rng.random()
            if draw < same_label:
                pool, kind = pools.get(int(label)), "same_label"
            elif draw < same_label + neutral_voice:
                pool, kind = pools.get(NEUTRAL), "neutral_voice"
            else:
                continue
            if pool:
                src = pool[rng.integers(len(pool))]
                d.x_a[i], d.x_a_raw[i], d.present[i, 0] = src.x_a[0], src.x_a_raw[0], 1.0
                d.keep[i, 1] = kind == "neutral_voice"  # a voice that says nothing: the words decide
                counts[kind] += 1
    return counts
