"""A tiny built-in MELD-format script (our own lines), used by meld_synth only when no MELD CSV is
found, so the generator works on a machine without the corpus (e.g. a bare Jetson)."""

from __future__ import annotations

# (Dialogue_ID, Speaker, Emotion, Sentiment, Utterance)
_LINES = [
    (0, "Ana", "joy", "positive", "Guess who got the job? I start on Monday!"),
    (0, "Ben", "surprise", "positive", "No way! That’s amazing, when did they call?"),
    (0, "Ana", "joy", "positive", "About an hour ago. I still can’t believe it."),
    (0, "Ben", "neutral", "neutral", "We should celebrate tonight, my treat."),
    (1, "Cleo", "anger", "negative", "You took my car again without asking me."),
    (1, "Dan", "neutral", "neutral", "I left you a note on the fridge."),
    (1, "Cleo", "anger", "negative", "A note is not asking, and the tank is empty!"),
    (1, "Dan", "sadness", "negative", "Okay. I’m sorry, I’ll fill it up tomorrow."),
    (2, "Eve", "fear", "negative", "Did you hear that noise downstairs?"),
    (2, "Finn", "neutral", "neutral", "It’s probably just the heating."),
    (2, "Eve", "fear", "negative", "It sounded like someone opening the door."),
    (2, "Finn", "surprise", "negative", "Wait… you’re right, I hear footsteps."),
    (3, "Gus", "disgust", "negative", "What is that smell? Did something die in here?"),
    (3, "Hana", "neutral", "neutral", "I made soup. It’s my grandmother’s recipe."),
    (3, "Gus", "sadness", "negative", "Oh. Sorry. I didn’t mean it like that."),
    (3, "Hana", "joy", "positive", "Ha! Just try it, you’ll love it."),
]


def builtin_rows() -> list[dict[str, str]]:
    """The built-in lines as MELD CSV rows (strings, as csv.DictReader gives them)."""
    rows, turn = [], {}
    for i, (dia, speaker, emotion, sentiment, text) in enumerate(_LINES):
        utt = turn.get(dia, 0)
        turn[dia] = utt + 1
        rows.append({"Sr No.": str(i + 1), "Utterance": text, "Speaker": speaker, "Emotion": emotion,
                     "Sentiment": sentiment, "Dialogue_ID": str(dia), "Utterance_ID": str(utt),
                     "Season": "", "Episode": "", "StartTime": "", "EndTime": ""})
    return rows
