"""Backend selection: TensorRT -> ONNX Runtime -> PyTorch, chosen per model (DESIGN.md §6).

    runner, choice = open_runner(bundle, "text_encoder", BackendConfig(backend="auto"), torch_model=build)
    runner.run({"input_ids": ids, "attention_mask": mask})["features"]
    print(choice.summary())   # text_encoder: onnxruntime (onnx/text_encoder.onnx); skipped tensorrt: ...

"auto" takes the first backend that can run the model here: TensorRT when the tensorrt and
cuda-python packages, a CUDA GPU and a matching engine (bundle/engines, fingerprint checked) are
present; else ONNX Runtime on the bundle's exported graph; else PyTorch (development fallback:
`torch_model(bundle)` rebuilds the module; the layers above pass it, see runtime/backends.py). A named backend ("tensorrt", "onnxruntime", "torch", or
$CMER_EDGE_BACKEND) is used or fails with the reason. Importing this module does not import torch,
TensorRT or onnxruntime; torch is imported only when the torch backend is chosen.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from cmer_edge.backends.engine_fingerprint import EngineMismatchError, find_engine, sm_of
from cmer_edge.backends.runners import OrtRunner, Runner, TensorRTRunner, TorchModel, TorchRunner
from cmer_edge.backends.tensorrt_engine import TensorRTEngine, TensorRTUnavailable, current_device
from cmer_edge.bundle import Bundle, ModelNotInBundle

log = logging.getLogger("cmer_edge")
BACKENDS = ("tensorrt", "onnxruntime", "torch")
ENV_BACKEND = "CMER_EDGE_BACKEND"
ONNX_PRECISIONS = ("fp32", "fp16", "int8")


class BackendUnavailable(RuntimeError):
    """No (or not the requested) backend can run a model here; `reasons` says why per backend."""

    def __init__(self, message: str, reasons: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or {}


@dataclass(frozen=True)
class BackendConfig:
    """backend: "auto" or one of BACKENDS. onnx_precision: which exported graph ONNX Runtime runs
    (fp32, or an fp16/int8 variant; None: the bundle's choice, manifest runtime.onnx_precision.<model>,
    else fp32). engine_precision: the TensorRT engine to prefer (default fp16,
    then int8, then fp32). engine_dir: default <bundle>/engines. threads: ONNX Runtime intra-op
    threads (None: its default). providers: ONNX Runtime providers (default CUDA if present, CPU)."""

    backend: str = "auto"
    onnx_precision: str | None = None
    engine_precision: str | None = None
    engine_dir: str | None = None
    threads: int | None = None
    device_id: int = 0
    providers: tuple[str, ...] | None = None
    spin_wait: bool = True

    def __post_init__(self) -> None:
        if self.backend not in ("auto", *BACKENDS):
            raise ValueError(f"backend must be 'auto' or one of {BACKENDS}, got {self.backend!r}")
        if self.onnx_precision is not None and self.onnx_precision not in ONNX_PRECISIONS:
            raise ValueError(f"onnx_precision must be one of {ONNX_PRECISIONS}, got {self.onnx_precision!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    @classmethod
    def from_env(cls, **overrides: Any) -> "BackendConfig":
        """Defaults < $CMER_EDGE_BACKEND < explicit overrides (None values are ignored)."""
        values: dict[str, Any] = {}
        if os.environ.get(ENV_BACKEND):
            values["backend"] = os.environ[ENV_BACKEND].strip().lower()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True)
class BackendChoice:
    model: str
    backend: str
    artefact: str
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        text = f"{self.model}: {self.backend} ({self.artefact})"
        return text + "".join(f"; skipped {name}: {why}" for name, why in self.skipped.items())


TorchBuilder = Callable[[Bundle], TorchModel]


def _open_tensorrt(bundle: Bundle, model: str, cfg: BackendConfig, torch_model: TorchBuilder | None
                   ) -> tuple[Runner, str]:
    for package in ("tensorrt", "cuda"):
        if importlib.util.find_spec(package) is None:
            raise BackendUnavailable(f"the {'cuda-python' if package == 'cuda' else package} package is not installed")
    try:
        device = current_device(cfg.device_id)
    except TensorRTUnavailable as exc:
        raise BackendUnavailable(str(exc)) from exc
    engine_dir = Path(cfg.engine_dir) if cfg.engine_dir else bundle.path / "engines"
    path = find_engine(engine_dir, model, device, precision=cfg.engine_precision)
    if path is None:
        raise BackendUnavailable(f"no {model} engine for TensorRT {device.tensorrt_version} on sm"
                                 f"{sm_of(device.compute_capability)} in {engine_dir} "
                                 f"(build it: python export/build_engine.py {bundle.path})")
    try:
        engine = TensorRTEngine(path, device_id=cfg.device_id, onnx_sha256=bundle.sha256(f"onnx.{model}"))
    except EngineMismatchError as exc:
        log.warning("%s", exc)
        raise BackendUnavailable(str(exc)) from exc
    return TensorRTRunner(engine), str(path)


def onnx_precision_for(bundle: Bundle, model: str, cfg: BackendConfig) -> str:
    """The requested precision, else the one the bundle ships for `model`, else fp32."""
    if cfg.onnx_precision is not None:
        return cfg.onnx_precision
    return bundle.manifest.onnx_precision(model)


def _open_onnxruntime(bundle: Bundle, model: str, cfg: BackendConfig, torch_model: TorchBuilder | None
                      ) -> tuple[Runner, str]:
    precision = onnx_precision_for(bundle, model, cfg)
    role = f"onnx.{model}" if precision == "fp32" else f"onnx.{model}.{precision}"
    if not bundle.has(role):
        variants = "" if precision == "fp32" else f" --variants {precision}"
        raise BackendUnavailable(f"bundle has no {role} graph (export it: python export/export_onnx.py "
                                 f"{bundle.path}{variants})")
    if importlib.util.find_spec("onnxruntime") is None:
        raise BackendUnavailable("onnxruntime is not installed (pip install onnxruntime)")
    path = bundle.file(role)
    runner = OrtRunner(path, threads=cfg.threads, providers=cfg.providers, spin_wait=cfg.spin_wait)
    return runner, str(path.relative_to(bundle.path))


def _open_torch(bundle: Bundle, model: str, cfg: BackendConfig, torch_model: TorchBuilder | None
                ) -> tuple[Runner, str]:
    if importlib.util.find_spec("torch") is None:
        raise BackendUnavailable("PyTorch is not installed (development fallback: pip install torch==2.13.0)")
    if torch_model is None:
        raise BackendUnavailable(f"no PyTorch rebuild of {model!r} was given")
    try:
        rebuilt = torch_model(bundle)
    except ModelNotInBundle as exc:
        raise BackendUnavailable(str(exc)) from exc
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    return TorchRunner(rebuilt), "PyTorch, rebuilt from the bundle"


_OPENERS = {"tensorrt": _open_tensorrt, "onnxruntime": _open_onnxruntime, "torch": _open_torch}


def open_runner(bundle: Bundle, model: str, config: BackendConfig | None = None, *,
                torch_model: TorchBuilder | None = None) -> tuple[Runner, BackendChoice]:
    """A runner for `model` ("text_encoder", "audio_encoder", "head") and why it was chosen.
    `torch_model` rebuilds the PyTorch module for the torch backend (none given: torch is skipped)."""
    cfg = config or BackendConfig.from_env()
    order = BACKENDS if cfg.backend == "auto" else (cfg.backend,)
    skipped: dict[str, str] = {}
    for name in order:
        try:
            runner, artefact = _OPENERS[name](bundle, model, cfg, torch_model)
        except BackendUnavailable as exc:
            skipped[name] = str(exc)
            continue
        choice = BackendChoice(model, name, artefact, skipped)
        log.info("%s", choice.summary())
        return runner, choice
    detail = "; ".join(f"{name}: {why}" for name, why in skipped.items())
    raise BackendUnavailable(f"cannot run {model} of {bundle.path} with backend {cfg.backend!r}: {detail}", skipped)


def backend_availability() -> dict[str, dict[str, Any]]:
    """What this machine offers, without importing torch (for `python -m cmer_edge`)."""
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    info: dict[str, dict[str, Any]] = {}
    trt = {"available": False, "version": version("tensorrt") or version("tensorrt-cu12")}
    if importlib.util.find_spec("tensorrt") is None:
        trt["reason"] = "tensorrt package not installed"
    elif importlib.util.find_spec("cuda") is None:
        trt["reason"] = "cuda-python not installed"
    else:
        try:
            device = current_device()
            trt.update(available=True, version=device.tensorrt_version, gpu=device.gpu_name,
                       compute_capability=device.compute_capability)
        except (TensorRTUnavailable, RuntimeError) as exc:
            trt["reason"] = str(exc)
    info["tensorrt"] = trt
    ort = {"available": importlib.util.find_spec("onnxruntime") is not None, "version": version("onnxruntime")
           or version("onnxruntime-gpu")}
    if ort["available"]:
        import onnxruntime

        ort["providers"] = onnxruntime.get_available_providers()
    info["onnxruntime"] = ort
    info["torch"] = {"available": importlib.util.find_spec("torch") is not None, "version": version("torch"),
                     "role": "development fallback"}
    info["default"] = os.environ.get(ENV_BACKEND, "auto")
    return info
