"""Silero VAD + endpointer on real (espeak-ng) speech: every utterance of a multi-utterance scene
is found, with the same boundaries from a 16 kHz mono file, a 44.1 kHz stereo file and an array."""

from __future__ import annotations

import numpy as np
import pytest

from cmer_edge.audio.blocks import AudioBlock
from cmer_edge.audio.convert import AudioError, load_audio
from cmer_edge.audio.segmenter import Segmenter, speech_span
from cmer_edge.audio.sources import ArraySource, FileSource
from cmer_edge.audio.vad import SileroVad
from cmer_edge.testing.scenes import write_scene

GAPS_S = [0.8, 1.3, 0.9, 1.6]


@pytest.fixture(scope="module")
def scene(speech_clips, tmp_path_factory):
    """The four session clips separated by silences (-60 dBFS noise), at 16 kHz mono and 44.1 kHz stereo."""
    clips = [(c.text, load_audio(c.path)) for c in speech_clips]
    out = tmp_path_factory.mktemp("scene")
    paths = {}
    for rate, channels in ((16_000, 1), (44_100, 2)):
        path = out / f"scene_{rate}_{channels}ch.wav"
        truth = write_scene(path, clips, GAPS_S, sample_rate_hz=rate, channels=channels, noise_dbfs=-60)
        paths[rate, channels] = path
    return paths, truth


def check_found(utts, truth, tol_s=0.05):
    assert len(utts) == len(truth), (utts, truth)
    for u, t in zip(utts, truth):
        assert u.start_s <= t.start_s + tol_s and u.end_s >= t.end_s - tol_s, (u, t)
        assert u.start_s >= t.start_s - 0.5 and u.end_s <= t.end_s + 0.8, (u, t)  # and not much more
        assert not u.truncated and len(u.audio) == round(u.duration_s * 16_000)


def test_scene_utterances_found_from_every_format(scene):
    paths, truth = scene
    mono = list(Segmenter().run(FileSource(paths[16_000, 1])))
    check_found(mono, truth)
    stereo = list(Segmenter().run(FileSource(paths[44_100, 2])))
    check_found(stereo, truth)
    samples, rate = load_audio(paths[44_100, 2], 44_100), 44_100
    from_array = list(Segmenter().run(ArraySource(samples, rate)))
    for a, b, c in zip(mono, stereo, from_array):
        assert abs(a.start_s - b.start_s) <= 0.064 and abs(a.end_s - b.end_s) <= 0.064
        assert (b.start_s, b.end_s) == (c.start_s, c.end_s)
    assert [u.index for u in mono] == list(range(len(truth)))


def test_speech_probability_separates_speech_from_silence(scene):
    paths, truth = scene
    x = load_audio(paths[16_000, 1])
    vad = SileroVad()
    probs = np.array([vad.probability(x[i:i + 512]) for i in range(0, len(x) - 511, 512)])
    t = (np.arange(len(probs)) + 0.5) * 0.032
    in_speech = np.zeros(len(probs), bool)
    near_speech = np.zeros(len(probs), bool)
    for u in truth:
        in_speech |= (t > u.start_s + 0.1) & (t < u.end_s - 0.1)
        near_speech |= (t > u.start_s - 0.3) & (t < u.end_s + 0.3)
    assert np.median(probs[in_speech]) > 0.9
    assert probs[~near_speech].max() < 0.2
    vad.reset()
    with pytest.raises(AudioError, match=r"\(500,\)"):
        vad.probability(np.zeros(500, np.float32))


def test_noise_and_silence_give_no_utterances():
    rng = np.random.default_rng(0)
    noise = (0.03 * rng.standard_normal(3 * 16_000)).astype(np.float32)
    assert list(Segmenter().run(ArraySource(noise, 16_000))) == []
    assert list(Segmenter().run(ArraySource(np.zeros(16_000, np.float32), 16_000))) == []


def test_larger_blocks_and_bad_blocks(scene):
    paths, truth = scene
    utts = list(Segmenter().run(FileSource(paths[16_000, 1], block_ms=64)))
    check_found(utts, truth)
    seg = Segmenter()
    with pytest.raises(AudioError, match="300 samples"):
        seg.feed(AudioBlock(np.zeros(300, np.float32), 0, 0.0))
    seg.feed(AudioBlock(np.zeros(512, np.float32), 5, 0.16))
    with pytest.raises(ValueError, match="block index 2 goes back"):
        seg.feed(AudioBlock(np.zeros(512, np.float32), 2, 0.064))
    with pytest.raises(AudioError, match="1024"):
        seg.feed(AudioBlock(np.zeros(1024, np.float32), 6, 0.192))


def test_speech_span_of_a_whole_recording_is_what_the_segmenter_hands_on(scene):
    """A clip with silence around and inside it: the span runs from the first utterance's start to the
    last one's end, the same samples the live segmenter cuts; silence alone gives the whole clip and
    found=False; a reused VAD gives the same span."""
    paths, truth = scene
    x = load_audio(paths[16_000, 1])
    utts = list(Segmenter().run(FileSource(paths[16_000, 1])))
    start, end, found = speech_span(x)
    assert found and (start, end) == (round(utts[0].start_s * 16_000), round(utts[-1].end_s * 16_000))
    assert truth[0].start_s - 0.5 <= start / 16_000 <= truth[0].start_s
    assert truth[-1].end_s <= end / 16_000 <= truth[-1].end_s + 0.8 and end <= len(x)
    np.testing.assert_array_equal(x[start:end][:len(utts[0].audio)], utts[0].audio)
    vad = SileroVad()
    speech_span(np.zeros(8000, np.float32), vad=vad)
    assert speech_span(x, vad=vad) == (start, end, True)
    quiet = (0.001 * np.random.default_rng(1).standard_normal(20_000)).astype(np.float32)
    assert speech_span(quiet, vad=vad) == (0, 20_000, False)
