"""Reduced-precision ONNX variants: fp16 (for GPUs; ONNX Runtime CPU runs it slowly) and int8
dynamic quantisation (weights int8, activations quantised at run time: for CPUs).

Both keep float32 inputs/outputs, so a variant is a drop-in replacement for its fp32 graph.
int8 can keep chosen MatMuls in fp32 (`int8_keep_fp32`: regular expressions searched in node names,
e.g. `layer\\.\\d+/output/dense` = the FFN output projections of BERT-style encoders). Dynamic
quantisation scales each activation tensor by its own max |x|: where a few channels reach 50-100x
the rest (all-mpnet-base-v2's FFN output projections), the other channels lose
their resolution (docs/benchmarks.md, Encoders).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from cmer_edge.export.onnx_io import set_metadata
from cmer_edge.export.plan import META_PREFIX

log = logging.getLogger("cmer_edge")
PRECISIONS = ("fp16", "int8")


def variant_path(fp32_path: str | Path, precision: str) -> Path:
    p = Path(fp32_path)
    return p.with_name(f"{p.stem}.{precision}{p.suffix}")


def make_variant(fp32_path: str | Path, precision: str, *, int8_keep_fp32: tuple[str, ...] = (),
                 out: str | Path | None = None) -> Path:
    """Write the `precision` variant of an fp32 graph next to it (or to `out`) and return its path.
    int8: MatMul nodes whose name matches one of the regular expressions `int8_keep_fp32` stay
    fp32 (ValueError if one matches no MatMul)."""
    import onnx


    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    src, out = Path(fp32_path), Path(out) if out is not None else variant_path(fp32_path, precision)
    if precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    else:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        keep = _matmuls_matching(onnx.load(str(src), load_external_data=False), int8_keep_fp32)
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=keep)
        model = onnx.load(str(out))
        if keep:
            set_metadata(model, {f"{META_PREFIX}int8_fp32_nodes": json.dumps(keep)})
    set_metadata(model, {f"{META_PREFIX}precision": precision})
    onnx.save(model, str(out))
    log.info("wrote %s variant %s (%.1f MB)", precision, out, out.stat().st_size / 1e6)
    return out


def _matmuls_matching(model, patterns: tuple[str, ...]) -> list[str]:
    names = [n.name for n in model.graph.node if n.op_type == "MatMul"]
    try:
        compiled = [re.compile(p) for p in patterns]
    except re.error as exc:
        raise ValueError(f"--int8-keep-fp32: not a regular expression: {exc}") from None
    unmatched = [c.pattern for c in compiled if not any(c.search(name) for name in names)]
    if unmatched:
        raise ValueError(f"--int8-keep-fp32 {unmatched}: matches no MatMul node (names look like {names[:2]})")
    return [name for name in names if any(c.search(name) for c in compiled)]
