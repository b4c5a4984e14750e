"""Where the official L3-family weights live, and a downloader (torch-free).

OpenL3 (marl/openl3, MIT): one Keras file per input representation and content type, shared by
the 6144- and 512-d models (only the final pooling differs), e.g.
  https://github.com/marl/openl3/raw/models/openl3_audio_mel256_music-v0_4_0.h5.gz
EdgeL3 (ksangeeta2429/edgel3, MIT): the SEA students, e.g.
  https://github.com/ksangeeta2429/edgel3/raw/models/edgel3_sea_ust_audio_emb_64.h5.gz
The loader (`keras_h5.load_keras_weights`) reads the .h5.gz as downloaded.
"""

from __future__ import annotations

import logging
import os
import tempfile
import urllib.request
from pathlib import Path

from cmer_edge.features.l3.config import preset

log = logging.getLogger("cmer_edge")

OPENL3_BASE_URL = "https://github.com/marl/openl3/raw/models/"
OPENL3_VERSION = "v0_4_0"
EDGEL3_BASE_URL = "https://github.com/ksangeeta2429/edgel3/raw/models/"
CONTENT_TYPES = ("music", "env")


def weights_filename(name: str, content_type: str = "music") -> str:
    """The released file name for L3 model `name` (e.g. "l3.mel256.6144", "edgel3.sea.64")."""
    cfg = preset(name)
    if name.startswith("edgel3.sea."):
        return f"edgel3_sea_ust_audio_emb_{cfg.dim}.h5.gz"
    if content_type not in CONTENT_TYPES:
        raise ValueError(f"OpenL3 content_type must be one of {CONTENT_TYPES}, got {content_type!r}")
    input_repr = name.split(".")[1]
    return f"openl3_audio_{input_repr}_{content_type}-{OPENL3_VERSION}.h5.gz"


def weights_url(name: str, content_type: str = "music") -> str:
    base = EDGEL3_BASE_URL if name.startswith("edgel3.") else OPENL3_BASE_URL
    return base + weights_filename(name, content_type)


def download_weights(name: str, dest_dir: str | os.PathLike, content_type: str = "music",
                     timeout_s: float = 60.0) -> Path:
    """Download the weights of `name` into `dest_dir` (kept if already there); returns the path."""
    dest_dir = Path(dest_dir)
    dest = dest_dir / weights_filename(name, content_type)
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    url = weights_url(name, content_type)
    log.info("downloading %s", url)
    fd, tmp = tempfile.mkstemp(dir=dest_dir, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, dest)
    except OSError as exc:
        raise OSError(f"could not download {url}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest
