"""Configs of the L3-family audio networks (OpenL3, EdgeL3): front-end, CNN, windowing, pooling.

Torch-free. Every constant below is taken from the reference code (see docs/l3.md for the line-by-
line sources): OpenL3 `openl3/models.py` + `openl3/core.py` (marl/openl3 v0.4.2), Kapre 0.1.4
`Melspectrogram` (the front-end the OpenL3 and EdgeL3 weights were trained with) and Kapre 0.3.5
`get_melspectrogram_layer` (the front-end `openl3>=0.4` runs), EdgeL3 `edgel3/models.py`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

FRONTENDS = ("kapre-0.1.4", "openl3-0.4")
POOLINGS = ("mean", "max")
MEL_SCALES = ("htk", "slaney")
MEL_INPUTS = ("magnitude", "power_sqrt")
PADDINGS = ("same", "end")


@dataclass(frozen=True)
class FrontendConfig:
    """One 1-s window of audio at `sample_rate_hz` -> log-mel [n_mels, n_frames] in dB re. its max.

    mel_input "power_sqrt": sqrt(mel @ |X|^2) (Kapre 0.1.4: power spectrogram, mel, then
    `power_melgram=1.0`); "magnitude": mel @ |X| (Kapre 0.3.5). padding "same": TF conv 'same'
    (Kapre 0.1.4 conv-STFT); "end": zeros at the end only (tf.signal.stft pad_end=True).
    Then 10*log10(max(x, amin)), minus the window's max, floored at -dynamic_range_db.
    """

    preset: str = "openl3-0.4"
    sample_rate_hz: int = 48_000
    window_s: float = 1.0
    n_fft: int = 2048
    hop_samples: int = 242
    n_mels: int = 256
    mel_scale: str = "slaney"
    mel_input: str = "magnitude"
    padding: str = "end"
    fmin_hz: float = 0.0
    fmax_hz: float | None = None
    amin: float = 1e-10
    dynamic_range_db: float = 80.0

    def __post_init__(self) -> None:
        choices = ((self.mel_scale, MEL_SCALES, "mel_scale"), (self.mel_input, MEL_INPUTS, "mel_input"),
                   (self.padding, PADDINGS, "padding"))
        for value, allowed, what in choices:
            if value not in allowed:
                raise ValueError(f"FrontendConfig.{what} must be one of {allowed}, got {value!r}")
        if self.sample_rate_hz <= 0 or self.n_fft < 2 or self.hop_samples < 1 or self.n_mels < 1:
            raise ValueError(f"invalid front-end sizes: {self}")
        if self.window_samples < self.n_fft:
            raise ValueError(f"window of {self.window_samples} samples is shorter than n_fft={self.n_fft}")

    @property
    def window_samples(self) -> int:
        return int(round(self.sample_rate_hz * self.window_s))

    @property
    def n_frames(self) -> int:
        """STFT frames per window: ceil(window / hop) for both paddings (TF 'same' and pad_end)."""
        return -(-self.window_samples // self.hop_samples)

    @property
    def pad_samples(self) -> tuple[int, int]:
        """(left, right) zeros around one window before the strided DFT."""
        total = max((self.n_frames - 1) * self.hop_samples + self.n_fft - self.window_samples, 0)
        if self.padding == "same":
            return total // 2, total - total // 2
        return 0, total


def frontend_preset(preset: str, *, sample_rate_hz: int = 48_000, n_fft: int = 2048, hop_samples: int = 242,
                    n_mels: int = 256) -> FrontendConfig:
    """"kapre-0.1.4": what the OpenL3/EdgeL3 weights were trained with (HTK mel, Slaney area norm,
    sqrt of mel power, TF 'same' padding). "openl3-0.4": what `openl3>=0.4` computes with its default
    `frontend='kapre'` (Kapre 0.3.5: Slaney mel, mel of magnitude, end padding, Kapre 0.1.4 dB)."""
    if preset == "kapre-0.1.4":
        extra = {"mel_scale": "htk", "mel_input": "power_sqrt", "padding": "same"}
    elif preset == "openl3-0.4":
        extra = {"mel_scale": "slaney", "mel_input": "magnitude", "padding": "end"}
    else:
        raise ValueError(f"unknown front-end preset {preset!r}; known: {FRONTENDS}")
    return FrontendConfig(preset=preset, sample_rate_hz=sample_rate_hz, n_fft=n_fft, hop_samples=hop_samples,
                          n_mels=n_mels, **extra)


@dataclass(frozen=True)
class NetworkConfig:
    """4 conv blocks (conv-BN-ReLU x 2, 2x2 max-pool after blocks 1-3); the last conv is the
    'audio_embedding_layer', max-pooled by `embedding_pool` (Keras 'same', exact here) and flattened
    in Keras (H, W, C) order. EdgeL3 SEA adds BN + ReLU after the embedding conv."""

    channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    embedding_pool: tuple[int, int] = (8, 8)
    embedding_bn_relu: bool = False
    bn_eps: float = 1e-3  # Keras BatchNormalization default

    def __post_init__(self) -> None:
        if len(self.channels) != 4 or min(self.channels) < 1:
            raise ValueError(f"NetworkConfig.channels must be 4 positive ints, got {self.channels}")
        if len(self.embedding_pool) != 2 or min(self.embedding_pool) < 1:
            raise ValueError(f"NetworkConfig.embedding_pool must be 2 positive ints, got {self.embedding_pool}")


@dataclass(frozen=True)
class L3Config:
    name: str
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    hop_s: float = 0.1
    center: bool = True
    pooling: str = "mean"

    def __post_init__(self) -> None:
        if not (self.hop_s > 0 and math.isfinite(self.hop_s)):
            raise ValueError(f"hop_s must be a positive number of seconds, got {self.hop_s!r}")
        if self.hop_samples < 1:
            raise ValueError(f"hop_s={self.hop_s} is under one sample at {self.frontend.sample_rate_hz} Hz")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        h, w = self.feature_map
        ph, pw = self.network.embedding_pool
        if h % ph or w % pw:
            raise ValueError(f"{self.name}: embedding pool {ph}x{pw} does not tile the {h}x{w} feature map")

    @property
    def hop_samples(self) -> int:
        """Window hop in model-rate samples, int(hop_s * rate) exactly as openl3/core.py computes it."""
        return int(self.hop_s * self.frontend.sample_rate_hz)

    @property
    def feature_map(self) -> tuple[int, int]:
        """(mel, time) size entering the embedding pool: three floor-halvings of the log-mel."""
        return self.frontend.n_mels // 8, self.frontend.n_frames // 8

    @property
    def dim(self) -> int:
        h, w = self.feature_map
        ph, pw = self.network.embedding_pool
        return (h // ph) * (w // pw) * self.network.channels[3]

    def n_windows(self, samples: int) -> int:
        """Windows OpenL3 cuts from `samples` model-rate samples (centre pad, end pad, >= 1)."""
        length = samples + (self.frontend.window_samples // 2 if self.center else 0)
        over = max(length - self.frontend.window_samples, 0)
        return 1 + -(-over // self.hop_samples)

    def with_options(self, *, hop_s: float | None = None, pooling: str | None = None, center: bool | None = None,
                     frontend: str | None = None) -> L3Config:
        fe = self.frontend
        if frontend is not None and frontend != fe.preset:
            fe = frontend_preset(frontend, sample_rate_hz=fe.sample_rate_hz, n_fft=fe.n_fft,
                                 hop_samples=fe.hop_samples, n_mels=fe.n_mels)
        return replace(self, frontend=fe, hop_s=self.hop_s if hop_s is None else float(hop_s),
                       pooling=self.pooling if pooling is None else pooling,
                       center=self.center if center is None else bool(center))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dim"] = self.dim
        return d

    @classmethod
    def from_dict(cls, d: dict) -> L3Config:
        net = dict(d["network"])
        net["channels"] = tuple(net["channels"])
        net["embedding_pool"] = tuple(net["embedding_pool"])
        return cls(name=d["name"], frontend=FrontendConfig(**d["frontend"]), network=NetworkConfig(**net),
                   hop_s=float(d["hop_s"]), center=bool(d["center"]), pooling=d["pooling"])


def _openl3(n_mels: int, dim: int, pool: tuple[int, int]):
    def build() -> L3Config:
        fe = frontend_preset("openl3-0.4", n_mels=n_mels)
        return L3Config(name=f"l3.mel{n_mels}.{dim}", frontend=fe, network=NetworkConfig(embedding_pool=pool))
    return build


# EdgeL3 SEA: conv widths 64/128/256/512 divided per block by edgel3/models.py `reduction_factor`.
_SEA_REDUCTION = {512: (1, 1, 1, 1), 256: (2, 2, 2, 2), 128: (2, 2, 2, 4), 64: (2, 2, 2, 8)}


def _edgel3_sea(emb_dim: int):
    def build() -> L3Config:
        fe = frontend_preset("kapre-0.1.4", sample_rate_hz=8000, n_fft=1024, hop_samples=160, n_mels=64)
        channels = tuple(c // r for c, r in zip((64, 128, 256, 512), _SEA_REDUCTION[emb_dim]))
        probe = L3Config(name="probe", frontend=fe, network=NetworkConfig(channels=channels, embedding_pool=(1, 1)))
        return L3Config(name=f"edgel3.sea.{emb_dim}", frontend=fe,
                        network=NetworkConfig(channels=channels, embedding_pool=probe.feature_map,
                                              embedding_bn_relu=True))
    return build


PRESETS = {
    # openl3/models.py AUDIO_POOLING_SIZES
    "l3.mel256.6144": _openl3(256, 6144, (8, 8)),
    "l3.mel256.512": _openl3(256, 512, (32, 24)),
    "l3.mel128.6144": _openl3(128, 6144, (4, 8)),
    "l3.mel128.512": _openl3(128, 512, (16, 24)),
    **{f"edgel3.sea.{d}": _edgel3_sea(d) for d in (512, 256, 128, 64)},
}


def preset(name: str) -> L3Config:
    if name not in PRESETS:
        raise ValueError(f"unknown L3 model {name!r}; known: {', '.join(PRESETS)}")
    cfg = PRESETS[name]()
    if cfg.name != name:
        raise AssertionError(f"preset {name} builds {cfg.name}")
    return cfg
