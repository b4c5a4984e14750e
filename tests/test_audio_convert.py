"""Any input format becomes float32 mono at the pipeline rate; bad audio is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from cmer_edge.audio.convert import AudioError, load_audio, to_pipeline_format


def test_generated_clips_load_as_16k_mono(speech_clips):
    assert {c.sample_rate_hz for c in speech_clips} == {16_000, 44_100}
    assert {c.channels for c in speech_clips} == {1, 2}
    for clip in speech_clips:
        info = sf.info(str(clip.path))
        assert (info.samplerate, info.channels) == (clip.sample_rate_hz, clip.channels)
        x = load_audio(clip.path)
        assert x.dtype == np.float32 and x.ndim == 1
        assert abs(len(x) / 16_000 - info.duration) < 0.01
        assert 0.05 < np.abs(x).max() <= 1.0


def test_faster_speech_is_shorter(speech_clips):
    by_speed = sorted(speech_clips, key=lambda c: c.speed_wpm)
    words = [len(c.text.split()) for c in by_speed]
    seconds_per_word = [sf.info(str(c.path)).duration / w for c, w in zip(by_speed, words)]
    assert seconds_per_word[0] > seconds_per_word[-1]


@pytest.mark.parametrize(
    "samples, message",
    [
        (np.zeros(0, np.float32), "empty"),
        (np.array([0.1, np.nan, 0.2], np.float32), "non-finite"),
        (np.zeros((10, 2, 2), np.float32), r"shape \(10, 2, 2\)"),
        (np.zeros(10, np.int16), "dtype int16"),
    ],
)
def test_bad_arrays_are_refused(samples, message):
    with pytest.raises(AudioError, match=message):
        to_pipeline_format(samples, 16_000)


def test_missing_and_corrupt_files_are_refused(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(AudioError, match="cannot read"):
        load_audio(bad)
