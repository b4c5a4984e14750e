"""Bundle-level export and verification: what export/export_onnx.py and export/verify.py run.

Artefacts land inside the bundle and are registered in its manifest (with sha256):
  onnx/<model>.onnx             role "onnx.<model>"             (model: head, text_encoder, audio_encoder)
  onnx/<model>.<prec>.onnx      role "onnx.<model>.<prec>"      (prec: fp16, int8; optional)
  text_tokenizer.json           role "text_tokenizer"           (fast tokenizer of the text encoder)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from cmer_edge.bundle import Bundle, BundleError, add_artifacts, load_bundle
from cmer_edge.export.onnx_io import export_plan
from cmer_edge.export.parity import VARIANT_TOLERANCE, ParityResult, verify_onnx
from cmer_edge.export.plan import OPSET
from cmer_edge.export.registry import NotExportable, exporter_names, plan_for
from cmer_edge.export.variants import PRECISIONS, make_variant

log = logging.getLogger("cmer_edge")
ONNX_DIR = "onnx"


def onnx_role(model: str, precision: str = "fp32") -> str:
    return f"onnx.{model}" if precision == "fp32" else f"onnx.{model}.{precision}"


@dataclass
class ExportReport:
    exported: dict[str, Path] = field(default_factory=dict)   # role -> file
    skipped: dict[str, str] = field(default_factory=dict)     # model -> reason


def _models(models: list[str] | None) -> list[str]:
    names = exporter_names()
    for m in models or []:
        if m not in names:
            raise ValueError(f"unknown model {m!r} (known: {', '.join(names)})")
    return list(models) if models else names


def export_bundle(bundle_path: str | Path, *, models: list[str] | None = None,
                  variants: tuple[str, ...] = (), opset: int = OPSET,
                  int8_keep_fp32: tuple[str, ...] = ()) -> ExportReport:
    """Export every requested model the bundle has to ONNX inside the bundle (see module doc).
    int8_keep_fp32: MatMul node-name substrings the int8 variant keeps in fp32 (text encoder only)."""
    for v in variants:
        if v not in PRECISIONS:
            raise ValueError(f"variant must be one of {PRECISIONS}, got {v!r}")
    wanted = _models(models)
    bundle = load_bundle(bundle_path)
    report = ExportReport()
    for model in wanted:
        try:
            plan = plan_for(bundle, model)
        except NotExportable as exc:
            report.skipped[model] = str(exc)
            log.info("skipping %s: %s", model, exc)
            continue
        rel = f"{ONNX_DIR}/{model}.onnx"
        export_plan(plan, bundle.path / rel, opset=opset)
        files = {onnx_role(model): rel}
        for role, (name, write) in plan.extra_files.items():
            write(bundle.path / name)
            files[role] = name
        for precision in variants:
            keep = tuple(int8_keep_fp32) if model == "text_encoder" else ()
            files[onnx_role(model, precision)] = make_variant(bundle.path / rel, precision,
                                                              int8_keep_fp32=keep).relative_to(bundle.path).as_posix()
        bundle = add_artifacts(bundle.path, files)
        report.exported.update({role: bundle.path / name for role, name in files.items()})
    if not any(r.startswith("onnx.") for r in report.exported):
        raise BundleError(f"nothing to export in {bundle.path}: {report.skipped}")
    return report


def verify_bundle(bundle_path: str | Path, *, seed: int, models: list[str] | None = None) -> list[ParityResult]:
    """Parity of every exported graph of the bundle (fp32 and variants) against PyTorch."""
    bundle: Bundle = load_bundle(bundle_path)
    files = bundle.manifest.files
    results = []
    for model in _models(models):
        roles = [(p, onnx_role(model, p)) for p in ("fp32", *PRECISIONS) if onnx_role(model, p) in files]
        if not roles:
            if models:
                raise BundleError(f"bundle {bundle.path} has no exported {model} (run export_onnx.py first)")
            continue
        plan = plan_for(bundle, model)
        for precision, role in roles:
            tol = VARIANT_TOLERANCE.get(precision)
            label = model if precision == "fp32" else f"{model}[{precision}]"
            results += verify_onnx(plan, bundle.file(role), seed=seed, tolerance=tol, label=label)
    if not results:
        raise BundleError(f"bundle {bundle.path} has no exported ONNX graphs (run export_onnx.py first)")
    return results
