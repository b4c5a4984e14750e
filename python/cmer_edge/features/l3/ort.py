"""Run an exported L3/EdgeL3 ONNX graph with ONNX Runtime: the live runtime's L3 extractor.

Imports numpy, scipy (resampling) and onnxruntime only, never torch. The graph file carries its
own spec (metadata `cmer_edge.spec`, written by `l3.onnx_export.export_onnx`), so

    ext = OnnxL3Extractor("edgel3.sea.64.onnx", threads=2)
    ext.name, ext.dim, ext.spec()          # the same spec as the PyTorch extractor it came from
    ext(audio_16k) -> float32 [dim]

gives the same features as `TorchL3Extractor` (max abs difference ~1e-6, tests/test_l3_onnx.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from cmer_edge.features.base import lazy_import
from cmer_edge.features.l3.config import L3Config
from cmer_edge.features.l3.runner import DEFAULT_MAX_WINDOWS_PER_CALL, L3ExtractorBase

SPEC_KEY = "cmer_edge.spec"  # same key as onnx_export.SPEC_KEY (that module imports torch)
INPUT = "audio"
WINDOWS_OUTPUT = "window_embeddings"


class OnnxL3Extractor(L3ExtractorBase):
    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None, providers: list[str] | None = None,
                 max_windows_per_call: int = DEFAULT_MAX_WINDOWS_PER_CALL) -> None:
        ort = lazy_import("onnxruntime", "pip install onnxruntime (or onnxruntime-gpu)")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        opts = ort.SessionOptions()
        if threads is not None:
            if int(threads) < 1:
                raise ValueError(f"threads must be >= 1, got {threads}")
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
            raise ValueError(f"cannot load ONNX model {path}: {exc}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if SPEC_KEY not in meta:
            raise ValueError(f"{path} has no '{SPEC_KEY}' metadata: not an L3 graph exported by cmer_edge")
        spec = json.loads(meta[SPEC_KEY])
        if spec.get("kind") != "l3":
            raise ValueError(f"{path} holds a {spec.get('kind')!r} model, not an L3 audio network")
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [INPUT] or WINDOWS_OUTPUT not in outputs:
            raise ValueError(f"{path}: inputs {inputs} / outputs {outputs}, expected [{INPUT!r}] / {WINDOWS_OUTPUT!r}")
        cfg = L3Config.from_dict(spec["params"])
        if cfg.dim != int(spec["dim"]):
            raise ValueError(f"{path}: spec dim {spec['dim']} does not match its config ({cfg.dim})")
        super().__init__(cfg, weights_sha256=spec.get("weights_sha256"), weights_label=spec.get("weights", "unknown"),
                         max_windows_per_call=max_windows_per_call)
        self.path = path
        self._spec = spec

    def spec(self) -> dict:
        return json.loads(json.dumps(self._spec))

    def _run(self, audio: np.ndarray) -> np.ndarray:
        (windows,) = self.session.run([WINDOWS_OUTPUT], {INPUT: np.ascontiguousarray(audio, dtype=np.float32)})
        return windows
