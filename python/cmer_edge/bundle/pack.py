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
from cmer_edge.bundle.store import load_bundle, save_bundle, strip_absolute_paths

MANAGED = ("format", "format_version", "head", "files", "sha256")


def pack_bundle(src: str | Path, dst: str | Path, roles: list[str], *, half_head: bool = False) -> Path:
    bundle = load_bundle(src)
    files = bundle.manifest.files
    missing = [r for r in roles if r not in files]
    if missing:
        raise BundleError(f"{src} has no {missing} (has: {sorted(files)})")
    tensors = bundle.head_tensors()
    if half_head:
        too_big = [k for k, v in tensors.items() if np.abs(v).max(initial=0) > 6e4]
        if too_big:
            raise BundleError(f"float16 would overflow these head tensors: {too_big}")
        tensors = {k: v.astype(np.float16) for k, v in tensors.items()}
    manifest = {k: v for k, v in bundle.manifest.to_dict().items() if k not in MANAGED and k != "store"}
    onnx = {}
    for role in roles:  # onnx.<model>[.<precision>]: the precision the runtime should pick by default
        parts = role.split(".")
        if parts[0] == "onnx":
            onnx[parts[1]] = parts[2] if len(parts) > 2 else "fp32"
    manifest["runtime"] = dict(bundle.manifest.runtime.to_dict(), onnx_precision=onnx)
    manifest["packed_from"] = {"bundle": bundle.manifest.name or None,
                               "head_dtype": "float16" if half_head else "float32"}
    return save_bundle(dst, head_config=bundle.head_config, head_tensors=tensors,
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
    args = p.parse_args(argv)
    out = pack_bundle(args.src, args.dst, args.roles, half_head=args.half_head)
    print(f"packed {args.src} -> {out}: {sorted(load_bundle(out).manifest.files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
