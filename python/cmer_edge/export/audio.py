"""ONNX exporter of the L3 audio network (dynamic number of samples, hence of windows).

The graph is cmer_edge.features.l3's own export (features/l3/onnx_export.py: input `audio`
[samples] at the model rate, outputs `embedding` [dim] and `window_embeddings` [windows, dim],
metadata `cmer_edge.spec`), so `OnnxL3Extractor` runs it unchanged; this exporter adds the
cmer_edge.* axis ranges TensorRT profiles are derived from, labels and sample rate, and checks it
like every other graph. The bundle's features.audio is an extractor spec (a chain such as
opensmile.emo_large+l3.mel256.6144, or one L3 part) whose L3 part names its weights: a Keras
.h5[.gz] (in the bundle or at $CMER_EDGE_L3_WEIGHTS; checked against the spec's sha256) or
"random(seed=N)".
"""

from __future__ import annotations

import numpy as np

from cmer_edge.bundle import Bundle
from cmer_edge.export.plan import AxisRange, ExportPlan, TensorSpec
from cmer_edge.features.from_bundle import WEIGHTS_ENV, l3_spec_of, load_l3_module  # noqa: F401
from cmer_edge.features.l3.runner import DEFAULT_MAX_WINDOWS_PER_CALL

def sample_ranges(cfg, max_windows_per_call: int) -> tuple[int, int]:
    """(opt, max) samples per graph call of the chunked runner (features/l3/runner.py): a full
    chunk of `max_windows_per_call` windows, plus the lead-in windows of later chunks for max."""
    frame, hop = cfg.frontend.window_samples, cfg.hop_samples
    half = frame // 2 if cfg.center else 0
    lead = -(-half // hop)
    opt = (max_windows_per_call - 1) * hop + frame - half
    return opt, (lead + max_windows_per_call - 1) * hop + frame - half


def plan_audio_encoder(bundle: Bundle) -> ExportPlan:
    from cmer_edge.features.l3.onnx_export import export_onnx

    spec = l3_spec_of(bundle)
    model = load_l3_module(bundle, spec)
    cfg = model.cfg
    opt, top = sample_ranges(cfg, DEFAULT_MAX_WINDOWS_PER_CALL)
    axes = {"samples": AxisRange("samples", 2, opt, top),
            "windows": AxisRange("windows", 1, cfg.n_windows(opt), cfg.n_windows(top))}

    def sample(sizes: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"audio": (0.1 * rng.standard_normal(sizes["samples"])).astype(np.float32)}

    def write(path, opset: int) -> None:
        if opset != 17:
            raise ValueError(f"the L3 exporter writes opset 17 only, not {opset}")
        export_onnx(model, path, spec=spec, verify=False)

    one_window = max(2, cfg.frontend.window_samples // 2 - cfg.hop_samples)
    return ExportPlan(
        model="audio_encoder", module=model, reference=model,
        inputs=(TensorSpec("audio", "float32", ("samples",)),),
        outputs=(TensorSpec("embedding", "float32", (cfg.dim,)),
                 TensorSpec("window_embeddings", "float32", ("windows", cfg.dim))),
        axes=axes, sample_inputs=sample,
        check_sizes=({"samples": 2}, {"samples": one_window}, {"samples": opt}, {"samples": top}),
        metadata={"labels": list(bundle.labels), "feature": spec, "sample_rate_hz": cfg.frontend.sample_rate_hz,
                  "input_rate_hz": spec["params"].get("input_rate_hz", 16000),
                  "max_windows_per_call": DEFAULT_MAX_WINDOWS_PER_CALL, "bundle": bundle.manifest.name},
        atol=1e-4, rtol=1e-3, export_fn=write)
