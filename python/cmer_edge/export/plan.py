"""What an exporter hands to the ONNX writer, the parity check and the engine builder. Torch-free."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# One ONNX opset for every model: LayerNormalization is native from 17, and TensorRT 10 (JetPack
# 6.x ships 10.3) and onnxruntime >= 1.14 support it.
OPSET = 17
META_PREFIX = "cmer_edge."
DTYPES = ("float32", "int64")


@dataclass(frozen=True)
class AxisRange:
    """A dynamic axis and the sizes it must support: min <= opt <= max (opt = the size TensorRT
    tunes for)."""

    name: str
    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not (isinstance(self.min, int) and 1 <= self.min <= self.opt <= self.max):
            raise ValueError(f"axis {self.name!r}: need 1 <= min <= opt <= max, got "
                             f"({self.min}, {self.opt}, {self.max})")


@dataclass(frozen=True)
class TensorSpec:
    """A named graph input or output; dims are ints (fixed) or axis names (dynamic)."""

    name: str
    dtype: str
    dims: tuple[int | str, ...]

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"tensor {self.name!r}: dtype must be one of {DTYPES}, got {self.dtype!r}")

    def shape(self, sizes: dict[str, int]) -> tuple[int, ...]:
        """Concrete shape for the axis sizes `sizes`."""
        try:
            return tuple(d if isinstance(d, int) else int(sizes[d]) for d in self.dims)
        except KeyError as exc:
            raise ValueError(f"tensor {self.name!r}: no size given for axis {exc.args[0]!r}") from None


InputSampler = Callable[[dict[str, int], np.random.Generator], dict[str, np.ndarray]]


@dataclass
class ExportPlan:
    """One model ready to export.

    module: the torch module written to ONNX (called with the inputs as keyword arguments).
    reference: what parity is checked against (the original module; defaults to `module`).
    sample_inputs(sizes, rng): fresh random inputs for the axis sizes `sizes`.
    check_sizes: the axis sizes verification runs at (several shapes, ranges' extremes included).
    """

    model: str
    module: Any
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    axes: dict[str, AxisRange]
    sample_inputs: InputSampler
    check_sizes: tuple[dict[str, int], ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    reference: Any = None
    atol: float = 1e-4
    rtol: float = 1e-4
    # role -> (file name, writer(path)): artefacts the runtime needs next to the graph (the tokenizer)
    extra_files: dict[str, tuple[str, Callable[[Any], None]]] = field(default_factory=dict)
    # writes the graph itself when the model has its own exporter (export_fn(path, opset));
    # default: torch.onnx's TorchScript exporter (onnx_io.export_plan)
    export_fn: Callable[[Any, int], None] | None = None

    def __post_init__(self) -> None:
        for spec in self.inputs + self.outputs:
            for d in spec.dims:
                if isinstance(d, str) and d not in self.axes:
                    raise ValueError(f"{self.model}: tensor {spec.name!r} uses axis {d!r} with no range "
                                     f"(axes: {sorted(self.axes)})")
        for sizes in self.check_sizes:
            for name, size in sizes.items():
                axis = self.axes[name]
                if not axis.min <= size <= axis.max:
                    raise ValueError(f"{self.model}: check size {name}={size} outside [{axis.min}, {axis.max}]")

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    def opt_sizes(self) -> dict[str, int]:
        return {name: axis.opt for name, axis in self.axes.items()}

    def onnx_metadata(self) -> dict[str, str]:
        """metadata_props of the exported graph: every value a string (JSON for structures)."""
        props = {f"{META_PREFIX}{k}": v if isinstance(v, str) else json.dumps(v, sort_keys=True)
                 for k, v in self.metadata.items()}
        props[f"{META_PREFIX}model"] = self.model
        props[f"{META_PREFIX}axes"] = json.dumps(
            {a.name: [a.min, a.opt, a.max] for a in self.axes.values()}, sort_keys=True)
        return props
