"""The PyTorch L3 extractor (offline extraction, export, development fallback of the runtime).

    ext = TorchL3Extractor.from_name("edgel3.sea.64", weights="edgel3_sea_ust_audio_emb_64.h5.gz")
    ext = TorchL3Extractor.from_name("l3.mel256.6144", weights="openl3_audio_mel256_music.h5", hop_s=0.5)
    ext = TorchL3Extractor.from_name("l3.mel256.6144", weights="random")   # real shape, random init
    ext(audio_16k)  -> float32 [dim];  ext.export_onnx("l3.onnx") for the torch-free runtime

Torch threads are left to the caller (torch.set_num_threads); inference runs under inference_mode.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from cmer_edge.features.l3.config import L3Config, preset
from cmer_edge.features.l3.keras_h5 import LoadReport, load_keras_weights
from cmer_edge.features.l3.model import L3Embedder, build_embedder
from cmer_edge.features.l3.runner import DEFAULT_MAX_WINDOWS_PER_CALL, L3ExtractorBase

log = logging.getLogger("cmer_edge")


class TorchL3Extractor(L3ExtractorBase):
    backend = "torch"

    def __init__(self, model: L3Embedder, *, weights_sha256: str | None, weights_label: str,
                 max_windows_per_call: int = DEFAULT_MAX_WINDOWS_PER_CALL) -> None:
        super().__init__(model.cfg, weights_sha256=weights_sha256, weights_label=weights_label,
                         max_windows_per_call=max_windows_per_call)
        self.model = model.eval()
        self.load_report: LoadReport | None = None

    @classmethod
    def from_config(cls, cfg: L3Config, *, weights: str | os.PathLike | None, seed: int = 0,
                    max_windows_per_call: int = DEFAULT_MAX_WINDOWS_PER_CALL) -> TorchL3Extractor:
        """`weights`: a Keras .h5/.h5.gz path, or "random" (seeded random init of the real shape)."""
        model = build_embedder(cfg, seed=seed)
        if weights is None:
            raise ValueError(
                f"{cfg.name} needs weights=: a Keras .h5[.gz] file (see cmer_edge.features.l3.weights for the "
                "download URLs) or weights='random' for a random-init network (tests, benchmarks, export checks)")
        if isinstance(weights, str) and weights == "random":
            log.warning("%s: random-init weights (seed %d): the embedding is not a trained feature", cfg.name, seed)
            return cls(model, weights_sha256=None, weights_label=f"random(seed={seed})",
                       max_windows_per_call=max_windows_per_call)
        report = load_keras_weights(model, weights)
        ext = cls(model, weights_sha256=report.sha256, weights_label=Path(weights).name,
                  max_windows_per_call=max_windows_per_call)
        ext.load_report = report
        return ext

    @classmethod
    def from_name(cls, name: str, *, weights: str | os.PathLike | None = None, hop_s: float | None = None,
                  pooling: str | None = None, center: bool | None = None, frontend: str | None = None,
                  seed: int = 0, max_windows_per_call: int = DEFAULT_MAX_WINDOWS_PER_CALL) -> TorchL3Extractor:
        cfg = preset(name).with_options(hop_s=hop_s, pooling=pooling, center=center, frontend=frontend)
        return cls.from_config(cfg, weights=weights, seed=seed, max_windows_per_call=max_windows_per_call)

    def _run(self, audio: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            _, windows = self.model(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))
        return windows.numpy()

    def export_onnx(self, path: str | os.PathLike, **kwargs) -> dict:
        """Export this network (windowing to pooled embedding) to ONNX; see `l3.onnx_export.export_onnx`."""
        from cmer_edge.features.l3.onnx_export import export_onnx

        return export_onnx(self.model, path, spec=self.spec(), **kwargs)
