"""Run an exported L3/EdgeL3 ONNX graph file with ONNX Runtime (a `RunnerL3Extractor` on an
`OrtRunner`; the live runtime opens the same class on whatever backend it picked).

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

from cmer_edge.backends.runners import OrtRunner
from cmer_edge.features.base import lazy_import
from cmer_edge.features.l3.config import L3Config
from cmer_edge.features.l3.runner import DEFAULT_MAX_WINDOWS_PER_CALL, INPUT, WINDOWS_OUTPUT, RunnerL3Extractor

SPEC_KEY = "cmer_edge.spec"  # same key as onnx_export.SPEC_KEY (that module imports torch)


class OnnxL3Extractor(RunnerL3Extractor):
    """An exported L3 graph file on an ONNX Runtime runner; the spec comes from the graph's metadata."""

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None, providers: list[str] | None = None,
                 max_windows_per_call: int = DEFAULT_MAX_WINDOWS_PER_CALL) -> None:
        lazy_import("onnxruntime", "pip install onnxruntime (or onnxruntime-gpu)")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        try:
            runner = OrtRunner(path, threads=None if threads is None else int(threads),
                               providers=tuple(providers or ["CPUExecutionProvider"]))
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
            raise ValueError(f"cannot load ONNX model {path}: {exc}") from exc
        meta = runner.session.get_modelmeta().custom_metadata_map
        if SPEC_KEY not in meta:
            raise ValueError(f"{path} has no '{SPEC_KEY}' metadata: not an L3 graph exported by cmer_edge")
        spec = json.loads(meta[SPEC_KEY])
        if spec.get("kind") != "l3":
            raise ValueError(f"{path} holds a {spec.get('kind')!r} model, not an L3 audio network")
        if runner.input_names != [INPUT] or WINDOWS_OUTPUT not in runner.output_names:
            raise ValueError(f"{path}: inputs {runner.input_names} / outputs {runner.output_names}, expected "
                             f"[{INPUT!r}] / {WINDOWS_OUTPUT!r}")
        cfg = L3Config.from_dict(spec["params"])
        if cfg.dim != int(spec["dim"]):
            raise ValueError(f"{path}: spec dim {spec['dim']} does not match its config ({cfg.dim})")
        super().__init__(cfg, runner, spec=spec, max_windows_per_call=max_windows_per_call)
        self.path = path
        self.session = runner.session
