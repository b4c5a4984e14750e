"""Transcript clean-up for MELD-style CSV text: mojibake repair, Unicode and punctuation folding.

The official MELD CSVs were written through a Windows code page at some point, so depending on the
copy a right single quote appears as "’" (clean UTF-8), "Â’" (UTF-8 read as cp1252 twice),
"â€™" (UTF-8 read as cp1252 once) or a bare C1 control U+0092 (cp1252 byte read as Latin-1).
`normalize_text` repairs all four to the same string, then (by default) folds typographic
punctuation to ASCII so corpus text matches what ASR produces at run time:

1. C1 controls U+0080..U+009F become their cp1252 character (U+0092 -> "’"); then a run of cp1252
   characters that re-encodes to valid multi-byte UTF-8 and decodes to Latin letters or
   punctuation is decoded; both repeat while the text changes, so double encodings unwind;
2. C1 controls left over (the five bytes cp1252 leaves undefined) are dropped;
3. Unicode NFC;
4. with ascii_punct: ‘ ’ ‚ ‛ ′ -> ', “ ” „ ‟ ″ -> ", … -> ..., – — ― -> -, NBSP and other
   spaces -> space (letters such as é stay);
5. whitespace runs collapse to one space; leading/trailing whitespace goes.
"""

from __future__ import annotations

import re
import unicodedata

# byte value <-> character under cp1252, with Latin-1 for the five bytes cp1252 leaves undefined
_BYTE_TO_CHAR = {}
for _b in range(0x80, 0x100):
    try:
        _BYTE_TO_CHAR[_b] = bytes([_b]).decode("cp1252")
    except UnicodeDecodeError:
        _BYTE_TO_CHAR[_b] = chr(_b)
_CHAR_TO_BYTE = {c: b for b, c in _BYTE_TO_CHAR.items()}


def _char_class(byte_lo: int, byte_hi: int) -> str:
    return "".join(re.escape(_BYTE_TO_CHAR[b]) for b in range(byte_lo, byte_hi + 1))


_CONT = _char_class(0x80, 0xBF)
# lead byte of a 2-, 3- or 4-byte UTF-8 sequence followed by its continuation bytes
_MOJIBAKE = re.compile(
    f"[{_char_class(0xC2, 0xDF)}][{_CONT}]"
    f"|[{_char_class(0xE0, 0xEF)}][{_CONT}]{{2}}"
    f"|[{_char_class(0xF0, 0xF4)}][{_CONT}]{{3}}"
)
_C1 = re.compile("[\u0080-\u009f]")

_ASCII_PUNCT = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u2026": "...", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2012": "-",
    "\u00a0": " ", "\u2009": " ", "\u200a": " ", "\u202f": " ", "\u2007": " ",
    "\u200b": "", "\ufeff": "",
})
_SPACES = re.compile(r"\s+")


def _plausible(decoded: str) -> bool:
    """Repairs MELD needs decode to Latin letters, punctuation or C1 controls; anything else
    (say Cyrillic from a genuine "Ó…") is more likely real text than mojibake."""
    return all(0x80 <= ord(c) <= 0x24F or 0x2000 <= ord(c) <= 0x214F for c in decoded)


def _fix_run(match: re.Match) -> str:
    run = match.group(0)
    try:
        decoded = bytes(_CHAR_TO_BYTE[c] for c in run).decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return run
    return decoded if _plausible(decoded) else run


def _fix_c1(match: re.Match) -> str:
    return _BYTE_TO_CHAR[ord(match.group(0))]  # the five bytes cp1252 leaves undefined stay as they are


def fix_mojibake(text: str) -> str:
    """Undo UTF-8-read-as-cp1252/Latin-1 damage ("â€™", "Â’", "â\\x80\\x99" -> "’"), map stray C1
    controls through cp1252 (U+0092 -> "’") and drop the C1 controls cp1252 leaves undefined."""
    for _ in range(4):  # each pass unwinds one layer of double encoding
        fixed = _MOJIBAKE.sub(_fix_run, _C1.sub(_fix_c1, text))
        if fixed == text:
            break
        text = fixed
    return _C1.sub("", text)


def normalize_text(text: str, *, ascii_punct: bool = True) -> str:
    """Repair mojibake, NFC-normalise, optionally fold typographic punctuation, squash spaces."""
    if not isinstance(text, str):
        raise TypeError(f"normalize_text expects str, got {type(text).__name__}")
    text = unicodedata.normalize("NFC", fix_mojibake(text))
    if ascii_punct:
        text = text.translate(_ASCII_PUNCT)
    return _SPACES.sub(" ", text).strip()
