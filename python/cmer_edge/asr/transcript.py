"""`Transcript` (what every ASR backend returns) and the text checks behind its `issues`.

The text model downstream is English (RoBERTa family), so empty text and text that is not
English are reported: `issues` holds "empty", "no_speech", "non_english:<lang>" or
"non_latin_script". `usable` is True when there are none; the pipeline then uses text and audio,
else audio only (`modalities_for`).

The language check is a small function-word vote (English, German, French, Spanish, Italian,
Portuguese, Dutch) plus a script test. It needs a few words to decide; shorter text is taken as
English. It exists to catch a host ASR configured for the wrong language or Whisper drifting, not
to be a language identifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_FUNCTION_WORDS = {
    "en": "the a an and or but is are was were be been am i you he she it we they me him her us them my your his "
          "its our their this that these those of to in on at for with from by not no yes do does did have has had "
          "will would can could should what why how where when who so just all there here if then than about "
          "i'm don't it's can't that's let's you're i'll okay oh yeah know like get go going want as up out over "
          "into some any more very too also only now well really right see think tell come make say said because",
    "de": "der die das und ist nicht ich du er sie es wir ihr ein eine einen einem dem den des zu mit auf für von "
          "im sind war hat habe haben auch noch nur wie was wo aber oder doch ja nein schon jetzt dann mir mich "
          "dich uns sich hier bei nach aus um wird werden kann muss wieder gleich",
    "fr": "le la les un une des du de et est je tu il elle nous vous ils elles pas ne que qui dans pour sur avec "
          "ce cette mais ou oui non c'est j'ai suis sont mon ton son au aux très bien",
    "es": "el la los las un una y es que de en por para con yo tú él ella nosotros pero muy está estoy son qué "
          "como lo mi su se del al sí",
    "it": "il lo la gli le un una e è non che di da in per con io tu lui lei noi voi ma sono ho ha questo questa "
          "molto perché del della anche",
    "pt": "o a os as um uma e é não que de do da em para com eu você ele ela nós mas muito está estou são meu "
          "isso",
    "nl": "de het een en is niet ik jij je hij zij wij van op te met voor maar dat die zijn was heb heeft ook "
          "wat hoe nog al er",
}
_WORDS = {lang: frozenset(words.split()) for lang, words in _FUNCTION_WORDS.items()}
_TOKEN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_LATIN_MAX = 0x24F  # end of Latin Extended-B


@dataclass(frozen=True)
class TextCheck:
    language: str  # ISO 639-1 guess; "en" when undecided; "und" for non-Latin script
    issues: tuple[str, ...] = ()


def check_text(text: str, min_words: int = 3) -> TextCheck:
    """Empty (no letters or digits) / non-Latin-script / likely-non-English text, by a vote of
    distinct function words."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    if not any(c.isalnum() for c in text):
        return TextCheck("en", ("empty",))
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return TextCheck("en")  # digits only ("2:17."): text, not a language
    if sum(ord(c) > _LATIN_MAX for c in letters) > len(letters) / 2:
        return TextCheck("und", ("non_latin_script",))
    tokens = [t.lower() for t in _TOKEN.findall(text.replace("\u2019", "'"))]
    if len(tokens) < min_words:
        return TextCheck("en")
    distinct = set(tokens)  # "la la la" is one vote, not three
    hits = {lang: len(distinct & words) for lang, words in _WORDS.items()}
    best = max(hits, key=hits.get)
    if best != "en" and hits[best] >= 2 and hits[best] >= 2 * hits["en"]:
        return TextCheck(best, (f"non_english:{best}",))
    return TextCheck("en")


@dataclass(frozen=True)
class Transcript:
    """Text for one utterance. `avg_logprob` / `no_speech_prob` come from Whisper (None for
    external text); `latency_ms` is the time the backend took (Whisper) or the wait (external)."""

    text: str
    language: str
    latency_ms: float
    source: str  # "whisper" or "external"
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    language_probability: float | None = None
    issues: tuple[str, ...] = field(default=())

    @property
    def usable(self) -> bool:
        """True when the text can go to the (English) text encoder."""
        return not self.issues


def modalities_for(transcript: Transcript | None) -> tuple[str, ...]:
    """What an emotion event uses: ("audio", "text") with usable text, else ("audio",)."""
    return ("audio", "text") if transcript is not None and transcript.usable else ("audio",)
