"""testing/spoken_meld.py: MELD lines spoken by espeak-ng as a speech manifest (the fusion check's clips)."""

from __future__ import annotations

from helpers.ci import need

from cmer_edge.data.speech_manifest import load_manifest
from cmer_edge.testing.espeak import espeak_available, speak
from cmer_edge.testing.spoken_meld import write_spoken_meld

LINES = ["Peach pit. That night we, uh- we had-", "-Peaches?", "--verbose", "Actually, nectarines, but basically..."]


def test_every_line_is_spoken_even_one_that_looks_like_an_option(tmp_path):
    """MELD test has lines such as "-Peaches?": espeak-ng must read them as text, not as options."""
    need(espeak_available(), "espeak-ng is not installed (apt-get install espeak-ng)")
    assert len(speak("-Peaches?")) > 8000  # about half a second of speech, not an empty file
    meld = tmp_path / "meld"
    meld.mkdir()
    rows = ["Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID"]
    rows += [f'{k},"{text}",Ross,{emotion},neutral,188,{k}'
             for k, (text, emotion) in enumerate(zip(LINES, ("neutral", "surprise", "neutral", "joy")))]
    (meld / "test_sent_emo.csv").write_text("\n".join(rows) + "\n")
    manifest = write_spoken_meld(meld, "test", tmp_path / "spoken", limit=100)
    clips = load_manifest(manifest.parent).clips
    assert sorted(c.transcript for c in clips) == sorted(LINES)
    assert {c.transcript: c.label for c in clips}["-Peaches?"] == "surprise"
    assert all(c.path.stat().st_size > 8000 for c in clips)
