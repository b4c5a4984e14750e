"""External-text mode: the host (a robot's own ASR) supplies the transcript of each utterance.

    text = ExternalText()
    text.start_reader(sys.stdin)                    # CLI: JSON lines or plain lines on stdin
    text.supply("I told you so", utterance_index=3) # or the Python API, from any thread
    t = text.wait(utterance, timeout_s=1.5)         # Transcript, or None -> audio-only fallback

Matching an utterance, first rule that applies:
1. an entry with `utterance_index` equal to the utterance's index;
2. an entry with `start_s`/`end_s` (stream clock) overlapping the utterance by at least
   `min_overlap` of the shorter of the two spans (best overlap wins);
3. the oldest entry with neither (plain lines are taken in order, one per utterance).
Entries that can no longer match are discarded as stale: an index below the utterance's, a time
span ending before its start, or a plain entry older than `max_age_s`. At most `max_pending`
entries are kept (oldest dropped). `wait` returns None (counted) when no text arrives within
`timeout_s` or the text is empty; non-English text is returned with its issue and counted.

Line format: {"text": "...", "start_s": 1.2, "end_s": 2.9} or {"text": "...", "utterance_index": 4}
(optional "language"); any line not starting with "{" is plain text, an empty line is an empty
transcript ("this utterance had no words").
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import TextIO

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


@dataclass(frozen=True)
class ExternalTextStats:
    supplied: int = 0
    matched: int = 0
    late: int = 0  # waits that timed out
    empty: int = 0
    non_english: int = 0
    stale: int = 0  # entries discarded because they could no longer match
    dropped: int = 0  # entries dropped because max_pending was reached
    bad_lines: int = 0  # unparseable input lines


def parse_text_line(line: str) -> TextEntry:
    """One input line -> TextEntry; a malformed JSON line is a ValueError naming it."""
    line = line.rstrip("\r\n")
    if not line.lstrip().startswith("{"):
        return make_entry(line.strip())
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg}): {line[:80]!r}") from exc
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

    def __init__(self, *, max_pending: int = 64, min_overlap: float = 0.5, max_age_s: float = 60.0) -> None:
        if max_pending < 1 or not 0 < min_overlap <= 1 or not max_age_s > 0:
            raise ValueError(f"need max_pending >= 1, 0 < min_overlap <= 1, max_age_s > 0; got "
                             f"{max_pending}, {min_overlap}, {max_age_s}")
        self.max_pending, self.min_overlap, self.max_age_s = max_pending, min_overlap, max_age_s
        self._entries: list[TextEntry] = []
        self._cond = threading.Condition()
        self._stats = {k: 0 for k in ExternalTextStats.__dataclass_fields__}

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
            self._entries.append(entry)
            self._stats["supplied"] += 1
            while len(self._entries) > self.max_pending:
                dropped = self._entries.pop(0)
                self._stats["dropped"] += 1
                log.warning("external text: %d entries pending, dropped the oldest (%r)", self.max_pending,
                            dropped.text[:40])
            self._cond.notify_all()

    def wait(self, utterance: Utterance, timeout_s: float) -> Transcript | None:
        """The text for `utterance`, or None when it is late (after `timeout_s`) or empty."""
        if not timeout_s >= 0:
            raise ValueError(f"timeout_s must be >= 0, got {timeout_s}")
        t0 = time.monotonic()
        with self._cond:
            while True:
                entry = self._take(utterance)
                remaining = timeout_s - (time.monotonic() - t0)
                if entry is not None or remaining <= 0:
                    break
                self._cond.wait(remaining)
            if entry is None:
                self._stats["late"] += 1
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
        now = time.monotonic()
        keep = []
        for e in self._entries:
            stale = ((e.utterance_index is not None and e.utterance_index < utt.index)
                     or (e.utterance_index is None and e.end_s is not None and e.end_s < utt.start_s)
                     or (e.utterance_index is None and e.end_s is None and now - e.received_t > self.max_age_s))
            if stale:
                self._stats["stale"] += 1
                log.info("external text discarded as stale: %r", e.text[:40])
            else:
                keep.append(e)
        self._entries = keep
        best, best_score = None, -1.0
        for e in keep:
            if e.utterance_index is not None:
                if e.utterance_index == utt.index:
                    best, best_score = e, 2.0
                    break
            elif e.start_s is not None:
                shorter = max(min(e.end_s - e.start_s, utt.end_s - utt.start_s), 1e-6)
                overlap = (min(e.end_s, utt.end_s) - max(e.start_s, utt.start_s)) / shorter
                if overlap >= self.min_overlap and overlap > best_score:
                    best, best_score = e, overlap
            elif best is None:
                best, best_score = e, 0.0  # the oldest plain entry, unless a better match follows
        if best is not None:
            self._entries.remove(best)
        return best

    def read_lines(self, stream: TextIO) -> int:
        """Supply every line of `stream` until EOF; returns the number supplied. Bad lines are
        logged and counted (`stats.bad_lines`), never fatal."""
        n = 0
        for line in stream:
            try:
                entry = parse_text_line(line)
            except ValueError as exc:
                with self._cond:
                    self._stats["bad_lines"] += 1
                log.warning("external text: ignored line: %s", exc)
                continue
            self._add(entry)
            n += 1
        return n

    def start_reader(self, stream: TextIO | None = None) -> threading.Thread:
        """Read `stream` (default: sys.stdin) in a daemon thread; returns the thread."""
        import sys

        src = stream if stream is not None else sys.stdin
        thread = threading.Thread(target=self.read_lines, args=(src,), name="cmer_edge-external-text", daemon=True)
        thread.start()
        return thread
