"""Encoder backends as the runtime uses them: `backends.select` with the PyTorch fallback of each
model wired in, per bundle what each encoder gets, and `python -m cmer_edge backends`.

    runner, choice = open_runner(bundle, "text_encoder", BackendConfig(backend="auto"))
    runner.run({"input_ids": ids, "attention_mask": mask})["features"]
    print(choice.summary())   # text_encoder: onnxruntime (onnx/text_encoder.onnx); skipped tensorrt: ...

Selection, configuration and runners live in `cmer_edge.backends` (re-exported here). Importing
this module does not import torch, TensorRT or onnxruntime.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cmer_edge.backends.runners import Runner
from cmer_edge.backends.select import (  # noqa: F401  (the runtime's backend API, re-exported)
    BACKENDS,
    ENV_BACKEND,
    ONNX_PRECISIONS,
    BackendChoice,
    BackendConfig,
    BackendUnavailable,
    backend_availability,
    onnx_precision_for,
)
from cmer_edge.backends.select import open_runner as _open_runner
from cmer_edge.backends.torch_models import head_torch_model
from cmer_edge.bundle import Bundle, BundleError, load_bundle
from cmer_edge.features.from_bundle import l3_torch_model, text_torch_model

TORCH_MODELS = {"head": head_torch_model, "text_encoder": text_torch_model, "audio_encoder": l3_torch_model}


def open_runner(bundle: Bundle, model: str, config: BackendConfig | None = None) -> tuple[Runner, BackendChoice]:
    """A runner for `model` ("text_encoder", "audio_encoder", "head") and why it was chosen."""
    return _open_runner(bundle, model, config, torch_model=TORCH_MODELS.get(model))


def describe_bundle(bundle: Bundle, config: BackendConfig | None = None) -> dict[str, BackendChoice | str]:
    """The backend each encoder of `bundle` gets (opening it), or why none can run it."""
    out: dict[str, BackendChoice | str] = {}
    features = bundle.manifest.features
    wanted = [m for m, present in (("text_encoder", bundle.head_config.uses_text and features.text is not None),
                                   ("audio_encoder", bundle.head_config.uses_audio and features.audio is not None
                                    and features.audio.has_kind("l3")))
              if present]
    for model in wanted:
        try:
            out[model] = open_runner(bundle, model, config)[1]
        except BackendUnavailable as exc:
            out[model] = str(exc)
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m cmer_edge.runtime.backends [BUNDLE]`: what this machine offers and, for a
    bundle, the backend each encoder gets. Exit 1 if an encoder has none, 2 for a bad bundle."""
    parser = argparse.ArgumentParser(prog="python -m cmer_edge.runtime.backends", description=main.__doc__,
                                     epilog="example: python -m cmer_edge.runtime.backends /opt/cmer_edge/bundle")
    parser.add_argument("bundle", nargs="?")
    parser.add_argument("--backend", choices=["auto", *BACKENDS], help=f"default: ${ENV_BACKEND} or auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"available": backend_availability()}
    if args.bundle:
        try:
            bundle = load_bundle(args.bundle)
        except BundleError as exc:
            print(f"error: {exc}", flush=True)
            return 2
        choices = describe_bundle(bundle, BackendConfig.from_env(backend=args.backend))
        report["encoders"] = {m: c.summary() if isinstance(c, BackendChoice) else f"none: {c}"
                              for m, c in choices.items()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, info in report["available"].items():
            print(f"{name:12s} {info}")
        for model, line in report.get("encoders", {}).items():
            print(line if not line.startswith("none:") else f"{model}: {line}")
    return 1 if any(v.startswith("none:") for v in report.get("encoders", {}).values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
