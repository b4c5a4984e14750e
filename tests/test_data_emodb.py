"""EmoDB: the shared manifest, speaker-independent gender-balanced folds, and the MELD label map."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from helpers.ci import need

from cmer_edge.data.emodb import (
    EMODB_LABELS, SPEAKER_GENDER, EmodbError, EmodbUtterance, emodb_folds, load_emodb, speakers_of,
    split_fold, to_meld_label,
)
from cmer_edge.model.config import EMOTIONS


@pytest.fixture(scope="module")
def emodb_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "emodb"
    need((path / "manifest.csv").is_file(), f"EmoDB manifest not found in {path}")
    return path


@pytest.fixture(scope="module")
def emodb(emodb_dir):
    return load_emodb(emodb_dir)


def test_manifest_loads_with_labels_and_speakers(emodb):
    assert len(emodb) == 535
    assert Counter(u.label for u in emodb) == {"anger": 127, "boredom": 81, "neutral": 79, "happiness": 71,
                                               "fear": 69, "sadness": 62, "disgust": 46}
    assert speakers_of(emodb) == ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")
    first = emodb[0]
    assert first.path.is_absolute() and first.path.is_file() and first.path.name == "03a01Fa.wav"
    assert (first.label, first.label_index, first.speaker, first.gender) == ("happiness", 3, "03", "m")
    assert (first.sample_rate_hz, first.duration_s, first.language, first.text_id) == (22050, 2.0, "de", "a01")
    assert first.transcript


def test_audio_of_an_utterance_loads_at_the_pipeline_rate(emodb):
    from cmer_edge.audio.convert import load_audio

    x = load_audio(emodb[0].path)
    assert x.dtype == np.float32 and len(x) == 32_000 and np.abs(x).max() > 0.05


def test_folds_are_speaker_disjoint_gender_balanced_and_cover_everyone(emodb):
    folds = emodb_folds(emodb)
    assert len(folds) == 5
    tested = [s for f in folds for s in f.test_speakers]
    assert sorted(tested) == list(speakers_of(emodb))  # every speaker tested exactly once
    sizes = []
    for f in folds:
        assert sorted(SPEAKER_GENDER[s] for s in f.test_speakers) == ["f", "m"]
        assert not set(f.train_speakers) & set(f.test_speakers) and f.dev_speakers == ()
        assert set(f.train_speakers) | set(f.test_speakers) == set(SPEAKER_GENDER)
        train, dev, test = split_fold(emodb, f)
        assert len(train) + len(test) == 535 and dev == ()
        assert {u.speaker for u in test} == set(f.test_speakers)
        sizes.append(len(test))
    assert sizes == [99, 113, 110, 107, 106]  # the balanced pairing; sorted-id pairs give 81..127


def test_folds_with_dev_hold_out_a_second_pair(emodb):
    for f in emodb_folds(speakers_of(emodb), with_dev=True):
        assert len(f.dev_speakers) == 2 and len(f.train_speakers) == 6
        assert not set(f.dev_speakers) & set(f.test_speakers)
        train, dev, test = split_fold(emodb, f)
        assert len(train) + len(dev) + len(test) == 535


def test_other_speakers_get_round_robin_folds():
    folds = emodb_folds(["a", "b", "c", "d", "e", "f", "g"], n_folds=3)
    assert [f.test_speakers for f in folds] == [("a", "d", "g"), ("b", "e"), ("c", "f")]
    with pytest.raises(ValueError, match="n_folds must be in \\[2, 7\\].*got 8"):
        emodb_folds(["a", "b", "c", "d", "e", "f", "g"], n_folds=8)


def test_label_map_to_meld():
    expected = {"anger": "anger", "boredom": "neutral", "neutral": "neutral", "happiness": "joy",
                "fear": "fear", "sadness": "sadness", "disgust": "disgust"}
    assert {label: EMOTIONS[to_meld_label(label)] for label in EMODB_LABELS} == expected
    u = EmodbUtterance(Path("x.wav"), "boredom", "03", "")
    assert u.meld_label == EMOTIONS.index("neutral")
    with pytest.raises(EmodbError, match="'joy'"):
        to_meld_label("joy")


def _copy_manifest(emodb_dir: Path, tmp_path: Path, edit) -> Path:
    lines = (emodb_dir / "manifest.csv").read_text(encoding="utf-8").splitlines()
    lines = [lines[0], edit(lines[1]), *lines[2:4]]
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copytree(emodb_dir / "wav", tmp_path / "wav", ignore=lambda d, names: [
        n for n in names if n not in ("03a01Fa.wav", "03a01Nc.wav", "03a01Wa.wav")])
    return tmp_path


@pytest.mark.parametrize("edit, message", [
    (lambda row: row.replace(",happiness,", ",joyful,"), "unknown EmoDB label 'joyful'"),
    (lambda row: row.replace(",happiness,", ",anger,"), "contradicts the file name '03a01Fa.wav'"),
    (lambda row: row.replace("03a01Fa.wav", "03a99Fa.wav"), "1 EmoDB audio file.*03a99Fa.wav"),
    (lambda row: row.replace(",22050,", ",fast,"), "bad sr 'fast'"),
])
def test_bad_manifests_are_refused_by_name(emodb_dir, tmp_path, edit, message):
    root = _copy_manifest(emodb_dir, tmp_path, edit)
    with pytest.raises(EmodbError, match=message):
        load_emodb(root)


def test_good_copy_loads_and_missing_manifest_is_refused(emodb_dir, tmp_path):
    assert len(load_emodb(_copy_manifest(emodb_dir, tmp_path / "ok", lambda r: r))) == 3
    with pytest.raises(EmodbError, match="manifest not found"):
        load_emodb(tmp_path / "nothing")
    (tmp_path / "bad.csv").write_text("file,emotion\nx.wav,anger\n", encoding="utf-8")
    with pytest.raises(EmodbError, match=r"missing column\(s\) \['path', 'label', 'speaker'\]"):
        load_emodb(tmp_path / "bad.csv")
