"""ONNX Runtime vs PyTorch on fresh random inputs at several shapes (export/verify.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmer_edge.export.plan import ExportPlan

log = logging.getLogger("cmer_edge")


@dataclass(frozen=True)
class Tolerance:
    """Pass when every element has |ort - torch| <= atol + rtol * |torch| (numpy.allclose) and,
    if min_cosine is set, every output row (last axis) has cosine >= min_cosine."""

    atol: float
    rtol: float
    min_cosine: float | None = None


# Reduced-precision variants are judged by closeness of the features, not elementwise bounds.
VARIANT_TOLERANCE = {
    "fp16": Tolerance(atol=5e-2, rtol=5e-2, min_cosine=0.999),
    # a sanity floor only: int8's real cost is measured on MELD text (cmer_edge.export.accuracy)
    # (rtol 0, not inf: inf * a zero output, e.g. after a ReLU, is NaN and fails every comparison)
    "int8": Tolerance(atol=np.inf, rtol=0.0, min_cosine=0.8),
}


@dataclass(frozen=True)
class ParityResult:
    model: str
    output: str
    sizes: dict[str, int]
    max_abs: float
    max_rel: float   # max_abs / max|torch|: the error relative to the output's scale
    min_cosine: float
    ok: bool

    def line(self) -> str:
        shape = ",".join(f"{k}={v}" for k, v in self.sizes.items())
        return (f"{'ok  ' if self.ok else 'FAIL'} {self.model}.{self.output} [{shape}] max_abs={self.max_abs:.3e} "
                f"max_rel={self.max_rel:.3e} min_cos={self.min_cosine:.6f}")


def compare(actual: np.ndarray, expected: np.ndarray, tol: Tolerance) -> tuple[float, float, float, bool]:
    """(max_abs, max_rel, min_cosine, ok) of `actual` against `expected`."""
    if actual.shape != expected.shape:
        return np.inf, np.inf, -1.0, False
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    if not (np.isfinite(a).all() and np.isfinite(e).all()):
        return np.inf, np.inf, -1.0, False
    diff = np.abs(a - e)
    max_abs = float(diff.max(initial=0.0))
    max_rel = max_abs / max(float(np.abs(e).max(initial=0.0)), 1e-30)
    a2, e2 = a.reshape(-1, a.shape[-1]), e.reshape(-1, e.shape[-1])
    norms = np.linalg.norm(a2, axis=1) * np.linalg.norm(e2, axis=1)
    cos = np.where(norms > 0, (a2 * e2).sum(axis=1) / np.maximum(norms, 1e-300), 1.0)
    min_cos = float(cos.min(initial=1.0))
    ok = bool((diff <= tol.atol + tol.rtol * np.abs(e)).all())
    if tol.min_cosine is not None:
        ok = ok and min_cos >= tol.min_cosine
    return max_abs, max_rel, min_cos, ok


def torch_outputs(plan: ExportPlan, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import torch

    module = (plan.reference if plan.reference is not None else plan.module).eval()
    with torch.no_grad():
        out = module(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.detach().float().numpy() for o in outs]


def ort_session(path: str | Path, providers: list[str] | None = None):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])


def verify_onnx(plan: ExportPlan, path: str | Path, *, seed: int, tolerance: Tolerance | None = None,
                sizes: tuple[dict[str, int], ...] | None = None, label: str | None = None) -> list[ParityResult]:
    """Run `path` with ONNX Runtime and the plan's PyTorch reference on the same fresh random
    inputs at each of `sizes` (default: the plan's check sizes); one result per output and shape."""
    tol = tolerance or Tolerance(plan.atol, plan.rtol)
    session = ort_session(path)
    names = [i.name for i in session.get_inputs()]
    if names != plan.input_names:
        raise ValueError(f"{path}: inputs {names} do not match the {plan.model} plan's {plan.input_names}")
    rng = np.random.default_rng(seed)
    results = []
    for size in sizes or plan.check_sizes:
        feeds = plan.sample_inputs(size, rng)
        expected = torch_outputs(plan, feeds)
        actual = session.run(plan.output_names, feeds)
        for name, a, e in zip(plan.output_names, actual, expected, strict=True):
            results.append(ParityResult(label or plan.model, name, dict(size), *compare(a, e, tol)))
            log.debug(results[-1].line())
    return results
