"""External-text mode: the host (a robot's own ASR) supplies the transcript of each utterance.

    text = ExternalText()
    text.start_reader(sys.stdin.buffer)             # CLI: JSON lines or plain lines on stdin (bytes)
    text.supply("I told you so", utterance_index=3) # or the Python API, from any thread
    t = text.wait(utterance, timeout_s=1.5)         # Transcript, or None -> audio-only fallback

Matching an utterance, first rule that applies:
1. an entry with `utterance_index` equal to the utterance's index;
2. an entry with `start_s`/`end_s` overlapping the utterance by at least `min_overlap` of the
   shorter of the two spans (best overlap wins). Times are on the STREAM CLOCK: seconds since the
   first sample of the stream (the recognizer's `start_s`/`end_s`, not wall-clock time);
3. a plain entry (neither index nor times): the k-th plain entry supplied (k = 0, 1, ...) is the
   text of utterance k. One plain line per utterance, an empty line for an utterance without words.
A wait that returns (with text or without, after `timeout_s`) FINALISES its utterance. An entry
that arrives for a finalised utterance (its index, its plain ordinal, or a span ending before the
end of the last finalised utterance) is dropped and counted (`late`): it is never shifted onto a
later utterance. Entries that can no longer match are discarded as `stale`. At most `max_pending`
entries are kept (oldest dropped, `dropped`). `wait` returns None (counted in `timed_out`) when no
text arrives within `timeout_s`, or when the text is empty; non-English text is returned with its
issue and counted.

Line format: {"text": "...", "start_s": 1.2, "end_s": 2.9} or {"text": "...", "utterance_index": 4}
(optional "language"). A line whose first non-blank character is "{" or "[" is JSON and must be
an object (else rejected: `bad_lines`, `non_object_lines`); any other line is plain text, an empty
line an empty transcript. Input is read as bytes and decoded as UTF-8 with invalid bytes replaced
by U+FFFD (`invalid_utf8_lines`), so one bad byte never stops the reader and the text passed on is
always valid UTF-8 (lone surrogates from JSON escapes are replaced too).
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from cmer_edge.asr.transcript import Transcript, check_text
from cmer_edge.audio.utterance import Utterance

log = logging.getLogger("cmer_edge")


@dataclass(frozen=True)
class TextEntry:
    text: str
    utterance_index: int | None = None
    start_s: float | None = None
    end_s: float | None = None
    language: str | None = None
    received_t: float = 0.0  # time.monotonic() at supply
    plain_seq: int | None = None  # plain entries: k for the k-th plain entry (the text of utterance k)


@dataclass(frozen=True)
class ExternalTextStats:
    supplied: int = 0
    matched: int = 0
    timed_out: int = 0  # waits that ended without text (the utterance went audio-only)
    late: int = 0  # entries that arrived after their utterance was finalised: dropped
    empty: int = 0
    non_english: int = 0
    stale: int = 0  # entries discarded because they could no longer match
    dropped: int = 0  # entries dropped because max_pending was reached
    bad_lines: int = 0  # input lines rejected (bad JSON, non-object JSON, bad fields)
    non_object_lines: int = 0  # of which: JSON that is not an object ([1, 2, 3], "x" after "[")
    invalid_utf8_lines: int = 0  # lines with invalid UTF-8 (or lone surrogates), replaced by U+FFFD


class NonObjectJson(ValueError):
    """A JSON line that parses but is not an object."""


def decode_line(raw: bytes | str) -> tuple[str, bool]:
    """(text, had_invalid): bytes decoded as UTF-8 with invalid bytes replaced; str with lone
    surrogates (surrogateescape'd bytes, JSON escapes) replaced. The result is always valid UTF-8."""
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8"), False
        except UnicodeDecodeError:
            return raw.decode("utf-8", errors="replace"), True
    return _clean_str(raw)


def _clean_str(text: str) -> tuple[str, bool]:
    try:
        text.encode("utf-8")
        return text, False
    except UnicodeEncodeError:
        if any("\udc80" <= c <= "\udcff" for c in text):  # surrogateescape'd bytes: decode them properly
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), True


def parse_text_line(line: str | bytes) -> TextEntry:
    """One input line -> TextEntry; a malformed JSON line is a ValueError naming it."""
    line = decode_line(line)[0].rstrip("\r\n")
    if not line.lstrip().startswith(("{", "[")):
        return make_entry(line.strip())
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg}): {line[:80]!r}") from exc
    if not isinstance(obj, dict):
        raise NonObjectJson(f"JSON line must be an object like {{\"text\": ...}}, got {type(obj).__name__}: "
                            f"{line[:80]!r}")
    text = obj.get("text")
    if not isinstance(text, str):
        raise ValueError(f"JSON line needs a string \"text\" field: {line[:80]!r}")
    unknown = set(obj) - {"text", "utterance_index", "start_s", "end_s", "language"}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)} in {line[:80]!r}")
    return make_entry(text, obj.get("utterance_index"), obj.get("start_s"), obj.get("end_s"), obj.get("language"))


def make_entry(text, utterance_index=None, start_s=None, end_s=None, language=None) -> TextEntry:
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    text = _clean_str(text)[0]
    if utterance_index is not None and (isinstance(utterance_index, bool) or not isinstance(utterance_index, int)
                                        or utterance_index < 0):
        raise ValueError(f"utterance_index must be an integer >= 0, got {utterance_index!r}")
    if (start_s is None) != (end_s is None):
        raise ValueError(f"give both start_s and end_s or neither, got start_s={start_s!r}, end_s={end_s!r}")
    if start_s is not None:
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (start_s, end_s))
        if not ok or not 0 <= start_s <= end_s:
            raise ValueError(f"need finite 0 <= start_s <= end_s, got start_s={start_s!r}, end_s={end_s!r}")
        start_s, end_s = float(start_s), float(end_s)
    if language is not None and not isinstance(language, str):
        raise ValueError(f"language must be a string, got {language!r}")
    return TextEntry(text, utterance_index, start_s, end_s, language, time.monotonic())


class ExternalText:
    """Thread-safe store of host-supplied transcripts, matched to utterances by `wait`."""

    def __init__(self, *, max_pending: int = 64, min_overlap: float = 0.5) -> None:
        if max_pending < 1 or not 0 < min_overlap <= 1:
            raise ValueError(f"need max_pending >= 1 and 0 < min_overlap <= 1; got {max_pending}, {min_overlap}")
        self.max_pending, self.min_overlap = max_pending, min_overlap
        self._entries: list[TextEntry] = []
        self._cond = threading.Condition()
        self._stats = {k: 0 for k in ExternalTextStats.__dataclass_fields__}
        self._plain_count = 0  # plain entries supplied so far: the next one is for utterance _plain_count
        self._finalised: set[int] = set()  # utterance indices whose wait returned
        self._finalised_end_s = -math.inf  # stream-clock end of the latest finalised utterance

    @property
    def stats(self) -> ExternalTextStats:
        with self._cond:
            return ExternalTextStats(**self._stats)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._entries)

    def supply(self, text: str, utterance_index: int | None = None, start_s: float | None = None,
               end_s: float | None = None, language: str | None = None) -> None:
        """Give the text of one utterance, identified by index, by stream-clock span, or by order."""
        self._add(make_entry(text, utterance_index, start_s, end_s, language))

    def _add(self, entry: TextEntry) -> None:
        with self._cond:
            self._stats["supplied"] += 1
            if entry.utterance_index is None and entry.start_s is None:
                entry = TextEntry(entry.text, None, None, None, entry.language, entry.received_t, self._plain_count)
                self._plain_count += 1
            late = self._late(entry)
            if late is not None:
                self._stats["late"] += 1
                log.warning("external text %r arrived after %s was finalised: dropped", entry.text[:40], late)
                return
            self._entries.append(entry)
            while len(self._entries) > self.max_pending:
                dropped = self._entries.pop(0)
                self._stats["dropped"] += 1
                log.warning("external text: %d entries pending, dropped the oldest (%r)", self.max_pending,
                            dropped.text[:40])
            self._cond.notify_all()

    def _late(self, e: TextEntry) -> str | None:
        """Which finalised utterance `e` was for, or None (lock held)."""
        index = e.utterance_index if e.utterance_index is not None else e.plain_seq
        if index is not None:
            return f"utterance {index}" if index in self._finalised else None
        if e.end_s <= self._finalised_end_s:
            return f"the utterance ending at {self._finalised_end_s:.2f} s"
        return None

    def _finalise(self, utt: Utterance) -> None:
        self._finalised.add(utt.index)
        if len(self._finalised) > 4096:  # bounded: forget the oldest half (their entries count as stale)
            for i in sorted(self._finalised)[:2048]:
                self._finalised.discard(i)
        self._finalised_end_s = max(self._finalised_end_s, utt.end_s)

    def wait(self, utterance: Utterance, timeout_s: float) -> Transcript | None:
        """The text for `utterance`, or None when none came within `timeout_s` or it is empty.
        Either way the utterance is finalised: text for it that arrives later is dropped as late."""
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s >= 0):
            raise ValueError(f"timeout_s must be a finite number >= 0, got {timeout_s!r}")
        t0 = time.monotonic()
        with self._cond:
            while True:
                entry = self._take(utterance)
                remaining = timeout_s - (time.monotonic() - t0)
                if entry is not None or remaining <= 0:
                    break
                self._cond.wait(remaining)
            self._finalise(utterance)
            if entry is None:
                self._stats["timed_out"] += 1
                log.info("external text for utterance %d not there after %.2f s: audio only",
                         utterance.index, timeout_s)
                return None
            self._stats["matched"] += 1
            check = check_text(entry.text)
            if "empty" in check.issues:
                self._stats["empty"] += 1
                return None
            if any(i.startswith("non_") for i in check.issues):
                self._stats["non_english"] += 1
                log.warning("external text for utterance %d looks non-English (%s): %r", utterance.index,
                            check.issues[0], entry.text[:60])
        language = entry.language or check.language
        return Transcript(text=entry.text.strip(), language=language, latency_ms=(time.monotonic() - t0) * 1000,
                          source="external", issues=check.issues)

    def _take(self, utt: Utterance) -> TextEntry | None:
        """Prune stale entries, then remove and return the best match (lock held)."""
        keep = []
        for e in self._entries:
            index = e.utterance_index if e.utterance_index is not None else e.plain_seq
            stale = (index is not None and index < utt.index) or (index is None and e.end_s < utt.start_s)
            if stale:
                self._stats["stale"] += 1
                log.info("external text discarded as stale (utterance %d is being matched): %r", utt.index,
                         e.text[:40])
            else:
                keep.append(e)
        self._entries = keep
        best, best_score = None, -1.0  # scores: index 3, time overlap 1 + overlap (1..2], plain 0
        for e in keep:
            if e.start_s is not None:
                shorter = max(min(e.end_s - e.start_s, utt.end_s - utt.start_s), 1e-6)
                overlap = (min(e.end_s, utt.end_s) - max(e.start_s, utt.start_s)) / shorter
                score = 1.0 + overlap if overlap >= self.min_overlap else -1.0
            elif e.utterance_index is not None:
                score = 3.0 if e.utterance_index == utt.index else -1.0
            else:
                score = 0.0 if e.plain_seq == utt.index else -1.0
            if score > best_score:
                best, best_score = e, score
        if best is not None:
            self._entries.remove(best)
        return best

    def read_lines(self, stream: BinaryIO | TextIO) -> int:
        """Supply every line of `stream` (bytes preferred; text works) until EOF; returns the number
        supplied. Bad lines are logged and counted (`stats.bad_lines`), never fatal."""
        n = 0
        for raw in stream:
            line, invalid = decode_line(raw)
            if invalid:
                with self._cond:
                    self._stats["invalid_utf8_lines"] += 1
                log.warning("external text: invalid UTF-8 replaced by U+FFFD: %r", line[:80])
            try:
                entry = parse_text_line(line)
            except ValueError as exc:
                with self._cond:
                    self._stats["bad_lines"] += 1
                    self._stats["non_object_lines"] += isinstance(exc, NonObjectJson)
                log.warning("external text: ignored line: %s", exc)
                continue
            self._add(entry)
            n += 1
        return n

    def start_reader(self, stream: BinaryIO | TextIO | None = None) -> threading.Thread:
        """Read `stream` (default: sys.stdin's bytes) in a daemon thread; returns the thread. A text
        stream is read through its `.buffer` when it has one, so no locale can make a byte fatal."""
        src = stream if stream is not None else sys.stdin
        src = getattr(src, "buffer", src)
        thread = threading.Thread(target=self.read_lines, args=(src,), name="cmer_edge-external-text", daemon=True)
        thread.start()
        return thread
