"""External text: host-supplied transcripts matched to utterances by index, time or order; late
and empty text fall back to audio only; JSON/plain lines read from a real pipe; language checks."""

from __future__ import annotations

import csv
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from helpers.ci import need

from cmer_edge.asr import check_text, modalities_for
from cmer_edge.asr.external import ExternalText, parse_text_line
from cmer_edge.audio.utterance import Utterance


def utt(index: int, start_s: float, end_s: float) -> Utterance:
    return Utterance(np.zeros(int((end_s - start_s) * 16_000), np.float32), start_s, end_s, index)


def test_match_by_index_by_time_and_by_order():
    ext = ExternalText()
    ext.supply("third one", utterance_index=2)
    ext.supply("by time", start_s=3.1, end_s=4.9)
    ext.supply("plain first")
    ext.supply("plain second")
    t = ext.wait(utt(0, 0.5, 1.5), timeout_s=0)
    assert t.text == "plain first" and t.source == "external" and t.usable
    t = ext.wait(utt(1, 3.0, 5.0), timeout_s=0)  # the timed entry beats the older plain one
    assert t.text == "by time"
    assert ext.wait(utt(2, 6.0, 7.0), timeout_s=0).text == "third one"
    assert ext.wait(utt(3, 8.0, 9.0), timeout_s=0).text == "plain second"
    assert ext.pending == 0 and ext.stats.matched == 4


def test_partial_overlap_needs_half_of_the_shorter_span():
    ext = ExternalText()
    ext.supply("mostly outside", start_s=4.6, end_s=6.0)  # overlaps [3, 5) by 0.4 of its 1.4 s
    assert ext.wait(utt(0, 3.0, 5.0), timeout_s=0) is None
    ext.supply("mostly inside", start_s=4.0, end_s=5.4)
    assert ext.wait(utt(1, 3.5, 5.0), timeout_s=0).text == "mostly inside"


def test_late_text_falls_back_then_is_discarded_as_stale():
    ext = ExternalText()
    t0 = time.monotonic()
    assert ext.wait(utt(4, 10.0, 11.0), timeout_s=0.2) is None
    assert 0.2 <= time.monotonic() - t0 < 0.5 and ext.stats.late == 1
    ext.supply("too late for 4", utterance_index=4)
    ext.supply("too late by time", start_s=10.0, end_s=11.0)
    ext.supply("for 5", utterance_index=5)
    assert ext.wait(utt(5, 12.0, 13.0), timeout_s=0).text == "for 5"
    assert ext.stats.stale == 2 and ext.pending == 0


def test_text_supplied_while_waiting_arrives_promptly():
    ext = ExternalText()
    threading.Timer(0.1, lambda: ext.supply("hello there", utterance_index=0)).start()
    t0 = time.monotonic()
    t = ext.wait(utt(0, 0.0, 1.0), timeout_s=5.0)
    assert t.text == "hello there" and time.monotonic() - t0 < 1.0 and t.latency_ms >= 50


def test_empty_and_non_english_text():
    ext = ExternalText()
    ext.supply("   ", utterance_index=0)
    assert ext.wait(utt(0, 0, 1), timeout_s=0) is None and ext.stats.empty == 1
    ext.supply("Ich habe das wirklich nicht gewusst", utterance_index=1)
    t = ext.wait(utt(1, 1, 2), timeout_s=0)
    assert t.issues == ("non_english:de",) and t.language == "de" and not t.usable
    assert modalities_for(t) == ("audio",) and ext.stats.non_english == 1


def test_bounded_pending_store():
    ext = ExternalText(max_pending=3)
    for i in range(5):
        ext.supply(f"line {i}")
    assert ext.pending == 3 and ext.stats.dropped == 2
    assert ext.wait(utt(0, 0, 1), timeout_s=0).text == "line 2"


@pytest.mark.parametrize("kwargs, message", [
    (dict(text=3), "text must be a string"),
    (dict(text="x", utterance_index=-1), "utterance_index.*-1"),
    (dict(text="x", start_s=1.0), "both start_s and end_s"),
    (dict(text="x", start_s=2.0, end_s=1.0), "start_s=2.0, end_s=1.0"),
    (dict(text="x", start_s=float("nan"), end_s=1.0), "nan"),
])
def test_supply_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExternalText().supply(**kwargs)


def test_parse_lines():
    e = parse_text_line('{"text": "hi there", "start_s": 1.5, "end_s": 2.5}\n')
    assert (e.text, e.start_s, e.end_s, e.utterance_index) == ("hi there", 1.5, 2.5, None)
    assert parse_text_line('{"text": "x", "utterance_index": 7, "language": "en"}').utterance_index == 7
    assert parse_text_line("  just words \n").text == "just words"
    assert parse_text_line("\n").text == ""
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_text_line('{"text": "unterminated')
    with pytest.raises(ValueError, match="\"text\" field"):
        parse_text_line('{"start_s": 1, "end_s": 2}')
    with pytest.raises(ValueError, match="unknown fields \\['speaker'\\]"):
        parse_text_line('{"text": "x", "speaker": "A"}')


def test_reader_on_a_real_pipe():
    lines = [
        '{"text": "first by index", "utterance_index": 0}',
        '{"text": "broken',
        "plain text line",
        '{"text": "timed", "start_s": 5.0, "end_s": 6.0}',
    ]
    script = "import sys, time\nfor line in sys.argv[1:]:\n    print(line, flush=True)\n    time.sleep(0.05)\n"
    proc = subprocess.Popen([sys.executable, "-c", script, *lines], stdout=subprocess.PIPE, text=True)
    ext = ExternalText()
    reader = ext.start_reader(proc.stdout)
    assert ext.wait(utt(0, 0.0, 1.0), timeout_s=5).text == "first by index"  # while the pipe is still open
    reader.join(5)
    assert not reader.is_alive() and proc.wait(5) == 0
    assert ext.wait(utt(1, 5.1, 5.9), timeout_s=0).text == "timed"  # a time match beats an older plain line
    assert ext.wait(utt(2, 7.0, 8.0), timeout_s=0).text == "plain text line"
    assert ext.stats.bad_lines == 1 and ext.stats.supplied == 3


def test_language_check_on_real_corpora(shared_dir):
    emodb = shared_dir / "data" / "emodb" / "manifest.csv"
    meld = shared_dir / "data" / "meld" / "test_sent_emo.csv"
    need(emodb.is_file() and meld.is_file(), "EmoDB manifest or MELD test CSV missing from ../shared")
    with emodb.open(encoding="utf-8") as f:
        german = [row["transcript"] for row in csv.DictReader(f)]
    with meld.open(encoding="utf-8") as f:
        english = [row["Utterance"] for row in csv.DictReader(f)]
    flagged_de = np.mean([check_text(t).issues == ("non_english:de",) for t in german])
    flagged_en = [t for t in english if any(i.startswith("non_") for i in check_text(t).issues)]
    assert flagged_de > 0.8, flagged_de
    assert len(flagged_en) <= 2, flagged_en  # of 2,610 MELD test utterances
    assert check_text("Это очень плохо").issues == ("non_latin_script",)
    assert check_text("").issues == ("empty",) and check_text("2:17.").issues == ()
