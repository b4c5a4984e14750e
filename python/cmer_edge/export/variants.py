"""Reduced-precision ONNX variants: fp16 (for GPUs; ONNX Runtime CPU runs it slowly) and int8
dynamic quantisation (weights int8, activations quantised at run time: for CPUs).

Both keep float32 inputs/outputs, so a variant is a drop-in replacement for its fp32 graph.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cmer_edge.export.onnx_io import set_metadata
from cmer_edge.export.plan import META_PREFIX

log = logging.getLogger("cmer_edge")
PRECISIONS = ("fp16", "int8")


def variant_path(fp32_path: str | Path, precision: str) -> Path:
    p = Path(fp32_path)
    return p.with_name(f"{p.stem}.{precision}{p.suffix}")


def make_variant(fp32_path: str | Path, precision: str) -> Path:
    """Write the `precision` variant of an fp32 graph next to it and return its path."""
    import onnx


    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    src, out = Path(fp32_path), variant_path(fp32_path, precision)
    if precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    else:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, per_channel=True)
        model = onnx.load(str(out))
    set_metadata(model, {f"{META_PREFIX}precision": precision})
    onnx.save(model, str(out))
    log.info("wrote %s variant %s (%.1f MB)", precision, out, out.stat().st_size / 1e6)
    return out
