"""ONNX -> TensorRT engine, TensorRT 10 API (export/build_engine.py). Runs on the target device.

Steps: parse the ONNX (trt.OnnxParser on a network from builder.create_network(0): explicit batch
is the only mode in TensorRT 10), one optimisation profile from the graph's axis ranges
(profiles.py), fp16 by default (normalisation layers pinned to fp32, where fp16 LayerNorm loses
accuracy), int8 optionally with an entropy calibrator, a timing cache that persists across builds,
then the engine `<model>.<precision>.trt<ver>.sm<cc>.engine` and its fingerprint JSON.
TensorRT and cuda-python are imported only here, when a build runs.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cmer_edge._version import __version__
from cmer_edge.backends.engine_fingerprint import (
    EngineFingerprint,
    engine_filename,
    fingerprint_path,
    sha256_file,
    short_version,
    sm_of,
)
from cmer_edge.backends.tensorrt_engine import current_device, import_tensorrt
from cmer_edge.export.calibration import make_calibrator
from cmer_edge.export.plan import AxisRange
from cmer_edge.export.profiles import profile_shapes

log = logging.getLogger("cmer_edge")
BUILD_PRECISIONS = ("fp16", "fp32", "int8")


class EngineBuildError(RuntimeError):
    """TensorRT could not parse or build the graph (the message carries the parser's errors)."""


@dataclass(frozen=True)
class EngineBuildConfig:
    precision: str = "fp16"
    workspace_mib: int = 2048
    axes: tuple[AxisRange, ...] = ()          # profile overrides
    timing_cache: Path | None = None          # default: <out_dir>/timing.trt<ver>.sm<cc>.cache
    calibration: tuple[dict[str, np.ndarray], ...] = field(default=(), repr=False)  # int8 batches (opt shapes)
    calibration_cache: Path | None = None
    fp32_normalization: bool = True
    device_id: int = 0

    def __post_init__(self) -> None:
        if self.precision not in BUILD_PRECISIONS:
            raise ValueError(f"precision must be one of {BUILD_PRECISIONS}, got {self.precision!r}")
        if self.workspace_mib < 16:
            raise ValueError(f"workspace_mib must be >= 16, got {self.workspace_mib}")
        if self.precision == "int8" and not self.calibration and not (
                self.calibration_cache and Path(self.calibration_cache).is_file()):
            raise ValueError("int8 needs calibration batches or an existing calibration cache")


def _network(trt, builder, logger, onnx_path: Path):
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f"TensorRT could not parse {onnx_path}: " + " | ".join(errors))
    return network, parser


def _pin_normalization(trt, network) -> int:
    """Run LayerNorm-type layers in fp32 inside an fp16/int8 engine; returns how many."""
    count = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type == trt.LayerType.NORMALIZATION:
            layer.precision = trt.float32
            layer.set_output_type(0, trt.float32)
            count += 1
    return count


def build_engine(onnx_path: str | Path, out_dir: str | Path, model: str,
                 cfg: EngineBuildConfig = EngineBuildConfig()) -> Path:
    """Build and write the engine (+ fingerprint, timing cache); returns the engine path."""
    trt = import_tensorrt()
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = current_device(cfg.device_id)
    shapes = profile_shapes(onnx_path, cfg.axes)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _network(trt, builder, logger, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, cfg.workspace_mib << 20)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        if name not in shapes:
            raise EngineBuildError(f"{onnx_path}: TensorRT sees input {name!r} the graph metadata does not describe")
        s = shapes[name]
        profile.set_shape(name, s["min"], s["opt"], s["max"])
    config.add_optimization_profile(profile)
    flags = []
    if cfg.precision in ("fp16", "int8"):
        if not builder.platform_has_fast_fp16:
            log.warning("this GPU has no fast fp16; the fp16 engine may be slow")
        config.set_flag(trt.BuilderFlag.FP16)
        flags.append("FP16")
        if cfg.fp32_normalization and _pin_normalization(trt, network):
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
            flags.append("OBEY_PRECISION_CONSTRAINTS")
    if cfg.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        flags.append("INT8")
        config.int8_calibrator = make_calibrator(trt, list(cfg.calibration), cfg.calibration_cache)
        config.set_calibration_profile(profile)
    sm, ver = sm_of(device.compute_capability), short_version(device.tensorrt_version)
    cache_path = Path(cfg.timing_cache or out_dir / f"timing.trt{ver}.sm{sm}.cache")
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    log.info("building %s %s engine from %s (profile %s)", model, cfg.precision, onnx_path.name, shapes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build {onnx_path} ({cfg.precision}); see its log above")
    engine_path = out_dir / engine_filename(model, cfg.precision, device.tensorrt_version, device.compute_capability)
    engine_path.write_bytes(bytes(serialized))
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    fp = EngineFingerprint(
        model=model, precision=cfg.precision, tensorrt_version=device.tensorrt_version, gpu_name=device.gpu_name,
        compute_capability=device.compute_capability, onnx_file=onnx_path.name, onnx_sha256=sha256_file(onnx_path),
        engine_sha256=sha256_file(engine_path), profiles=shapes, builder_flags=flags,
        workspace_bytes=cfg.workspace_mib << 20, cmer_edge_version=__version__,
        created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    fingerprint_path(engine_path).write_text(fp.to_json())
    log.info("wrote %s (%.1f MB) + %s", engine_path, engine_path.stat().st_size / 1e6,
             fingerprint_path(engine_path).name)
    return engine_path
