"""training/fusion_pairs.py: the pairs that teach the head when to trust which modality."""

from __future__ import annotations

import numpy as np

from cmer_edge.training.dialogues import Dialogue
from cmer_edge.training.fusion_pairs import (
    flat_voice_alone,
    give_words,
    mark_deciding,
    meld_lines,
    pair_meld_with_voices,
    voice_labelled,
)


def _clip(name: str, label: int, audio: float, text_ok: float = 0.0) -> Dialogue:
    x_a = np.full((1, 3), audio, np.float32)
    return Dialogue(name, [0], x_a, np.zeros((1, 2), np.float32), np.array([[1.0, text_ok]], np.float32),
                    np.array([label]), x_a_raw=x_a + 100)


def _meld(labels: list[int]) -> Dialogue:
    n = len(labels)
    return Dialogue("MELD/train/1", list(range(n)), np.zeros((n, 3), np.float32), np.ones((n, 2), np.float32),
                    np.stack([np.zeros(n), np.ones(n)], 1).astype(np.float32), np.array(labels),
                    x_a_raw=np.zeros((n, 3), np.float32))


def test_spoken_meld_lines_are_labelled_by_their_words_not_their_voice():
    assert voice_labelled(_clip("RAVDESS/03-01-05/k0", 6, 1.0))
    assert not voice_labelled(_clip("MELD-espeak-train/train_d1_u5/k0", 6, 1.0))


def test_flat_voices_alone_are_neutral_copies_of_spoken_lines_only():
    spoken = _clip("MELD-espeak-train/train_d1_u5/k0", 6, 1.0, text_ok=1.0)
    acted = _clip("RAVDESS/03-01-05/k0", 6, 2.0, text_ok=1.0)
    mark_deciding([spoken, acted])
    out = flat_voice_alone([spoken, acted], 1.0, np.random.default_rng(0))
    assert [d.dialogue_id for d in out] == ["MELD-espeak-train/train_d1_u5/k0/voice-alone"]
    alone = out[0]
    assert alone.labels.tolist() == [0] and alone.present.tolist() == [[1.0, 0.0]]
    assert alone.keep.tolist() == [[True, False]]
    assert np.array_equal(alone.x_a, spoken.x_a) and spoken.present.tolist() == [[1.0, 1.0]]  # the original kept
    assert spoken.labels.tolist() == [6]
    assert flat_voice_alone([spoken], 0.0, np.random.default_rng(0)) == []


def test_meld_lines_keep_only_long_lines_with_text_of_the_asked_kind():
    d = _meld([0, 0, 6, 0, 3])
    d.x_t = np.arange(10, dtype=np.float32).reshape(5, 2)
    d.present[3, 1] = 0.0  # no usable text
    words = [["I will see you at the office tomorrow", "Okay.", "I hate you so much", "a b c d e", "So sad."]]
    assert meld_lines([d], words, min_words=4, neutral=True).tolist() == [[0.0, 1.0]]
    assert meld_lines([d], words, min_words=4, neutral=False).tolist() == [[4.0, 5.0]]  # "So sad." is too short


def test_neutral_text_copies_keep_the_voice_and_its_label_and_leave_the_originals():
    rng = np.random.default_rng(0)
    voice = _clip("SAVEE/a01/k0", 6, 2.0)
    spoken = _clip("MELD-espeak-train/x/k0", 4, 3.0, text_ok=1.0)
    lines = np.array([[7.0, 7.0]], np.float32)
    copies = give_words([voice, spoken], lines, 1.0, rng)
    assert len(copies) == 1  # the spoken MELD line keeps its own words
    (copy,) = copies
    assert copy.labels.tolist() == [6] and copy.x_a is voice.x_a and copy.x_t.tolist() == [[7.0, 7.0]]
    assert copy.present.tolist() == [[1.0, 1.0]] and voice.present.tolist() == [[1.0, 0.0]]
    assert give_words([voice], lines, 0.0, rng) == []
    assert give_words([voice], np.zeros((0, 2), np.float32), 1.0, rng) == []


def test_emotional_words_go_to_neutral_clips_only_and_the_voice_still_decides():
    rng = np.random.default_rng(0)
    neutral, angry = _clip("RAVDESS/a/k0", 0, 1.0), _clip("RAVDESS/b/k0", 6, 2.0)
    spoken = _clip("MELD-espeak-train/x/k0", 0, 3.0, text_ok=1.0)
    lines = np.array([[5.0, 5.0]], np.float32)
    (copy,) = give_words([neutral, angry, spoken], lines, 1.0, rng, tag="emotional-text", neutral_clips_only=True)
    assert copy.dialogue_id == "RAVDESS/a/k0/emotional-text" and copy.labels.tolist() == [0]
    assert copy.x_t.tolist() == [[5.0, 5.0]] and copy.keep.tolist() == [[True, False]]
    assert neutral.present.tolist() == [[1.0, 0.0]]


def test_meld_lines_get_same_label_or_neutral_voices_never_a_spoken_meld_voice():
    rng = np.random.default_rng(0)
    clips = [_clip("RAVDESS/a/k0", 0, 10.0), _clip("RAVDESS/b/k0", 6, 60.0), _clip("MELD-espeak-train/c/k0", 6, 99.0)]
    meld = _meld([6] * 200 + [4] * 200)
    counts = pair_meld_with_voices([meld], clips, 0.5, 0.25, rng)
    audio = meld.x_a[:, 0]
    assert 99.0 not in audio  # synthetic flat voices are not donors
    anger, joy = audio[:200], audio[200:]
    assert set(anger) <= {0.0, 10.0, 60.0} and set(joy) <= {0.0, 10.0}  # no joy clip: only neutral voices
    assert (meld.present[:, 0] == (audio != 0)).all() and np.allclose(meld.x_a_raw[audio != 0, 0], audio[audio != 0] + 100)
    assert counts["same_label"] == int((anger == 60.0).sum()) and 70 < counts["same_label"] < 130
    assert counts["neutral_voice"] == int((audio == 10.0).sum()) and 60 < counts["neutral_voice"] < 140


def test_each_pair_marks_the_modality_whose_label_it_is():
    rng = np.random.default_rng(1)
    voice, spoken = _clip("RAVDESS/a/k0", 0, 10.0, text_ok=1.0), _clip("MELD-espeak-train/c/k0", 6, 99.0, text_ok=1.0)
    mark_deciding([voice, spoken])
    assert voice.keep.tolist() == [[True, False]] and spoken.keep.tolist() == [[False, True]]
    (copy,) = give_words([voice], np.ones((1, 2), np.float32), 1.0, rng)
    assert copy.keep.tolist() == [[True, False]]
    meld = _meld([6] * 50)
    pair_meld_with_voices([meld], [voice], 0.0, 0.5, rng)  # only neutral voices here: the words decide
    assert (meld.keep[:, 1] == (meld.present[:, 0] > 0)).all() and not meld.keep[:, 0].any()


def test_modality_dropout_never_hides_the_deciding_modality():
    torch = __import__("pytest").importorskip("torch")
    from cmer_edge.training.trainer import _drop_modalities

    n = 4000
    present = torch.ones((1, n, 2))
    keep = np.zeros((1, n, 2), bool)
    keep[0, : n // 2, 0] = True  # first half: the voice decides
    keep[0, n // 2:, 1] = True   # second half: the words decide
    out = _drop_modalities(present, 0.5, torch.Generator().manual_seed(0), keep)
    first, second = out[0, : n // 2], out[0, n // 2:]
    assert (first[:, 0] == 1).all() and (second[:, 1] == 1).all()
    assert 0.4 < float((first[:, 1] == 0).float().mean()) < 0.6  # the other one still dropped at p
    assert 0.4 < float((second[:, 0] == 0).float().mean()) < 0.6
    same = _drop_modalities(present, 0.5, torch.Generator().manual_seed(0), np.zeros((1, n, 2), bool))
    assert torch.equal(same, _drop_modalities(present, 0.5, torch.Generator().manual_seed(0)))
