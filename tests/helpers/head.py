"""Helpers of the native head tests: models with every parameter non-trivial, random inputs, the
PyTorch reference, and the relative error the parity tests bound."""

from __future__ import annotations

import numpy as np

from helpers.ci import need_module

torch = need_module("torch")

from cmer_edge.model.cm_roberta import CMRoberta  # noqa: E402
from cmer_edge.model.config import HeadConfig  # noqa: E402
from cmer_edge.runtime.head import NativeHead  # noqa: E402

TOLERANCE = 1e-5

SMALL = dict(audio_dim=20, text_dim=24, hidden=8, num_heads=2, ffn_dim=16, classifier_dim=12)
EDGE = dict(audio_dim=152, text_dim=1536, hidden=128)
# CUDA vs CPU head tolerance (justified in docs/benchmarks.md by the measured CPU-side bound)
CUDA_TOLERANCE = 1e-4
# head configurations the CUDA parity tests run
CONFIGS = [
    (dict(SMALL), "both"),
    (dict(SMALL, modalities="audio"), "audio"),
    (dict(SMALL, use_sca=False), "both_nosca"),
    (dict(EDGE), "edge"),
    (dict(), "paper"),
]


def make_model(cfg: HeadConfig, seed: int) -> CMRoberta:
    """CMRoberta with PyTorch's default init, plus random normalisation stats and LayerNorm affines
    so that every parameter the native head reads matters."""
    torch.manual_seed(seed)
    model = CMRoberta(cfg).eval()
    with torch.no_grad():
        for name, stream in model.streams():
            dim = stream.mean.shape[0]
            stream.mean.copy_(torch.randn(dim) * 0.5)
            stream.inv_std.copy_(torch.rand(dim) * 1.5 + 0.25)
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(1 + 0.2 * torch.randn_like(module.weight))
                module.bias.copy_(0.2 * torch.randn_like(module.bias))
    return model


def state_dict(model: CMRoberta) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def native(model: CMRoberta, **kwargs) -> NativeHead:
    return NativeHead.from_state_dict(model.cfg, state_dict(model), **kwargs)


def inputs(cfg: HeadConfig, batch: int, steps: int, seed: int, *, with_present: bool = False):
    """Random x_a, x_t, lengths (first sequence full length) and optionally a present mask."""
    gen = torch.Generator().manual_seed(seed)
    x_a = torch.randn(batch, steps, cfg.audio_dim, generator=gen)
    x_t = torch.randn(batch, steps, cfg.text_dim, generator=gen)
    lengths = torch.randint(1, steps + 1, (batch,), generator=gen)
    lengths[0] = steps
    present = None
    if with_present:
        present = (torch.rand(batch, steps, 2, generator=gen) > 0.3).float()
        present[..., 0] = torch.maximum(present[..., 0], 1 - present[..., 1])  # never both missing
    return x_a, x_t, lengths, present


def reference(model: CMRoberta, x_a, x_t, lengths, present=None) -> np.ndarray:
    with torch.no_grad():
        return model(x_a, x_t, lengths, present).numpy()


def np_or_none(t):
    return None if t is None else t.numpy()


def rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref|: the relative error the parity tests bound."""
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))
