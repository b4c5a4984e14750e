"""Helpers of the L3 tests: the EdgeL3 weights' place in ../shared and a tiny L3 config."""

from __future__ import annotations

from cmer_edge.features.l3.config import FrontendConfig, L3Config, NetworkConfig

EDGEL3 = "weights/edgel3/edgel3_sea_ust_audio_emb_64.h5.gz"


def small_config(hop_s: float = 0.25, center: bool = True, pooling: str = "mean") -> L3Config:
    """A tiny L3 (8 kHz, 32 mels, 4-8 channels) so forward passes take milliseconds."""
    fe = FrontendConfig(preset="kapre-0.1.4", sample_rate_hz=8000, n_fft=256, hop_samples=64, n_mels=32,
                        mel_scale="htk", mel_input="power_sqrt", padding="same")
    return L3Config(name="l3.small", frontend=fe, network=NetworkConfig(channels=(4, 8, 8, 8), embedding_pool=(2, 5)),
                    hop_s=hop_s, center=center, pooling=pooling)
