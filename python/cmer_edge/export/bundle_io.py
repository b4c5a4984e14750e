"""Random-init bundles for tests and for `export_onnx.py --random-paper`. (`add_artifacts` lives in
`cmer_edge.bundle`, `load_head_module` in `cmer_edge.backends.torch_models`; re-exported here.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cmer_edge.backends.torch_models import load_head_module  # noqa: F401
from cmer_edge.bundle import Bundle, BundleError, add_artifacts, load_bundle, save_bundle  # noqa: F401
from cmer_edge.model.config import HeadConfig


def random_head_tensors(cfg: HeadConfig, seed: int) -> dict[str, np.ndarray]:
    """A PyTorch-initialised head (seeded), with non-trivial normalisation statistics."""
    import torch

    from cmer_edge.model.cm_roberta import CMRoberta

    torch.manual_seed(seed)
    model = CMRoberta(cfg).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    for name, stream in model.streams():
        dim = stream.mean.shape[0]
        model.set_normalisation(name, torch.randn(dim, generator=gen),
                                torch.rand(dim, generator=gen) * 2.0 + 0.25)
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def write_random_bundle(path: str | Path, cfg: HeadConfig, *, features: dict[str, Any], seed: int = 0,
                        name: str = "random", profile: str = "random", local_paths: bool = False) -> Bundle:
    """A bundle with a random-init head: what the export path is tested with before trained
    bundles exist. `features` goes into the manifest as is (text/audio encoder specs); with
    `local_paths` they may name absolute paths of this machine (a working bundle)."""
    manifest = {"name": name, "profile": profile, "features": features, "window_utts": 16,
                "protocol": "live", "metrics": {}, "random_init_seed": seed}
    save_bundle(path, head_config=cfg, head_tensors=random_head_tensors(cfg, seed), manifest=manifest,
                local_paths=local_paths)
    return load_bundle(path)
