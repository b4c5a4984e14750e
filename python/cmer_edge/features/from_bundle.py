"""PyTorch modules of a bundle's encoders, rebuilt from its manifest: the text encoder (a Hugging
Face id or a directory inside the bundle) and the L3 network (weights in the bundle, at
$CMER_EDGE_L3_WEIGHTS, or seeded random init). Used by the exporters and by the runtime's PyTorch
fallback; importing this module does not import torch. `ModelNotInBundle` when there is none.
"""

from __future__ import annotations

import os
import re
from dataclasses import fields
from pathlib import Path

from cmer_edge.backends.runners import TorchModel
from cmer_edge.bundle import Bundle, BundleError, ModelNotInBundle
from cmer_edge.bundle.manifest import thaw
from cmer_edge.features.l3.config import L3Config
from cmer_edge.features.text import TextEncoderSpec, load_text_encoder


def text_spec_of(bundle: Bundle):
    """(TextEncoderSpec, model path or None) from the bundle's features.text."""
    if not bundle.head_config.uses_text:
        raise ModelNotInBundle(f"bundle {bundle.path} is audio-only: no text encoder")
    text = bundle.manifest.features.text
    raw = thaw(text.raw) if text is not None else None
    if raw is None or "model" not in raw:
        raise ModelNotInBundle(f"bundle {bundle.path} has no features.text encoder spec with a 'model'")
    known = {f.name for f in fields(TextEncoderSpec)}
    spec = TextEncoderSpec(**{k: v for k, v in raw.items() if k in known})
    local = bundle.path / spec.model
    return spec, (str(local) if local.is_dir() else None)


_RANDOM = re.compile(r"random\(seed=(\d+)\)")
WEIGHTS_ENV = "CMER_EDGE_L3_WEIGHTS"


def l3_spec_of(bundle: Bundle) -> dict:
    """The L3 part of the bundle's audio extractor spec; ModelNotInBundle when there is none."""
    if not bundle.head_config.uses_audio:
        raise ModelNotInBundle(f"bundle {bundle.path} is text-only: no audio encoder")
    spec = bundle.manifest.features.audio
    l3 = [p for p in spec.parts if p.kind == "l3"] if spec is not None else []
    if not l3:
        raise ModelNotInBundle(f"bundle {bundle.path} has no L3 network in features.audio "
                               f"({spec.name if spec is not None else 'no spec'}); openSMILE runs natively")
    if len(l3) > 1:
        raise BundleError(f"bundle {bundle.path}: {len(l3)} L3 parts in features.audio; one is supported")
    return thaw(l3[0].raw)


def _find_weights(bundle: Bundle, name: str) -> Path:
    """The L3 weights file: the bundle's "audio_weights" role, `name` inside the bundle, or
    $CMER_EDGE_L3_WEIGHTS (the file, or a directory holding `name`)."""
    candidates = []
    if bundle.has("audio_weights"):
        candidates.append(bundle.file("audio_weights"))
    if name:
        candidates.append(bundle.path / Path(name).name)
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        candidates += [Path(env), Path(env) / Path(name).name]
    for path in candidates:
        if path.is_file():
            return path
    raise BundleError(f"L3 weights {name!r} not found (looked at {[str(c) for c in candidates]}): copy the "
                      f".h5[.gz] into the bundle or point ${WEIGHTS_ENV} at it")


def load_l3_module(bundle: Bundle, spec: dict):
    """The L3Embedder of `spec` with its weights (from the bundle, or seeded random init)."""
    from cmer_edge.features.l3.keras_h5 import load_keras_weights  # torch
    from cmer_edge.features.l3.model import build_embedder  # torch

    cfg = L3Config.from_dict(spec["params"])
    if cfg.dim != int(spec["dim"]):
        raise BundleError(f"features.audio part {spec['name']}: dim {spec['dim']} != its config's {cfg.dim}")
    weights = str(spec.get("weights", ""))
    random = _RANDOM.fullmatch(weights)
    if random:
        return build_embedder(cfg, seed=int(random[1]))
    path = _find_weights(bundle, weights)
    model = build_embedder(cfg)
    report = load_keras_weights(model, path)
    if spec.get("weights_sha256") and report.sha256 != spec["weights_sha256"]:
        raise BundleError(f"{path}: sha256 {report.sha256[:12]}... is not the {spec['weights_sha256'][:12]}... "
                          "the features were extracted with")
    return model.eval()




def text_torch_model(bundle: Bundle) -> TorchModel:
    """The text encoder as the exported graph sees it: input_ids, attention_mask -> features."""
    spec, local = text_spec_of(bundle)
    encoder, _ = load_text_encoder(spec, model_path=local)
    if encoder.dim != bundle.head_config.text_dim:
        raise BundleError(f"text encoder {spec.model} gives {encoder.dim}-d features, the head expects "
                          f"text_dim={bundle.head_config.text_dim}")
    return TorchModel(encoder, ["input_ids", "attention_mask"], ["features"])


def l3_torch_model(bundle: Bundle) -> TorchModel:
    """The L3 network: audio [samples] at the model rate -> embedding [dim], window_embeddings."""
    return TorchModel(load_l3_module(bundle, l3_spec_of(bundle)), ["audio"], ["embedding", "window_embeddings"])
