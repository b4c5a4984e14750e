"""`speech_cv` end to end on a toy RAVDESS-shaped corpus: an empty cache is filled first, then the
fold's linear baseline and CM head are scored and tabled."""

from __future__ import annotations

import json

from helpers.ci import need_module


def _toy_ravdess(folder):
    """8 actors (fold 0: test 01-04, dev 05-06, training 07-08), three emotions each, real espeak-ng audio."""
    import soundfile as sf

    from cmer_edge.testing.espeak import speak

    folder.mkdir()
    lines = ["path,label,meld_label,transcript,language,corpus,speaker,gender,sr,duration_s,transcript_note\n"]
    voices = ("en-us", "en-gb", "en-us+f3", "en-gb+m3")
    for actor in range(1, 9):
        for label, speed, pitch in (("anger", 200, 70), ("sadness", 110, 25), ("neutral", 160, 50)):
            name = f"{actor:02d}_{label}.wav"
            audio = speak("Dogs are sitting by the door", voice=voices[actor % 4], speed_wpm=speed, pitch=pitch)
            sf.write(folder / name, audio, 16000)
            lines.append(f"{name},{label},{label},,en,RAVDESS,{actor:02d},,16000,,\n")
    (folder / "manifest.csv").write_text("".join(lines))
    return folder


def test_speech_cv_fills_the_cache_then_scores_linear_and_head(tmp_path, capsys):
    need_module("torch")
    need_module("sklearn")
    from cmer_edge.training import speech_cv
    from cmer_edge.training.edge_data import clip_cache_file

    clips, cache = _toy_ravdess(tmp_path / "clips"), tmp_path / "cache"
    assert speech_cv.main(["--manifest", str(clips), "--cache", str(cache), "--folds", "0", "--seeds", "0",
                           "--edge-args", "--hidden 8 --epochs 2 --window 4", "--out", str(tmp_path / "cv")]) == 0
    assert clip_cache_file(cache, clips).is_file()
    (row,) = json.loads((tmp_path / "cv" / "summary.json").read_text())["rows"]
    assert row["plan"] == "fold0"
    for key in ("k0", "k10", "dev_k0", "dev_k10"):
        assert 0.0 <= row["linear"][key] <= 100.0
    assert len(row["head"]["k0"]) == len(row["head"]["dev"]) == 1
    assert "| fold0 |" in capsys.readouterr().out


def test_speech_cv_refuses_columns_for_the_head_in_one_line(tmp_path, capsys):
    from cmer_edge.training import speech_cv

    assert speech_cv.main(["--manifest", str(tmp_path), "--cache", str(tmp_path / "c"), "--columns", "0:88",
                           "--out", str(tmp_path / "cv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --columns is for the linear baseline only (add --linear-only)"]


def test_an_unknown_audio_feature_is_one_line(tmp_path, capsys):
    from cmer_edge.training import edge, speech_cv

    for main, extra in ((speech_cv.main, ["--cache", str(tmp_path / "cache"), "--linear-only"]), (edge.main, [])):
        assert main(["--manifest", str(tmp_path / "m.csv"), *extra, "--audio", "opensmile.eGeMAPSv02", "nope",
                     "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error: --audio: unknown audio extractor 'nope'"), err
