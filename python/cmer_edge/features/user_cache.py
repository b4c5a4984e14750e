"""Where models derived locally from installed packages are kept (MPNet assembled from its parts,
Whisper's first encoder layers): one folder per user, never downloaded into."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$CMER_EDGE_CACHE, else $XDG_CACHE_HOME/cmer_edge, else ~/.cache/cmer_edge."""
    if os.environ.get("CMER_EDGE_CACHE"):
        return Path(os.environ["CMER_EDGE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cmer_edge"
