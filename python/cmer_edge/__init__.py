"""cmer_edge: real-time emotion recognition from speech and its transcript (CM-RoBERTa).

    from cmer_edge import Recognizer, RecognizerConfig, FileSource
    rec = Recognizer(RecognizerConfig(asr="whisper"))        # the embedded default bundle
    for event in rec.stream(FileSource("dialogue.wav")):
        print(event.console_line())

Importing the package is cheap: it loads neither torch nor the compiled core; the names below are
imported on first use. Layers and modules: docs/architecture.md. Commands: `python -m cmer_edge`.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from cmer_edge._version import __version__

if TYPE_CHECKING:
    from cmer_edge.audio.microphone import MicrophoneSource
    from cmer_edge.audio.sources import ArraySource, FileSource
    from cmer_edge.bundle import load_bundle
    from cmer_edge.runtime.events import EmotionEvent
    from cmer_edge.runtime.recognizer import Recognizer, RecognizerConfig

_LAZY = {  # public name -> module that defines it
    "Recognizer": "cmer_edge.runtime.recognizer",
    "RecognizerConfig": "cmer_edge.runtime.recognizer",
    "EmotionEvent": "cmer_edge.runtime.events",
    "FileSource": "cmer_edge.audio.sources",
    "ArraySource": "cmer_edge.audio.sources",
    "MicrophoneSource": "cmer_edge.audio.microphone",
    "load_bundle": "cmer_edge.bundle",
}
__all__ = ["__version__", *_LAZY]

logging.getLogger("cmer_edge").addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cmer_edge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
