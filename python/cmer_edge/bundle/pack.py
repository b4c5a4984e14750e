"""`python -m cmer_edge.bundle.pack SRC DST`: a deployable copy of a trained, exported bundle with
only the files the runtime needs (head weights optionally stored as float16, the chosen encoder
graphs), e.g. the embedded default bundle shipped in the package. Absolute paths of the machine
that built SRC (fine-tuned model folders, run directories) are reduced to their last component.

    python -m cmer_edge.bundle.pack runs/edge python/cmer_edge/bundles/edge --half-head \\
        --roles audio_norm text_tokenizer onnx.text_encoder.int8 onnx.audio_encoder
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cmer_edge.bundle.errors import BundleError
from cmer_edge.bundle.manifest import thaw
from cmer_edge.bundle.store import load_bundle, quantised_int8, save_bundle, strip_absolute_paths
from cmer_edge.model.config import HeadConfig

MANAGED = ("format", "format_version", "head", "head_members", "files", "sha256")


def input_projections(tensors: dict[str, np.ndarray], cfg: HeadConfig) -> set[str]:
    """The large per-utterance input projections: the 2-D weights over the raw features (the LSTM
    inputs and residual branches; most of the head's bytes, what the native head's int8 precision
    quantises)."""
    dims = {cfg.audio_dim, cfg.text_dim}
    return {k for k, v in tensors.items() if v.ndim == 2 and v.shape[1] in dims}


def packed_head(tensors: dict[str, np.ndarray], cfg: HeadConfig, half_head: bool,
                int8_inputs: bool) -> dict[str, np.ndarray]:
    if half_head:
        too_big = [k for k, v in tensors.items() if np.abs(v).max(initial=0) > 6e4]
        if too_big:
            raise BundleError(f"float16 would overflow these head tensors: {too_big}")
        tensors = {k: v.astype(np.float16) for k, v in tensors.items()}
    return quantised_int8(tensors, input_projections(tensors, cfg)) if int8_inputs else tensors


def pack_bundle(src: str | Path, dst: str | Path, roles: list[str], *, half_head: bool = False,
                int8_inputs: bool = False) -> Path:
    bundle = load_bundle(src)
    files = bundle.manifest.files
    missing = [r for r in roles if r not in files]
    if missing:
        raise BundleError(f"{src} has no {missing} (has: {sorted(files)})")
    members = [packed_head(t, bundle.head_config, half_head, int8_inputs) for t in bundle.head_members()]
    manifest = {k: v for k, v in bundle.manifest.to_dict().items() if k not in MANAGED and k != "store"}
    onnx = {}
    for role in roles:  # onnx.<model>[.<precision>]: the precision the runtime should pick by default
        parts = role.split(".")
        if parts[0] == "onnx":
            onnx[parts[1]] = parts[2] if len(parts) > 2 else "fp32"
    manifest["runtime"] = dict(bundle.manifest.runtime.to_dict(), onnx_precision=onnx)
    if int8_inputs:  # the native head's int8 precision quantises exactly these weights, exactly so: no value moves
        manifest["runtime"]["head_precision"] = "int8"
    manifest["packed_from"] = {"bundle": bundle.manifest.name or None,
                               "head_dtype": ("float16" if half_head else "float32")
                               + (" (int8 input projections, a scale per row)" if int8_inputs else "")}
    return save_bundle(dst, head_config=bundle.head_config, head_tensors=members,
                       manifest=strip_absolute_paths(thaw(manifest)),
                       extra_files={role: bundle.file(role) for role in roles})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmer_edge.bundle.pack", description=__doc__.splitlines()[0],
                                epilog="example: python -m cmer_edge.bundle.pack runs/edge out/edge --half-head "
                                       "--roles text_tokenizer onnx.text_encoder.int8")
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--roles", nargs="*", default=[], help="files to keep besides the head, by manifest role")
    p.add_argument("--half-head", action="store_true", help="store the head weights as float16")
    p.add_argument("--int8-inputs", action="store_true",
                   help="store the input projections (2-D weights over the raw features) as int8, a scale per row")
    args = p.parse_args(argv)
    out = pack_bundle(args.src, args.dst, args.roles, half_head=args.half_head, int8_inputs=args.int8_inputs)
    print(f"packed {args.src} -> {out}: {sorted(load_bundle(out).manifest.files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
