"""openSMILE functionals (utterance-level statistics of low-level descriptors) via `opensmile`.

Sets: eGeMAPSv02 (88) and ComParE_2016 (6373) ship with the `opensmile` package; emo_large (6552,
the paper's handcrafted set: (56 LLD + 56 deltas) x 39 functionals) is read from a config file
given as `config_path=` or by $CMER_EDGE_EMO_LARGE_CONF. Its licence (audEERING, research only)
keeps it out of this package: get `config/misc/emo_large.conf` from audeering/opensmile (the
project's ../shared/opensmile/emo_large.conf is that file adapted to the Python package).

Audio goes in at 16 kHz as is (the configs work at any rate; no resampling). Clips under 0.1 s
are zero-padded, centred, to 0.1 s: below ~60 ms openSMILE returns NaN functionals. One
extractor holds one openSMILE process description; it is not meant to be shared across threads.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from cmer_edge.audio.convert import PIPELINE_RATE_HZ
from cmer_edge.features.base import check_audio, check_output, lazy_import, package_version

log = logging.getLogger("cmer_edge")

FEATURE_SETS = {
    # name: (opensmile.FeatureSet member name or None for a config file, dim)
    "eGeMAPSv02": ("eGeMAPSv02", 88),
    "ComParE_2016": ("ComParE_2016", 6373),
    "emo_large": (None, 6552),
}
EMO_LARGE_ENV = "CMER_EDGE_EMO_LARGE_CONF"
EMO_LARGE_SOURCE = "https://github.com/audeering/opensmile/blob/master/config/misc/emo_large.conf"
MIN_DURATION_S = 0.1


def resolve_emo_large(config_path: str | os.PathLike | None) -> Path:
    """The emo_large config: the argument, else $CMER_EDGE_EMO_LARGE_CONF; refuses anything missing."""
    source = "config_path"
    if config_path is None:
        config_path = os.environ.get(EMO_LARGE_ENV) or None
        source = f"${EMO_LARGE_ENV}"
    if config_path is None:
        raise FileNotFoundError(
            f"opensmile.emo_large needs its config file: pass config_path= or set ${EMO_LARGE_ENV} "
            f"(the file is {EMO_LARGE_SOURCE}, research licence)")
    path = Path(config_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"emo_large config from {source} not found: {path}")
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class OpenSmileExtractor:
    """openSMILE functionals of one feature set: 16 kHz mono float32 [n] -> float32 [dim]."""

    def __init__(self, feature_set: str, *, config_path: str | os.PathLike | None = None) -> None:
        if feature_set not in FEATURE_SETS:
            raise ValueError(f"unknown openSMILE feature set {feature_set!r}; known: {', '.join(FEATURE_SETS)}")
        opensmile = lazy_import("opensmile", "pip install opensmile")
        member, dim = FEATURE_SETS[feature_set]
        self.feature_set = feature_set
        self.name = f"opensmile.{feature_set}"
        self.dim = dim
        self.min_samples = int(round(MIN_DURATION_S * PIPELINE_RATE_HZ))
        self._config: Path | None = None
        if member is None:
            self._config = resolve_emo_large(config_path)
            source: object = str(self._config)
        else:
            if config_path is not None:
                raise ValueError(f"{self.name} is built into opensmile; config_path is only for emo_large")
            source = getattr(opensmile.FeatureSet, member)
        self._smile = opensmile.Smile(feature_set=source, feature_level=opensmile.FeatureLevel.Functionals)
        names = list(self._smile.feature_names)
        if len(names) != dim:
            raise ValueError(f"{self.name}: the config yields {len(names)} functionals, expected {dim} "
                             f"({self._config or member})")
        self.feature_names = names

    def spec(self) -> dict:
        params: dict = {"feature_set": self.feature_set, "feature_level": "functionals",
                        "sample_rate_hz": PIPELINE_RATE_HZ, "min_duration_s": MIN_DURATION_S}
        if self._config is not None:
            params["config_sha256"] = _sha256(self._config)
        return {"name": self.name, "dim": self.dim, "kind": "opensmile", "params": params,
                "versions": {"opensmile": package_version("opensmile")}, "weights_sha256": None}

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x = check_audio(audio, name=self.name, min_samples=self.min_samples)
        out = self._smile(x, PIPELINE_RATE_HZ)  # [channels=1, features, frames=1]
        return check_output(out[0, :, 0], name=self.name, dim=self.dim, samples=audio.shape[0])
