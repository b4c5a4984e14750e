"""Issue 12 items 1 and 2: files and arrays lose nothing (back-pressure), only live sources drop;
speech at the very start and end of a stream is caught. All audio is espeak-ng speech generated
here (varied sentences, speeds and pitches), never a fixed clip."""

from __future__ import annotations

import json
import logging
import threading

import numpy as np
import pytest

from cmer_edge.audio.convert import load_audio
from cmer_edge.audio.sources import ArraySource, FileSource

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


SENTENCES = [
    "I can't believe you did that", "Why would you say that to me", "Okay fine let's just go home",
    "I am so tired of waiting", "That is the best news I have heard", "Please stop doing that right now",
    "We should have left an hour ago", "You never listen to anything I say", "This is absolutely wonderful",
    "I don't know what to tell you", "Could you pass me the salt please", "Nobody told me about the meeting",
]


def _speak_all(n: int, seed: int) -> list[tuple[str, np.ndarray]]:
    from cmer_edge.testing.espeak import espeak_available, speak

    if not espeak_available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    rng = np.random.default_rng(seed)
    clips, cache = [], {}
    for i in range(n):
        text = SENTENCES[i % len(SENTENCES)]
        key = (text, i % 3)
        if key not in cache:
            cache[key] = speak(text, speed_wpm=int(rng.integers(140, 200)), pitch=int(rng.integers(30, 70)))
        clips.append((text, cache[key]))
    return clips


def _scene(path, n: int, seed: int = 0):
    from cmer_edge.testing.scenes import write_scene

    rng = np.random.default_rng(seed)
    gaps = [float(g) for g in rng.uniform(0.8, 1.6, n)]
    return write_scene(path, _speak_all(n, seed), gaps, sample_rate_hz=22_050, channels=2, noise_dbfs=-60,
                       seed=seed)


@pytest.fixture(scope="module")
def scene22(tmp_path_factory):
    path = tmp_path_factory.mktemp("scene22") / "scene22.wav"
    return path, _scene(path, 22)


def _check_one_event_per_utterance(events, truth):
    """One final event per utterance, in order (a provisional one may come just before its final)."""
    for i, e in enumerate(events):
        if e.stage == "provisional":
            assert (events[i + 1].utterance_id, events[i + 1].stage) == (e.utterance_id, "final")
    events = [e for e in events if e.stage == "final"]
    assert [e.utterance_id for e in events] == list(range(len(truth))), [e.console_line() for e in events]
    for event, t in zip(events, truth):
        assert event.start_s - 0.4 <= t.start_s and t.end_s <= event.end_s + 0.4, (event.console_line(), t)


class _Delayed:
    """An audio extractor that waits for `until()` first: inference behind the audio coming in."""

    def __init__(self, extractor, until) -> None:
        self.extractor, self.until = extractor, until

    def __call__(self, audio):
        self.until()
        return self.extractor(audio)

    def __getattr__(self, name):
        return getattr(self.extractor, name)


def _slow(rec, delay_s: float):
    """Make inference slower than reading: the capture thread outruns it at once."""
    import time

    rec.stages.audio_extractor = _Delayed(rec.stages.audio_extractor, lambda: time.sleep(delay_s))


@pytest.fixture
def recognizer(tiny_bundle):
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

    def make(**kwargs):
        made.append(Recognizer(RecognizerConfig(bundle=str(tiny_bundle), threads=1, **kwargs)))
        return made[-1]

    made = []
    yield make
    for rec in made:
        rec.close()


def test_a_file_gives_one_final_event_per_utterance_with_slow_inference(recognizer, scene22):
    path, truth = scene22
    rec = recognizer(asr="none", max_queued_utterances=1)
    _slow(rec, 0.15)
    source = FileSource(path)
    events = list(rec.stream(source))
    _check_one_event_per_utterance(events, truth)
    assert rec.stats.dropped_utterances == 0 and source.stats.dropped_blocks == 0
    assert all(e.label is not None for e in events)


def test_an_array_with_external_text_by_index_loses_nothing(recognizer, scene22):
    path, truth = scene22
    rec = recognizer(asr="external", text_timeout_s=0.5, max_queued_utterances=2)
    for i, t in enumerate(truth):
        rec.supply_text(f"{t.text} ({i})", utterance_index=i)
    _slow(rec, 0.05)
    events = list(rec.stream(ArraySource(load_audio(path, target_hz=22_050), 22_050)))
    _check_one_event_per_utterance(events, truth)
    assert [e.text for e in events if e.stage == "final"] == [f"{t.text} ({i})" for i, t in enumerate(truth)]
    assert rec.stats.dropped_utterances == 0 and rec.external_text.stats.matched == len(truth)


class _LiveWrapper:
    """Any block iterable marked live: how the recognizer treats a microphone (without one).
    `exhausted` is set once every block was delivered."""

    live = True

    def __init__(self, source) -> None:
        self.source = source
        self.exhausted = threading.Event()

    def __iter__(self):
        yield from self.source
        self.exhausted.set()

    def close(self) -> None:
        self.source.close()


def test_only_a_live_source_drops_oldest_and_counts(recognizer, scene22):
    path, truth = scene22
    rec = recognizer(asr="none", max_queued_utterances=1)
    live = _LiveWrapper(FileSource(path))
    # inference stalls until all the audio has arrived: whatever the load
    rec.stages.audio_extractor = _Delayed(rec.stages.audio_extractor, lambda: live.exhausted.wait(120))
    with _Warnings() as warned:
        events = list(rec.stream(live))
    assert rec.stats.dropped_utterances == len(truth) - 2 and "dropped utterance" in warned.text
    # one was taken before the stall (normally the first); of the rest only the newest survived the queue of 1
    ids = [e.utterance_id for e in events]
    assert len(ids) == 2 and ids[0] < ids[1] == len(truth) - 1


def test_realtime_file_stands_for_a_microphone():
    x = np.zeros(16_000, np.float32)
    assert ArraySource(x, 16_000, realtime=True).live and not ArraySource(x, 16_000).live
    from cmer_edge.audio.microphone import MicrophoneSource

    assert MicrophoneSource.live


@pytest.mark.slow
def test_five_minute_file_loses_nothing(recognizer, tmp_path):
    path = tmp_path / "five_minutes.wav"
    truth = _scene(path, 100, seed=5)
    duration_s = FileSource(path).duration_s
    assert duration_s >= 300, duration_s
    rec = recognizer(asr="none", max_queued_utterances=2)
    events = list(rec.stream(FileSource(path)))
    _check_one_event_per_utterance(events, truth)
    assert rec.stats.dropped_utterances == 0


def test_cli_file_with_plain_text_lines_attributes_each_line_to_its_utterance(tiny_bundle, scene22):
    """The CLI path of item 1 + 3: a 22-utterance file, one plain line per utterance, every event
    carries its own line in order, nothing dropped, counters in the summary."""
    import subprocess
    import sys

    path, truth = scene22
    lines = "".join(f"line {i}\n" for i in range(len(truth)))
    done = subprocess.run([sys.executable, "-m", "cmer_edge.listen", "--input", str(path), "--bundle", str(tiny_bundle),
                           "--asr", "external", "--json", "--threads", "1"], input=lines.encode(), capture_output=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    events = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert [(e["utterance_id"], e["stage"]) for e in events] == [
        (i, stage) for i in range(len(truth)) for stage in ("provisional", "final")]  # --json: --events all
    events = events[1::2]
    assert [e["text"] for e in events] == [f"line {i}" for i in range(len(truth))]
    summary = json.loads(done.stderr.decode().split("summary ", 1)[1].splitlines()[0])
    assert summary["dropped_utterances"] == 0 and summary["text_matched"] == len(truth)
    assert summary["text_late"] == 0 and summary["source_dropped_blocks"] == 0


# -- item 2: the first and the last frames ---------------------------------------------------------
# single words; the fast ones (0.2-0.3 s) sit on the old 250 ms min_speech_ms boundary: "Hey" at 230 wpm
# was lost at 0.0, 0.1 and 0.2 s (the "Hey!" clip) and found at 0.6 s
WORDS = [("Hey!", 180, 60), ("Yes", 170, 40), ("No.", 200, 50), ("Stop", 160, 70),
         ("Hey", 230, 50), ("Hi", 220, 60), ("No", 230, 50), ("Yes", 260, 45)]


@pytest.fixture(scope="module")
def short_words():
    from cmer_edge.testing.scenes import speech_span
    from cmer_edge.testing.espeak import espeak_available, speak

    if not espeak_available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    out = []
    for word, speed, pitch in WORDS:
        x = speak(word, speed_wpm=speed, pitch=pitch)
        a, b = speech_span(x)
        out.append((word, x[int(a * 16000):int(np.ceil(b * 16000))]))  # speech from its first sample
    return out


@pytest.mark.parametrize("lead_s", [0.0, 0.1, 0.2])
@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_a_short_word_at_the_very_start_is_caught(short_words, lead_s, rate, tmp_path):
    import soundfile as sf

    from cmer_edge.audio.convert import resample
    from cmer_edge.audio.segmenter import Segmenter

    rng = np.random.default_rng(int(lead_s * 10))
    for word, x in short_words:
        sig = np.concatenate([np.zeros(int(lead_s * 16000), np.float32), x, np.zeros(24_000, np.float32)])
        sig = resample(sig + rng.normal(0, 0.002, len(sig)).astype(np.float32), 16_000, rate)
        path = tmp_path / f"{word}.wav"
        sf.write(path, np.stack([sig, sig], 1), rate, subtype="PCM_16")
        utts = list(Segmenter().run(FileSource(path)))
        assert len(utts) == 1, (word, lead_s, utts)
        assert utts[0].start_s <= lead_s + 0.02 and utts[0].end_s >= lead_s + len(x) / 16000 - 0.05, (word, utts)


@pytest.mark.parametrize("tail_s", [0.0, 0.05, 0.3])
def test_a_short_word_at_the_very_end_is_caught(short_words, tail_s):
    from cmer_edge.audio.segmenter import Segmenter

    for word, x in short_words:
        sig = np.concatenate([np.zeros(16_000, np.float32), x, np.zeros(int(tail_s * 16000), np.float32)])
        utts = list(Segmenter().run(ArraySource(sig, 16_000)))
        assert len(utts) == 1, (word, tail_s, utts)
        assert utts[0].start_s <= 1.0 and utts[0].end_s >= min(len(sig) / 16000, 1.0 + len(x) / 16000) - 0.04


def test_recognizer_answers_a_word_at_time_zero(recognizer, short_words):
    rec = recognizer(asr="none")
    word, x = short_words[0]
    events = list(rec.stream(ArraySource(np.concatenate([x, np.zeros(16_000, np.float32)]), 16_000)))
    assert len(events) == 1 and events[0].start_s == 0.0 and events[0].label is not None
