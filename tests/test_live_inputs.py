"""Issue 12 items 5 and 7: the Recognizer's Python API checks its inputs (shape, rate, scale, ignored
text, config ranges), turns non-finite encoder outputs into a dropped modality, stops its threads
on close(), and handles an utterance with no modality by one rule shared with both live predictors."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from cmer_edge.audio.convert import AudioError, load_audio, resample
from cmer_edge.audio.sources import ArraySource
from cmer_edge.audio.utterance import Utterance


class _Warnings(logging.Handler):
    """Collects the cmer_edge logger's warnings with a handler on that logger itself: caplog's root
    handler misses them once a CLI run in-process has set propagate=False (export/cli.py does)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.text += record.getMessage() + "\n"

    def __enter__(self):
        logging.getLogger("cmer_edge").addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger("cmer_edge").removeHandler(self)


@pytest.fixture(scope="module")
def rec_none(tiny_bundle):
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    rec = Recognizer(RecognizerConfig(bundle=str(tiny_bundle), asr="none", threads=1))
    yield rec
    rec.close()


@pytest.fixture(scope="module")
def speech(speech_clips):
    return load_audio(speech_clips[0].path)  # 16 kHz mono float32, espeak-ng


def _probs(event) -> np.ndarray:
    return np.array(list(event.probs.values()))


@pytest.mark.parametrize("bad, message", [
    ({"text_timeout_s": -1}, "text_timeout_s"),
    ({"text_timeout_s": float("nan")}, "text_timeout_s"),
    ({"threads": 0}, "threads"),
    ({"threads": 512}, "threads"),
    ({"window_utts": 100_000}, "window_utts"),
    ({"window_utts": 0}, "window_utts"),
    ({"new_dialogue_after_s": 0}, "new_dialogue_after_s"),
])
def test_config_ranges_are_refused(bad, message):
    from cmer_edge.runtime.recognizer import RecognizerConfig

    with pytest.raises(ValueError, match=message):
        RecognizerConfig(**bad)


def test_channels_first_stereo_is_mixed_down_like_mono(rec_none, speech):
    mono = Utterance(speech, 0.0, len(speech) / 16000, 0)
    stereo_cf = Utterance(np.stack([speech, speech]), 0.0, len(speech) / 16000, 0)  # [2, n]
    rec_none.reset()
    a = rec_none.process(mono)
    rec_none.reset()
    b = rec_none.process(stereo_cf)
    assert a.label is not None and b.label == a.label
    np.testing.assert_allclose(_probs(a), _probs(b), atol=1e-5)
    assert any("channels-first" in n for n in b.notes) and not any("channels-first" in n for n in a.notes)


def test_channels_first_array_source_gives_the_same_blocks(speech):
    stereo = np.stack([speech, 0.5 * speech])
    a = np.concatenate([b.samples for b in ArraySource(stereo.T.copy(), 16000)])
    src = ArraySource(stereo, 16000)
    b = np.concatenate([b.samples for b in src])
    np.testing.assert_array_equal(a, b)
    assert any("channels-first" in n for n in src.notes)


def test_utterance_rate_is_honoured(rec_none, speech):
    at_22k = resample(speech, 16000, 22050)
    rec_none.reset()
    ref = rec_none.process(Utterance(speech, 0.0, len(speech) / 16000, 0))
    rec_none.reset()
    ev = rec_none.process(Utterance(at_22k, 0.0, len(speech) / 16000, 0, sample_rate_hz=22050))
    assert any("resampled 22050 -> 16000" in n for n in ev.notes)
    # the same sound after a round trip through 22.05 kHz: the same emotion, close probabilities
    assert ev.label == ref.label
    np.testing.assert_allclose(_probs(ev), _probs(ref), atol=0.05)


def test_int16_scaled_float_audio_is_rescaled_with_a_warning(rec_none, speech):
    rec_none.reset()
    ref = rec_none.process(Utterance(speech, 0.0, len(speech) / 16000, 0))
    rec_none.reset()
    with _Warnings() as warned:
        ev = rec_none.process(Utterance(speech * 32767.0, 0.0, len(speech) / 16000, 0))
    assert any("int16 PCM" in n for n in ev.notes) and "int16 PCM" in warned.text
    np.testing.assert_allclose(_probs(ev), _probs(ref), atol=1e-3)


@pytest.mark.parametrize("audio, message", [
    (np.zeros(0, np.float32), "empty"),
    (np.array([0.0, np.nan, 0.1] * 1000, np.float32), "non-finite"),
    (np.zeros((3, 4, 5), np.float32), "shape"),
    (np.zeros(1000, np.int16), "dtype int16"),
])
def test_bad_utterance_audio_is_refused_with_a_message(rec_none, audio, message):
    with pytest.raises(AudioError, match=message):
        rec_none.process(Utterance(audio, 0.0, 1.0, 0))


def test_text_with_asr_none_is_noted_not_silently_dropped(rec_none, speech):
    ev = rec_none.process(Utterance(speech, 0.0, 1.0, 0), text="this text cannot be used")
    assert ev.text is None and ev.modalities == ("audio",)
    assert any("text ignored" in n and "asr='none'" in n for n in ev.notes)
    with pytest.raises(TypeError, match="text must be a str"):
        rec_none.process(Utterance(speech, 0.0, 1.0, 0), text=123)


def test_non_finite_encoder_output_drops_that_modality_and_the_loop_goes_on(tiny_bundle, speech, monkeypatch):
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    rec = Recognizer(RecognizerConfig(bundle=str(tiny_bundle), asr="external", text_timeout_s=0, threads=1))
    real_encoder = rec.stages.text_encoder
    rec.stages.text_encoder = lambda text: np.full(rec.bundle.head_config.text_dim, np.nan, np.float32)
    try:
        ev = rec.process(Utterance(speech, 0.0, 1.0, 0), text="hello there")
        assert ev.modalities == ("audio",) and ev.label is not None
        assert any("text features non-finite" in n for n in ev.notes)
        real_audio = rec.stages.audio_extractor
        rec.stages.audio_extractor = lambda audio: np.full(rec.bundle.head_config.audio_dim, np.inf, np.float32)
        ev = rec.process(Utterance(speech, 2.0, 3.0, 1), text="and again")
        assert ev.modalities == () and ev.label is None and ev.probs == {}
        assert rec.stats.nonfinite_features == 3 and rec.stats.blank_utterances == 1
        rec.stages.audio_extractor, rec.stages.text_encoder = real_audio, real_encoder
        ev = rec.process(Utterance(speech, 4.0, 5.0, 2), text="fine now")
        assert ev.modalities == ("audio", "text") and ev.label is not None and rec.session.pushed == 3
    finally:
        rec.close()


def _capture_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cmer_edge-capture" and t.is_alive()]


def test_close_ends_the_capture_thread_of_an_abandoned_stream(tiny_bundle, dialogue_wav):
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    audio = load_audio(dialogue_wav[0])
    rec = Recognizer(RecognizerConfig(bundle=str(tiny_bundle), asr="none", threads=1, max_queued_utterances=1))
    events = rec.stream(ArraySource(np.concatenate([audio] * 4), 16000))
    first = next(events)  # the capture thread runs on, then waits on the full hand-off
    assert first.utterance_id == 0 and _capture_threads()
    t0 = time.monotonic()
    rec.close()
    assert not _capture_threads() and time.monotonic() - t0 < 5
    rec.close()  # idempotent
    del events


def test_dropping_a_stream_generator_stops_its_thread(tiny_bundle, dialogue_wav):
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    audio = load_audio(dialogue_wav[0])
    rec = Recognizer(RecognizerConfig(bundle=str(tiny_bundle), asr="none", threads=1, max_queued_utterances=1))
    try:
        source = ArraySource(np.concatenate([audio] * 4), 16000)
        events = rec.stream(source)
        next(events)
        del events  # abandoned mid-stream: its finally stops the thread and closes the source
        deadline = time.monotonic() + 5
        while _capture_threads() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _capture_threads() and source.closed
    finally:
        rec.close()


# -- item 7: an utterance with no modality -------------------------------------------------------
def test_no_modality_rule_is_the_same_in_native_and_pytorch_live_predictors(tiny_bundle):
    pytest.importorskip("torch")
    from cmer_edge.bundle import load_bundle
    from cmer_edge.training.dialogues import Dialogue
    from cmer_edge.training.predictors import make_predictor

    bundle = load_bundle(tiny_bundle)
    cfg = bundle.head_config
    rng = np.random.default_rng(12)
    dialogues = []
    for t, blanks in ((7, [2]), (5, [0, 4]), (6, [1, 2])):
        present = np.ones((t, 2), np.float32)
        present[blanks] = 0.0  # no audio and no text
        present[min(t - 1, blanks[-1] + 1), 0] = 0.0  # and one text-only turn
        dialogues.append(Dialogue(f"d{t}", list(range(t)), rng.normal(0, 10, (t, cfg.audio_dim)).astype(np.float32),
                                  rng.normal(0, 1, (t, cfg.text_dim)).astype(np.float32), present,
                                  np.zeros(t, np.int64)))
    for window in (2, 4):
        native = make_predictor(bundle, "native")(dialogues, "live", window)
        torch_ = make_predictor(bundle, "torch")(dialogues, "live", window)
        for a, b in zip(native, torch_):
            np.testing.assert_allclose(a, b, atol=2e-5)
        # a blank turn is context: the turn after it differs from a dialogue without it
        without = [Dialogue("x", [0, 1], d.x_a[[1, 3]], d.x_t[[1, 3]], d.present[[1, 3]], np.zeros(2, np.int64))
                   for d in dialogues[:1]]
        assert not np.allclose(make_predictor(bundle, "native")(without, "live", window)[0][1], native[0][3])


def test_recognizer_keeps_a_blank_turn_in_its_context(tiny_bundle, speech):
    from cmer_edge.runtime.blank import blank_inputs
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    rec = Recognizer(RecognizerConfig(bundle=str(tiny_bundle), asr="none", threads=1))
    try:
        utt = Utterance(speech, 0.0, 1.0, 0)
        rec.process(utt)
        rec.stages.audio_extractor, real = (lambda audio: None), rec.stages.audio_extractor
        blank = rec.process(Utterance(speech, 1.5, 2.5, 1))
        rec.stages.audio_extractor = real
        after = rec.process(Utterance(speech, 3.0, 4.0, 2))
        assert blank.label is None and any("blank turn" in n for n in blank.notes)
        assert rec.session.pushed == 3 and after.label is not None
        # the same as pushing the blank explicitly into a fresh session
        session = rec.head.session(rec.session.window_utts)
        x_a = rec.stages.audio_extractor(speech)
        session.push(x_a, None)
        session.push(*blank_inputs(rec.bundle.head_config, rec.bundle.head_tensors()))
        np.testing.assert_allclose(session.push(x_a, None), _probs(after), atol=1e-5)
    finally:
        rec.close()
