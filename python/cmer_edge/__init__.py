"""cmer_edge: real-time emotion recognition from speech and its transcript (CM-RoBERTa).

Importing the package is cheap: it loads neither torch nor the compiled core. Submodules:
``audio`` (capture, VAD), ``features`` (openSMILE, L3, text), ``asr``, ``model`` (PyTorch
reference), ``data`` (MELD, EmoDB), ``training``, ``runtime`` (backends, head, pipeline) and the
CLIs ``listen``, ``extract``, ``train``, ``evaluate``, ``bench``.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger("cmer_edge").addHandler(logging.NullHandler())
