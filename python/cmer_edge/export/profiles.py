"""TensorRT optimisation-profile shapes derived from an exported ONNX graph.

Every dynamic dimension of a graph input is named after an axis whose (min, opt, max) the
exporter wrote into the `cmer_edge.axes` metadata; a profile substitutes those sizes. Overrides
(`--axis tokens=1,32,128`) replace an axis' range, e.g. to build a smaller engine.
"""

from __future__ import annotations

import json
from pathlib import Path

from cmer_edge.export.plan import META_PREFIX, AxisRange

Shapes = dict[str, dict[str, list[int]]]  # input -> {"min": [...], "opt": [...], "max": [...]}


def parse_axis_override(text: str) -> AxisRange:
    """'tokens=1,32,128' -> AxisRange('tokens', 1, 32, 128)."""
    name, _, sizes = text.partition("=")
    parts = sizes.split(",")
    if not name or len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"axis override {text!r} is not NAME=MIN,OPT,MAX (e.g. tokens=1,32,128)")
    return AxisRange(name.strip(), *(int(p) for p in parts))


def onnx_inputs_and_axes(path: str | Path) -> tuple[list[tuple[str, list[int | str]]], dict[str, AxisRange]]:
    """Graph inputs (name, dims) and the axis ranges stored in the graph's metadata."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = [(v.name, [d.dim_param if d.dim_param else d.dim_value for d in v.type.tensor_type.shape.dim])
              for v in model.graph.input if v.name not in inits]
    meta = {p.key: p.value for p in model.metadata_props}
    raw = json.loads(meta.get(f"{META_PREFIX}axes", "{}"))
    return inputs, {name: AxisRange(name, *sizes) for name, sizes in raw.items()}


def profile_shapes(path: str | Path, overrides: list[AxisRange] | tuple[AxisRange, ...] = ()) -> Shapes:
    """{input: {"min", "opt", "max"}} for every input of the graph at `path`."""
    inputs, axes = onnx_inputs_and_axes(path)
    for axis in overrides:
        if axis.name not in axes:
            raise ValueError(f"{path}: no dynamic axis {axis.name!r} to override (axes: {sorted(axes)})")
        axes[axis.name] = axis
    shapes: Shapes = {}
    for name, dims in inputs:
        entry = {"min": [], "opt": [], "max": []}
        for d in dims:
            if isinstance(d, str) and d:
                if d not in axes:
                    raise ValueError(f"{path}: input {name!r} has dynamic axis {d!r} with no range in its "
                                     f"metadata; re-export it with export_onnx.py or pass --axis {d}=MIN,OPT,MAX")
                a = axes[d]
                sizes = (a.min, a.opt, a.max)
            elif isinstance(d, int) and d > 0:
                sizes = (d, d, d)
            else:
                raise ValueError(f"{path}: input {name!r} has an unnamed dynamic dimension; cannot derive a profile")
            for key, size in zip(("min", "opt", "max"), sizes, strict=True):
                entry[key].append(size)
        shapes[name] = entry
    return shapes
