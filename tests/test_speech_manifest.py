"""Labelled speech manifests (RAVDESS / SAVEE / EmoDB format): loading, bad rows, evaluate --manifest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cmer_edge.data.speech_manifest import ManifestError, load_manifest, load_manifests
from cmer_edge.model.config import EMOTIONS

HEADER = "path,label,meld_label,transcript,language,corpus,speaker,gender,sr,duration_s,transcript_note\n"


def _write_clips(folder, rows, rate=16000):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = [HEADER]
    for name, label, meld, text, speaker in rows:
        sf.write(folder / name, (0.05 * rng.standard_normal(rate)).astype(np.float32), rate)
        lines.append(f"{name},{label},{meld},{text},en,TEST,{speaker},male,{rate},1.0,\n")
    (folder / "manifest.csv").write_text("".join(lines))
    return folder / "manifest.csv"


ROWS = [("a.flac", "angry", "anger", "Kids are talking by the door", "01"),
        ("b.flac", "calm", "neutral", "", "02")]


def test_loads_labels_speakers_and_empty_transcripts(tmp_path):
    m = load_manifest(_write_clips(tmp_path / "c", ROWS))
    assert [c.meld_label for c in m.clips] == [EMOTIONS.index("anger"), EMOTIONS.index("neutral")]
    assert [c.transcript for c in m.clips] == ["Kids are talking by the door", ""]
    assert m.clips[0].speaker_key == "TEST/01" and m.clips[0].sample_rate_hz == 16000
    assert "2 clips (1 with transcripts)" in m.summary()


def test_emodb_style_manifest_is_mapped_onto_meld(tmp_path):
    folder = tmp_path / "emo"
    folder.mkdir()
    sf.write(folder / "x.wav", np.zeros(22050, np.float32), 22050)
    (folder / "manifest.csv").write_text("path,label,transcript,language,corpus,speaker,sr,duration_s,transcript_note\n"
                                         "x.wav,boredom,,de,EmoDB,03,22050,1.0,\n")
    clip = load_manifest(folder).clips[0]
    assert clip.meld_label == EMOTIONS.index("neutral") and clip.sample_rate_hz == 22050


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.replace("angry,anger", "angry,rage"), r"manifest.csv:2: meld_label 'rage'"),
    (lambda t: t.replace("a.flac", "missing.flac"), r"manifest.csv:2: audio file not found"),
    (lambda t: t.replace(",16000,1.0", ",44100,1.0", 1), r"manifest.csv:2: a.flac is 16000 Hz but the manifest says sr=44100"),
    (lambda t: t.replace("speaker,", "who,"), r"missing column\(s\) \['speaker'\]"),
    (lambda t: t.replace("calm,neutral", "whatever,"), r"manifest.csv:3: label 'whatever' has no MELD mapping"),
])
def test_bad_rows_name_file_and_line(tmp_path, mutate, message):
    path = _write_clips(tmp_path / "c", ROWS)
    path.write_text(mutate(path.read_text()))
    with pytest.raises(ManifestError, match=message):
        load_manifest(path)


def test_unreadable_audio_is_an_error_or_a_counted_skip(tmp_path):
    path = _write_clips(tmp_path / "c", ROWS)
    (tmp_path / "c" / "b.flac").write_bytes(b"not audio at all")
    with pytest.raises(ManifestError, match=r"manifest.csv:3: unreadable audio"):
        load_manifest(path)
    m = load_manifest(path, skip_bad=True)
    assert len(m.clips) == 1 and m.skipped[0][0] == 3 and "unreadable" in m.skipped[0][1]


def test_header_only_manifest_is_a_clear_error(tmp_path):
    (tmp_path / "manifest.csv").write_text(HEADER)
    with pytest.raises(ManifestError, match="no usable rows"):
        load_manifest(tmp_path)


def test_several_manifests_concatenate(tmp_path):
    a = _write_clips(tmp_path / "a", ROWS[:1])
    b = _write_clips(tmp_path / "b", ROWS[1:])
    assert [c.path.name for c in load_manifests([a, b]).clips] == ["a.flac", "b.flac"]


def test_shared_corpora_load(shared_dir):
    """The real manifests: RAVDESS actors 01-20, SAVEE, EmoDB, all mapped onto MELD's classes."""
    m = load_manifests([shared_dir / "data" / c for c in ("ravdess", "savee", "emodb")], check_audio=False)
    corpora = {c.corpus for c in m.clips}
    assert len(m.clips) == 1200 + 360 + 535 and corpora == {"RAVDESS", "SAVEE", "EmoDB"}
    assert set(np.bincount([c.meld_label for c in m.clips], minlength=7).nonzero()[0]) == set(range(7))


def test_evaluate_manifest_through_the_runtime(tmp_path, speech_clips, capsys):
    """evaluate --manifest on generated speech: every clip scored through the live runtime, counts reported;
    a clip in which the VAD finds no speech is scored on the whole clip and counted."""
    from cmer_edge.audio.convert import load_audio
    from cmer_edge.evaluate import main

    folder = tmp_path / "gen"
    folder.mkdir()
    lines = [HEADER]
    for i, clip in enumerate(speech_clips[:3]):
        sf.write(folder / f"g{i}.wav", load_audio(clip.path), 16000)
        text = clip.text.replace(",", "") if i != 1 else ""  # one audio-only clip
        lines.append(f"g{i}.wav,{EMOTIONS[i]},{EMOTIONS[i]},{text},en,GEN,s{i % 2},male,16000,,\n")
    hiss = 0.001 * np.random.default_rng(0).standard_normal(24_000)
    sf.write(folder / "g3.wav", hiss.astype(np.float32), 16000)
    lines.append(f"g3.wav,{EMOTIONS[3]},{EMOTIONS[3]},,en,GEN,s1,male,16000,,\n")
    (folder / "manifest.csv").write_text("".join(lines))
    predictions = tmp_path / "predictions.csv"
    assert main(["--manifest", str(folder), "--json", "--predictions", str(predictions)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"listed": 4, "selected": 4, "scored": 4, "skipped_rows": 0, "unscored": 0,
                                "whole_clip_no_speech_found": 1}
    from cmer_edge.bundle import default_bundle_path, load_bundle

    assert report["voice_weight"] == load_bundle(default_bundle_path()).manifest.runtime.voice_weight > 0
    assert sum(sum(row) for row in report["confusion"]) == 4
    rows = list(csv.DictReader(open(predictions)))
    assert [Path(r["path"]).name for r in rows] == ["g0.wav", "g1.wav", "g2.wav", "g3.wav"] and rows[1]["text"] == ""
    probs = np.array([[float(r[f"p_{name}"]) for name in EMOTIONS] for r in rows])
    assert np.allclose(probs.sum(1), 1.0, atol=1e-3)
    assert [EMOTIONS[k] for k in probs.argmax(1)] == [r["pred"] for r in rows]
    assert main(["--manifest", str(folder), "--warmup-clips", "1", "--modalities", "audio"]) == 0
    out = capsys.readouterr().out
    assert "scored 4 of 4 clips" in out and "1 scored on the whole clip" in out and "per-class recall" in out
    assert main(["--manifest", str(folder), "--voice-weight", "0", "--text-weight", "0.5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["voice_weight"], report["text_weight"]) == (0.0, 0.5)
