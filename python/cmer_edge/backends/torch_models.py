"""The PyTorch fallback of the head: the reference module rebuilt from the bundle (torch is
imported when it is called). The encoders' rebuilds live with their extractors
(`cmer_edge.features.from_bundle`), since they need the feature code."""

from __future__ import annotations

import numpy as np

from cmer_edge.backends.runners import TorchModel
from cmer_edge.bundle import Bundle, BundleError


def load_head_module(bundle: Bundle):
    """The bundle's head as the PyTorch reference module (eval mode, fp32): a CMRoberta, or for an
    ensemble bundle a HeadEnsemble of them (logits = log of the members' mean probabilities)."""
    import torch

    from cmer_edge.model.cm_roberta import CMRoberta, HeadEnsemble  # imports torch

    members = []
    for i, member in enumerate(bundle.head_members()):
        model = CMRoberta(bundle.head_config)
        tensors = {k: torch.from_numpy(np.array(v, np.float32)) for k, v in member.items()}
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        if missing or unexpected:
            which = f" (member {i})" if bundle.manifest.head_members > 1 else ""
            raise BundleError(f"{bundle.file('head')}{which} does not match its head config: missing "
                              f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
        members.append(model)
    return (members[0] if len(members) == 1 else HeadEnsemble(members)).eval()


def head_torch_model(bundle: Bundle) -> TorchModel:
    """The reference CMRoberta with the head graph's inputs (x_a / x_t, lengths, present) -> logits."""
    cfg = bundle.head_config
    names = [n for n, used in (("x_a", cfg.uses_audio), ("x_t", cfg.uses_text)) if used] + ["lengths", "present"]
    return TorchModel(load_head_module(bundle), names, ["logits"])
