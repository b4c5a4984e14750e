"""Export an `L3Embedder` to ONNX (opset 17) and check ONNX Runtime against PyTorch.

Graph: input `audio` float32 [samples] at the model rate (48 kHz OpenL3, 8 kHz EdgeL3), already
resampled; outputs `embedding` float32 [dim] (pooled over windows as the config says) and
`window_embeddings` float32 [windows, dim]. The number of samples, hence of windows, is dynamic.
Metadata `cmer_edge.spec` holds the extractor spec (config, weights sha256) that
`OnnxL3Extractor` rebuilds the extractor from. The torch.onnx (dynamo) exporter writes opset 18;
the file is converted to opset 17 with onnx.version_converter (only the Reduce* axes move).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from cmer_edge.features.l3.model import L3Embedder
from cmer_edge.features.l3.runner import L3ExtractorBase

log = logging.getLogger("cmer_edge")

OPSET = 17
INPUT = "audio"
OUTPUTS = ("embedding", "window_embeddings")
SPEC_KEY = "cmer_edge.spec"


def _to_opset17(proto):
    """onnx.version_converter 18 -> 17, then drop the `noop_with_empty_axes` attribute it leaves on
    Reduce* ops other than ReduceSum (opset 17 does not define it there; 0 is its default)."""
    from onnx import version_converter

    proto = version_converter.convert_version(proto, OPSET)
    for node in proto.graph.node:
        if node.op_type.startswith("Reduce") and node.op_type != "ReduceSum":
            for attr in list(node.attribute):
                if attr.name == "noop_with_empty_axes":
                    if attr.i != 0:
                        raise RuntimeError(f"{node.name}: noop_with_empty_axes=1 has no opset-17 equivalent")
                    node.attribute.remove(attr)
    return proto


def _lengths_for_windows(model: L3Embedder, counts: tuple[int, ...], seed: int) -> list[int]:
    cfg, rng = model.cfg, np.random.default_rng(seed)
    frame, hop = cfg.frontend.window_samples, cfg.hop_samples
    half = frame // 2 if cfg.center else 0
    lengths = []
    for count in counts:
        if count < 1:
            raise ValueError(f"window counts must be >= 1, got {count}")
        if count == 1:
            n = int(rng.integers(max(2, hop // 2), frame - half + 1))
        else:
            n = frame - half + (count - 2) * hop + 1 + int(rng.integers(hop))
        if cfg.n_windows(n) != count:
            raise AssertionError(f"length {n} gives {cfg.n_windows(n)} windows, not {count}")
        lengths.append(n)
    return lengths


def verify_onnx(model: L3Embedder, path: str | os.PathLike, *, window_counts: tuple[int, ...] = (1, 2, 5),
                seed: int = 0, rtol: float = 1e-4, threads: int | None = None) -> list[dict]:
    """Run the ONNX file and the module on fresh random audio giving each window count; raise
    RuntimeError when max |onnx - torch| > rtol * max |torch| (+1e-5) for either output."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed + 1)
    checks = []
    for count, n in zip(window_counts, _lengths_for_windows(model, window_counts, seed)):
        audio = (0.1 * rng.standard_normal(n)).astype(np.float32)
        got = session.run(list(OUTPUTS), {INPUT: audio})
        with torch.inference_mode():
            want = [t.numpy() for t in model(torch.from_numpy(audio))]
        row = {"windows": count, "samples": n}
        for out_name, g, w in zip(OUTPUTS, got, want):
            if g.shape != w.shape:
                raise RuntimeError(f"{path}: {out_name} has shape {g.shape} in ONNX Runtime, {w.shape} in torch")
            err = float(np.abs(g - w).max())
            scale = float(np.abs(w).max())
            row[f"{out_name}_max_abs"] = err
            row[f"{out_name}_max_rel"] = err / max(scale, 1e-12)
            if err > rtol * scale + 1e-5:
                raise RuntimeError(f"{path}: {out_name} differs from torch by {err:.3g} (scale {scale:.3g}) "
                                   f"at {count} windows")
        checks.append(row)
    return checks


def export_onnx(model: L3Embedder, path: str | os.PathLike, *, spec: dict | None = None,
                verify: bool = True, window_counts: tuple[int, ...] = (1, 2, 5), seed: int = 0) -> dict:
    """Write `model` as a single-file ONNX graph (opset 17) at `path`; returns a report with the
    parity checks (run unless verify=False)."""
    import onnx

    model = model.eval()
    cfg = model.cfg
    if spec is None:
        spec = L3ExtractorBase(cfg, weights_sha256=None, weights_label="unknown").spec()
    if spec.get("name") != cfg.name or int(spec.get("dim", -1)) != cfg.dim:
        raise ValueError(f"spec {spec.get('name')}/{spec.get('dim')} does not describe {cfg.name}/{cfg.dim}")
    example = torch.zeros(cfg.frontend.window_samples + 2 * cfg.hop_samples)
    samples = torch.export.Dim("samples", min=2, max=cfg.frontend.sample_rate_hz * 3600)
    program = torch.onnx.export(model, (example,), None, dynamo=True, opset_version=18, input_names=[INPUT],
                                output_names=list(OUTPUTS), dynamic_shapes=({0: samples},), verbose=False)
    proto = _to_opset17(program.model_proto)
    proto.graph.output[1].type.tensor_type.shape.dim[0].dim_param = "windows"
    del proto.metadata_props[:]
    meta = {SPEC_KEY: json.dumps(spec, sort_keys=True), "sample_rate_hz": str(cfg.frontend.sample_rate_hz),
            "dim": str(cfg.dim), "name": cfg.name}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path))
    report = {"path": str(path), "opset": OPSET, "name": cfg.name, "dim": cfg.dim, "checks": []}
    if verify:
        report["checks"] = verify_onnx(model, path, window_counts=window_counts, seed=seed)
    log.info("exported %s to %s (%d checks)", cfg.name, path, len(report["checks"]))
    return report
