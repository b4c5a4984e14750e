"""The L3 extractor over any backend: resample, frame, pool (torch-free).

An L3 graph maps audio [n] at the model rate to per-window embeddings [W, dim]. This class does the
rest of the extractor contract: checks the 16 kHz input, resamples to the model rate
(scipy.signal.resample_poly; OpenL3 itself uses resampy "kaiser_best", which differs slightly),
runs the graph on at most `max_windows_per_call` windows at a time (so a long utterance at a small
hop does not hold hundreds of windows of activations at once), and pools (mean or max) over all
windows. Chunked runs give the same windows as one run: each chunk after the first starts
ceil(half window / hop) windows early, so the graph's leading zero padding falls only on windows
that are then dropped. `RunnerL3Extractor` runs the graph on any `cmer_edge.backends` runner
(TensorRT, ONNX Runtime, PyTorch); `TorchL3Extractor` (extractor.py) holds the module itself.
"""

from __future__ import annotations

import json

import numpy as np

from cmer_edge.audio.convert import PIPELINE_RATE_HZ, resample
from cmer_edge.backends.runners import Runner
from cmer_edge.features.base import MIN_AUDIO_SAMPLES, check_audio, check_output, package_version
from cmer_edge.features.l3.config import L3Config

DEFAULT_MAX_WINDOWS_PER_CALL = 16
INPUT = "audio"  # the graph's input and per-window output (features/l3/onnx_export.py writes them)
WINDOWS_OUTPUT = "window_embeddings"


class L3ExtractorBase:
    """Subclasses implement `_run(audio at model rate) -> [W, dim] float32`."""

    backend = "none"

    def __init__(self, cfg: L3Config, *, weights_sha256: str | None, weights_label: str,
                 max_windows_per_call: int = DEFAULT_MAX_WINDOWS_PER_CALL) -> None:
        if int(max_windows_per_call) < 1:
            raise ValueError(f"max_windows_per_call must be >= 1, got {max_windows_per_call}")
        self.cfg = cfg
        self.name = cfg.name
        self.dim = cfg.dim
        self.min_samples = MIN_AUDIO_SAMPLES  # shorter-than-a-window audio is zero-padded in the graph
        self.weights_sha256 = weights_sha256
        self.weights_label = weights_label
        self.max_windows_per_call = int(max_windows_per_call)

    def _run(self, audio: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def spec(self) -> dict:
        params = self.cfg.to_dict()
        params.update(input_rate_hz=PIPELINE_RATE_HZ, resampler="scipy.signal.resample_poly")
        spec = {"name": self.name, "dim": self.dim, "kind": "l3", "params": params,
                "weights": self.weights_label, "weights_sha256": self.weights_sha256,
                "versions": {"cmer_edge": package_version("cmer_edge")}}
        return json.loads(json.dumps(spec))  # plain JSON types (lists, not tuples): compares equal after a round trip

    def to_model_rate(self, audio: np.ndarray) -> np.ndarray:
        x = check_audio(audio, name=self.name, min_samples=self.min_samples)
        return resample(x, PIPELINE_RATE_HZ, self.cfg.frontend.sample_rate_hz)

    def window_embeddings(self, audio: np.ndarray) -> np.ndarray:
        """16 kHz mono float32 [n] -> per-window embeddings [W, dim] (W = cfg.n_windows)."""
        return self.window_embeddings_at_model_rate(self.to_model_rate(audio))

    def window_embeddings_at_model_rate(self, x: np.ndarray) -> np.ndarray:
        cfg = self.cfg
        total = cfg.n_windows(x.shape[0])
        frame, hop = cfg.frontend.window_samples, cfg.hop_samples
        half = frame // 2 if cfg.center else 0
        lead_max = -(-half // hop)
        per_call = max(self.max_windows_per_call, lead_max)
        if total <= per_call:
            out = self._run(x)
            if out.shape[0] != total:
                raise RuntimeError(f"{self.name}: graph gave {out.shape[0]} windows for {x.shape[0]} samples, "
                                   f"expected {total}")
            return out
        parts = []
        for first in range(0, total, per_call):
            stop = min(total, first + per_call)
            lead = 0 if first == 0 else lead_max
            start = (first - lead) * hop
            length = (lead + stop - first - 1) * hop + frame - half
            out = self._run(np.ascontiguousarray(x[start:start + length]))
            if out.shape[0] < lead + stop - first:
                raise RuntimeError(f"{self.name}: chunk at window {first} gave {out.shape[0]} windows, "
                                   f"needed {lead + stop - first}")
            parts.append(out[lead:lead + stop - first])
        return np.concatenate(parts)

    def pool(self, windows: np.ndarray) -> np.ndarray:
        return windows.max(axis=0) if self.cfg.pooling == "max" else windows.mean(axis=0, dtype=np.float64)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        windows = self.window_embeddings(audio)
        return check_output(self.pool(windows), name=self.name, dim=self.dim, samples=audio.shape[0])


class RunnerL3Extractor(L3ExtractorBase):
    """The L3 extractor contract with the graph on a backend runner: feeds `audio` [samples at the
    model rate], reads `window_embeddings`. `spec` is the extractor spec the graph was made from."""

    def __init__(self, cfg: L3Config, runner: Runner, *, spec: dict,
                 max_windows_per_call: int = DEFAULT_MAX_WINDOWS_PER_CALL) -> None:
        super().__init__(cfg, weights_sha256=spec.get("weights_sha256"), weights_label=spec.get("weights") or "",
                         max_windows_per_call=max_windows_per_call)
        self.runner, self.backend = runner, runner.backend
        self._spec = json.loads(json.dumps(spec))

    def _run(self, audio: np.ndarray) -> np.ndarray:
        return self.runner.run({INPUT: np.ascontiguousarray(audio, dtype=np.float32)})[WINDOWS_OUTPUT]

    def spec(self) -> dict:
        return json.loads(json.dumps(self._spec))
