"""MELD CSV loading: the real shared CSVs, both layouts, text normalisation, and bad input by name."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from helpers.ci import need

from cmer_edge.data.meld import (
    CSV_COLUMNS, MeldFormatError, MeldLabelError, MeldLayoutError, find_layout, load_meld,
    load_meld_split, parse_time_s, read_meld_csv,
)
from cmer_edge.data.meld_stats import EXPECTED_COUNTS, check_official_counts, main as stats_main, meld_stats
from cmer_edge.data.text_norm import _BYTE_TO_CHAR, fix_mojibake, normalize_text
from cmer_edge.model.config import EMOTIONS


@pytest.fixture(scope="module")
def meld_csv_dir(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "meld"
    need((path / "train_sent_emo.csv").is_file(), f"MELD CSVs not found in {path}")
    return path


@pytest.fixture(scope="module")
def meld(meld_csv_dir: Path):
    return load_meld(meld_csv_dir)


def test_shared_csvs_have_the_official_sizes(meld):
    stats = check_official_counts(meld)
    assert {s: (st.utterances, st.dialogues) for s, st in stats.items()} == EXPECTED_COUNTS
    train = stats["train"]
    assert train.emotion_counts == {"neutral": 4710, "surprise": 1205, "fear": 268, "sadness": 683,
                                    "joy": 1743, "disgust": 271, "anger": 1109}
    assert train.sentiment_counts == {"negative": 2945, "neutral": 4710, "positive": 2334}
    assert (train.speakers, stats["dev"].speakers, stats["test"].speakers) == (260, 47, 100)
    assert stats["test"].over_30_s == 2  # MELD's overlong rows exist: the audio cap is needed


def test_dialogues_are_ordered_sequences_with_speakers(meld):
    gaps = 0
    for split, dialogues in meld.items():
        assert [d.dialogue_id for d in dialogues] == sorted(d.dialogue_id for d in dialogues)
        for d in dialogues:
            ids = [u.utterance_id for u in d.utterances]
            assert ids == sorted(set(ids))
            gaps += ids != list(range(len(ids)))
            assert all(u.split == split and u.dialogue_id == d.dialogue_id for u in d.utterances)
            assert set(d.speakers) == {u.speaker for u in d.utterances}
            assert all(u.audio_path is None for u in d.utterances)  # no clips in the flat layout
    assert gaps == 76  # MELD dropped some utterances; their ids are kept, not renumbered
    first = meld["dev"][0]
    assert first.speakers == ("Phoebe", "Monica")
    assert [u.emotion for u in first.utterances] == ["sadness", "surprise"]
    assert first.utterances[0].text == "Oh my God, he's lost it. He's totally lost it."
    assert first.utterances[0].start_s == pytest.approx(20 * 60 + 57.256)
    assert first.utterances[0].end_s == pytest.approx(21 * 60 + 0.049)


def test_normalised_text_is_ascii_punctuated_and_raw_text_is_kept_on_request(meld_csv_dir, meld):
    texts = [u.text for d in meld["train"] for u in d.utterances]
    assert not any(c in t for t in texts for c in "’‘“”…—\u00a0") and not any("  " in t for t in texts)
    raw = load_meld_split(meld_csv_dir, "train", normalize=False)
    raw_texts = [u.text for d in raw for u in d.utterances]
    assert sum("’" in t for t in raw_texts) == 2598
    assert [normalize_text(t) for t in raw_texts] == texts


def test_mojibake_in_every_known_form_is_repaired():
    good = "You must’ve had your hands full… “Olé” — fine"

    def cp1252_mojibake(s: str) -> str:  # UTF-8 bytes shown through cp1252
        return "".join(_BYTE_TO_CHAR[b] if b >= 0x80 else chr(b) for b in s.encode("utf-8"))

    for bad in (cp1252_mojibake(good), cp1252_mojibake(cp1252_mojibake(good)),
                good.encode("utf-8").decode("latin-1"), good.replace("’", "Â’"), good.replace("’", "\x92")):
        assert fix_mojibake(bad) == good, bad
    assert normalize_text("You mustÂ’ve  had\u00a0it…") == "You must've had it..."
    assert fix_mojibake("OLÓ… Ça va") == "OLÓ… Ça va"  # real accented text is left alone
    with pytest.raises(TypeError, match="int"):
        normalize_text(3)


def _write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    return path


ROWS = [
    ["2", "Second turn, said second.", "Ross", "anger", "negative", "7", "1", "1", "2", "00:00:03,000", "00:00:04,500"],
    ["1", "First turn’s text.", "Rachel", "Joy", "positive", "7", "0", "1", "2", "0:00:01,000", "0:00:02,250"],
    ["3", "Another dialogue.", "Monica", "neutral", "neutral", "3", "0", "1", "2", "", ""],
]


@pytest.mark.parametrize("csv_at, clips_at", [
    ("MELD.Raw", "MELD.Raw"),            # root holds MELD.Raw/ (CSVs and clip folders inside)
    ("", ""),                            # root is MELD.Raw itself
    ("", "{split}"),                     # clip folders under train/ dev/ test/
    ("{clipdir}", ""),                   # CSV inside its clip folder
])
def test_meld_raw_layouts_are_found(tmp_path, csv_at, clips_at):
    clipdir = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
    for split in ("train", "dev"):
        clips, csvs = (at.format(split=split, clipdir=clipdir[split]) for at in (clips_at, csv_at))
        (tmp_path / clips / clipdir[split]).mkdir(parents=True, exist_ok=True)
        _write_csv(tmp_path / csvs / f"{split}_sent_emo.csv", ROWS)
    layout = find_layout(tmp_path)
    assert layout.csv_files["test"] is None and layout.clip_dirs["test"] is None
    dialogues = load_meld_split(tmp_path, "dev")
    assert [d.dialogue_id for d in dialogues] == [3, 7]
    turns = dialogues[1].utterances
    assert [u.utterance_id for u in turns] == [0, 1] and dialogues[1].speakers == ("Rachel", "Ross")
    assert turns[0].emotion == "joy" and turns[0].text == "First turn's text."
    assert turns[1].audio_path == layout.clip_dirs["dev"] / "dia7_utt1.mp4"
    assert dialogues[0].utterances[0].start_s is None
    with pytest.raises(MeldLayoutError, match="test_sent_emo.csv"):
        load_meld_split(tmp_path, "test")


def test_cp1252_csv_loads_with_a_warning(tmp_path, caplog):
    path = _write_csv(tmp_path / "train_sent_emo.csv", ROWS, encoding="cp1252")
    with caplog.at_level(logging.WARNING, logger="cmer_edge"):
        dialogues = read_meld_csv(path, "train")
    assert "not UTF-8" in caplog.text
    assert dialogues[1].utterances[0].text == "First turn's text."


def test_stats_cli_checks_sizes(meld_csv_dir, tmp_path, capsys):
    assert stats_main([str(meld_csv_dir), "--check"]) == 0
    assert "9989" in capsys.readouterr().out
    _write_csv(tmp_path / "train_sent_emo.csv", ROWS)
    assert stats_main([str(tmp_path), "--splits", "train", "--check"]) == 1
    assert "expected 9989 in 1038" in capsys.readouterr().out


def test_bad_roots_and_splits_are_refused_by_name(tmp_path, meld_csv_dir):
    with pytest.raises(MeldLayoutError, match="nowhere"):
        load_meld_split(tmp_path / "nowhere", "train")
    with pytest.raises(MeldLayoutError, match="not a MELD root"):
        load_meld_split(tmp_path, "train")
    with pytest.raises(ValueError, match="'val'"):
        load_meld_split(meld_csv_dir, "val")
    assert issubclass(MeldLayoutError, ValueError)


@pytest.mark.parametrize("column, value, error, message, line", [
    ("Emotion", "happy", MeldLabelError, r"unknown emotion 'happy'.*neutral", 2),
    ("Sentiment", "mixed", MeldLabelError, "unknown sentiment 'mixed'", 2),
    ("Dialogue_ID", "seven", MeldFormatError, "'Dialogue_ID' must be an integer, got 'seven'", 2),
    ("StartTime", "3 minutes", MeldFormatError, "time '3 minutes'", 2),
    ("Utterance_ID", "0", MeldFormatError, "duplicate Dialogue_ID 7 Utterance_ID 0", 3),
])
def test_bad_rows_are_refused_with_file_and_line(tmp_path, column, value, error, message, line):
    rows = [list(r) for r in ROWS]
    rows[0][CSV_COLUMNS.index(column)] = value
    path = _write_csv(tmp_path / "dev_sent_emo.csv", rows)
    with pytest.raises(error, match=message) as info:
        read_meld_csv(path, "dev")
    assert f"{path}:{line}:" in str(info.value)


def test_missing_column_and_empty_file_are_refused(tmp_path):
    path = tmp_path / "train_sent_emo.csv"
    path.write_text("Sr No.,Utterance,Speaker\n1,Hi,Joey\n", encoding="utf-8")
    with pytest.raises(MeldFormatError, match="missing column"):
        read_meld_csv(path, "train")
    path.write_text("", encoding="utf-8")
    with pytest.raises(MeldFormatError, match="empty file"):
        read_meld_csv(path, "train")


def test_time_parsing():
    assert parse_time_s("00:20:57,256") == pytest.approx(1257.256)
    assert parse_time_s("0:10:44,7") == pytest.approx(644.7)
    assert parse_time_s(" ") is None
    with pytest.raises(ValueError, match="'12:xx'"):
        parse_time_s("12:xx")


def test_stats_list_every_label(tmp_path):
    stats = meld_stats(read_meld_csv(_write_csv(tmp_path / "t.csv", ROWS), "test"))
    assert list(stats.emotion_counts) == list(EMOTIONS)
    assert (stats.utterances, stats.dialogues, stats.max_dialogue_utts, stats.with_times) == (3, 2, 2, 2)
