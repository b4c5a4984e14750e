"""Write an ExportPlan to ONNX and read back what the runtime and the engine builder need.

Export uses torch.onnx's TorchScript exporter (dynamo=False): on torch 2.13 it exports the
head's LSTMs as ONNX LSTM ops with a dynamic utterance axis, where the torch.export-based exporter
specialised that axis, and it exports transformer encoders several times faster (docs/deployment.md).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cmer_edge._version import __version__
from cmer_edge.export.plan import META_PREFIX, OPSET, ExportPlan

log = logging.getLogger("cmer_edge")


class OnnxExportError(RuntimeError):
    """The exported graph does not have the interface its plan promises."""


def trace_sizes(plan: ExportPlan) -> dict[str, int]:
    """Axis sizes to trace with: opt, but never 1 where the range allows more (a size-1 axis can
    be folded into a broadcast by the tracer)."""
    return {name: min(a.max, max(a.opt, 2)) for name, a in plan.axes.items()}


def _dynamic_axes(plan: ExportPlan) -> dict[str, dict[int, str]]:
    return {s.name: {i: d for i, d in enumerate(s.dims) if isinstance(d, str)}
            for s in plan.inputs + plan.outputs if any(isinstance(d, str) for d in s.dims)}


def export_plan(plan: ExportPlan, path: str | Path, *, opset: int = OPSET, seed: int = 0) -> Path:
    """Export `plan.module` to `path` (named inputs/outputs, dynamic axes, cmer_edge.* metadata)."""
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if plan.export_fn is not None:
        plan.export_fn(path, opset)
    else:
        _torchscript_export(plan, path, opset, seed)
    model = onnx.load(str(path))
    props = {**plan.onnx_metadata(), f"{META_PREFIX}opset": str(opset), f"{META_PREFIX}precision": "fp32",
             f"{META_PREFIX}cmer_edge_version": __version__, f"{META_PREFIX}torch_version": torch.__version__}
    set_metadata(model, props)
    model.producer_name, model.producer_version = "cmer_edge", __version__
    onnx.save(model, str(path))
    check_interface(path, plan)
    log.info("exported %s -> %s (%.1f MB)", plan.model, path, path.stat().st_size / 1e6)
    return path


def _torchscript_export(plan: ExportPlan, path: Path, opset: int, seed: int) -> None:
    import torch

    feeds = plan.sample_inputs(trace_sizes(plan), np.random.default_rng(seed))
    kwargs = {k: torch.from_numpy(v) for k, v in feeds.items()}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # "legacy exporter": chosen, see above
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*LSTM.*")  # no h0/c0 inputs: safe
        # HF masks index with non-negative indices; parity at several shapes would catch it otherwise
        warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing.*")
        torch.onnx.export(plan.module.eval(), (), str(path), kwargs=kwargs, input_names=plan.input_names,
                          output_names=plan.output_names, dynamic_axes=_dynamic_axes(plan),
                          opset_version=opset, do_constant_folding=True, dynamo=False)


def set_metadata(model: Any, props: dict[str, str]) -> None:
    """Replace/insert metadata_props of an onnx.ModelProto."""
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(path: str | Path) -> dict[str, Any]:
    """cmer_edge.* metadata of an ONNX file, prefix stripped, JSON values decoded. Uses
    onnxruntime (a runtime dependency) so it works where the onnx package is not installed."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    meta = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).get_modelmeta()
    return decode_metadata(meta.custom_metadata_map)


def decode_metadata(props: dict[str, str]) -> dict[str, Any]:
    out = {}
    for key, value in props.items():
        if not key.startswith(META_PREFIX):
            continue
        try:
            out[key[len(META_PREFIX):]] = json.loads(value)
        except json.JSONDecodeError:
            out[key[len(META_PREFIX):]] = value
    return out


def graph_io(path: str | Path) -> dict[str, list[tuple[str, list[int | str]]]]:
    """{"inputs": [(name, dims)], "outputs": [...]} of an ONNX file, dims as ints or axis names."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def dims(value: Any) -> list[int | str]:
        return [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]

    inits = {i.name for i in graph.initializer}
    return {"inputs": [(v.name, dims(v)) for v in graph.input if v.name not in inits],
            "outputs": [(v.name, dims(v)) for v in graph.output]}


def check_interface(path: str | Path, plan: ExportPlan) -> None:
    """The ONNX graph must have exactly the plan's inputs/outputs, in order, with its dims."""
    io = graph_io(path)
    for kind, specs in (("inputs", plan.inputs), ("outputs", plan.outputs)):
        want = [(s.name, list(s.dims)) for s in specs]
        if io[kind] != want:
            raise OnnxExportError(f"{path}: graph {kind} are {io[kind]}, the {plan.model} plan expects {want}")
