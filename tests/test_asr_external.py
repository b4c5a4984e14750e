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
    # "plain second" is plain line 1, the text of utterance 1, which took the timed entry: it is never
    # moved on to utterance 3
    assert ext.wait(utt(3, 8.0, 9.0), timeout_s=0) is None
    assert ext.pending == 0 and ext.stats.matched == 3 and ext.stats.stale == 1


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
    assert 0.2 <= time.monotonic() - t0 < 0.5 and ext.stats.timed_out == 1
    ext.supply("too late for 4", utterance_index=4)
    ext.supply("too late by time", start_s=10.0, end_s=11.0)
    ext.supply("for 5", utterance_index=5)
    assert ext.stats.late == 2 and ext.pending == 1  # dropped on arrival: utterance 4 was finalised
    assert ext.wait(utt(5, 12.0, 13.0), timeout_s=0).text == "for 5"
    assert ext.pending == 0


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
    assert ext.wait(utt(0, 0, 1), timeout_s=0) is None  # line 0 was dropped; line 2 stays utterance 2's
    assert ext.wait(utt(2, 2, 3), timeout_s=0).text == "line 2"


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
    assert ext.wait(utt(1, 5.1, 5.9), timeout_s=0).text == "timed"
    # the plain line is plain line 0 = utterance 0's text, which already had one: it never moves on
    assert ext.wait(utt(2, 7.0, 8.0), timeout_s=0) is None
    assert ext.stats.bad_lines == 1 and ext.stats.supplied == 3 and ext.stats.stale + ext.stats.late == 1


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


def test_a_late_plain_line_never_shifts_onto_a_later_utterance():
    """Issue 12: one late plain line used to move every later transcript onto the next utterance."""
    ext = ExternalText()
    ext.supply("first")
    assert ext.wait(utt(0, 0.0, 1.0), timeout_s=0).text == "first"
    assert ext.wait(utt(1, 2.0, 3.0), timeout_s=0.05) is None  # its line is late
    ext.supply("second, late")  # plain line 1 = utterance 1, already finalised: dropped, counted
    ext.supply("third")
    ext.supply("fourth")
    assert ext.wait(utt(2, 4.0, 5.0), timeout_s=0).text == "third"
    assert ext.wait(utt(3, 6.0, 7.0), timeout_s=0).text == "fourth"
    assert ext.stats.late == 1 and ext.stats.timed_out == 1 and ext.pending == 0


def test_plain_line_for_a_later_utterance_waits_for_it():
    ext = ExternalText()
    ext.supply("zero")
    ext.supply("one")
    assert ext.wait(utt(0, 0, 1), timeout_s=0).text == "zero"
    threading.Timer(0.1, lambda: ext.supply("two")).start()
    assert ext.wait(utt(1, 1, 2), timeout_s=0).text == "one"
    assert ext.wait(utt(2, 2, 3), timeout_s=2).text == "two"


def test_time_overlap_uses_the_stream_clock_and_late_spans_are_dropped():
    ext = ExternalText()
    ext.supply("a", start_s=0.2, end_s=1.1)
    assert ext.wait(utt(0, 0.0, 1.2), timeout_s=0).text == "a"
    ext.supply("for the finalised one", start_s=0.5, end_s=1.0)
    ext.supply("b", start_s=2.0, end_s=3.0)
    assert ext.stats.late == 1
    assert ext.wait(utt(1, 1.9, 3.1), timeout_s=0).text == "b"


@pytest.mark.parametrize("line", ["[1, 2, 3]", '["text"]', "[]", '  [{"text": "x"}]'])
def test_non_object_json_is_rejected(line):
    with pytest.raises(ValueError, match="must be an object"):
        parse_text_line(line)


def test_reader_replaces_invalid_bytes_and_rejects_non_objects():
    import io

    data = b"".join([
        b'{"text": "caf\xc3\xa9 ok", "utterance_index": 0}\n',
        b"bad \xff\xfe byte\n",             # plain line 0 (utterance 0 already has an indexed text)
        b"[1, 2, 3]\n",
        b'{"text": "lone \\ud800 surrogate", "utterance_index": 2}\n',
        b'{"text": "after the bad ones", "utterance_index": 3}\n',
    ])
    ext = ExternalText()
    assert ext.read_lines(io.BytesIO(data)) == 4
    st = ext.stats
    assert (st.invalid_utf8_lines, st.bad_lines, st.non_object_lines, st.supplied) == (1, 1, 1, 4)
    assert ext.wait(utt(0, 0, 1), timeout_s=0).text == "café ok"
    t2 = ext.wait(utt(2, 2, 3), timeout_s=0)
    assert t2.text == "lone \ufffd surrogate"
    t2.text.encode("utf-8")  # valid UTF-8 whatever came in
    assert ext.wait(utt(3, 3, 4), timeout_s=0).text == "after the bad ones"


def test_reader_survives_a_bad_byte_under_a_strict_locale():
    """A text stream in a strict ASCII/UTF-8 locale used to die on one bad byte; the reader uses its bytes."""
    import io

    raw = io.BytesIO(b"hello\n\xff\xfe\nworld\n")
    text_stream = io.TextIOWrapper(raw, encoding="ascii", errors="strict")
    ext = ExternalText()
    ext.start_reader(text_stream).join(5)
    assert ext.stats.supplied == 3 and ext.stats.invalid_utf8_lines == 1
    assert ext.wait(utt(2, 2, 3), timeout_s=0).text == "world"
