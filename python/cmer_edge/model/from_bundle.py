"""The bundle's head as the PyTorch reference module (torch is imported when it is called)."""

from __future__ import annotations

import numpy as np

from cmer_edge.bundle import Bundle, BundleError


def load_head_module(bundle: Bundle):
    """The bundle's head as the PyTorch reference module (eval mode, fp32)."""
    import torch

    from cmer_edge.model.cm_roberta import CMRoberta  # imports torch

    model = CMRoberta(bundle.head_config)
    tensors = {k: torch.from_numpy(np.array(v, np.float32)) for k, v in bundle.head_tensors().items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise BundleError(f"{bundle.file('head')} does not match its head config: missing {sorted(missing)[:5]}, "
                          f"unexpected {sorted(unexpected)[:5]}")
    return model.eval()
