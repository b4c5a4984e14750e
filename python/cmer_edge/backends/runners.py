"""Runners: one model on one backend, numpy in and out by tensor name (`backends.select` picks one).

Each exposes `backend`, `input_names`, `output_names` and `run(feeds) -> outputs`. Torch and
onnxruntime are imported when a runner of that kind is built, never at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Runner(Protocol):
    backend: str
    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class OrtRunner:
    backend = "onnxruntime"

    def __init__(self, path: Path, *, threads: int | None, providers: tuple[str, ...] | None,
                 spin_wait: bool = True) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads, opts.inter_op_num_threads = int(threads), 1
        if not spin_wait:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = ort.get_available_providers()
        chosen = list(providers) if providers else [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), opts, providers=chosen)
        self.providers = self.session.get_providers()
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds), strict=True))


class TensorRTRunner:
    backend = "tensorrt"

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.input_names, self.output_names = engine.input_names, engine.output_names

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.engine.run(feeds)


@dataclass(frozen=True)
class TorchModel:
    """A PyTorch module rebuilt from a bundle, called with keyword inputs named like the exported
    graph's, returning its outputs in `output_names` order (the development fallback)."""

    module: Any
    input_names: list[str]
    output_names: list[str]


class TorchRunner:
    backend = "torch"

    def __init__(self, model: TorchModel) -> None:
        self.module = model.module.eval()
        self.input_names, self.output_names = list(model.input_names), list(model.output_names)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self.module(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()})
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {name: o.float().numpy() for name, o in zip(self.output_names, outs, strict=True)}
