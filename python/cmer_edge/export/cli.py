"""argparse front ends of export/export_onnx.py and export/verify.py (the scripts stay thin)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

from cmer_edge.bundle import BundleError
from cmer_edge.export.bundle_export import export_bundle, verify_bundle
from cmer_edge.export.plan import OPSET
from cmer_edge.export.random_models import write_random_paper_bundle
from cmer_edge.export.registry import exporter_names

log = logging.getLogger("cmer_edge")


def _logging(verbose: bool) -> None:
    """Our progress lines on stderr; other libraries' loggers keep their defaults."""
    logging.basicConfig(format="%(message)s")  # a no-op when the host (or pytest) already configured logging;
    log.setLevel(logging.DEBUG if verbose else logging.INFO)  # never unhooks our logger from the root


def export_main(argv: list[str] | None = None, *, default_bpe: str | Path | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="export_onnx.py", description="Export a bundle's head and encoders to ONNX (into the bundle).",
        epilog="examples:\n  python export/export_onnx.py runs/edge_bundle --variants int8\n"
               "  python export/export_onnx.py --random-paper /tmp/paper_bundle",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("bundle", nargs="?", help="bundle directory (manifest.json + head.safetensors)")
    src.add_argument("--random-paper", metavar="OUT", help="first write a random-init paper-shaped bundle to OUT "
                     "(RoBERTa-large shape with the real tokenizer, paper head dims), then export it")
    parser.add_argument("--roberta-bpe", default=os.environ.get("CMER_EDGE_ROBERTA_BPE", default_bpe),
                        help="directory with RoBERTa vocab.json + merges.txt (for --random-paper)")
    parser.add_argument("--models", nargs="+", choices=exporter_names(), help="default: every model the bundle has")
    parser.add_argument("--variants", nargs="*", default=[], choices=["fp16", "int8"],
                        help="also write reduced-precision variants")
    parser.add_argument("--int8-keep-fp32", nargs="+", default=[], metavar="REGEX",
                        help="text encoder int8 variant: keep the MatMuls whose node name matches in fp32, e.g. "
                             "'layer\\.\\d+/output/dense' (the FFN output projections; docs/deployment.md)")
    parser.add_argument("--opset", type=int, default=OPSET)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    _logging(args.verbose)
    bundle = args.bundle
    try:
        if args.random_paper:
            if not args.roberta_bpe:
                parser.error("--random-paper needs --roberta-bpe DIR (or CMER_EDGE_ROBERTA_BPE)")
            bundle = write_random_paper_bundle(args.random_paper, args.roberta_bpe).path
        report = export_bundle(bundle, models=args.models, variants=tuple(args.variants), opset=args.opset,
                               int8_keep_fp32=tuple(args.int8_keep_fp32))
    except (BundleError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for role, path in report.exported.items():
        print(f"{role:28s} {path}")
    for model, reason in report.skipped.items():
        print(f"{'skipped ' + model:28s} {reason}")
    return 0


def verify_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="verify.py", description="Check every exported ONNX graph of a bundle against PyTorch with "
        "ONNX Runtime on fresh random inputs at several shapes. Exit 1 if any is over tolerance.",
        epilog="example: python export/verify.py runs/edge_bundle --seed 123")
    parser.add_argument("bundle", help="bundle directory, after export_onnx.py")
    parser.add_argument("--models", nargs="+", choices=exporter_names())
    parser.add_argument("--seed", type=int, help="input seed (default: fresh; printed to reproduce)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    _logging(args.verbose)
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
    print(f"verify {args.bundle} seed={seed}")
    try:
        results = verify_bundle(args.bundle, seed=seed, models=args.models)
    except (BundleError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in results:
        print(r.line())
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)}/{len(results)} checks within tolerance")
    return 1 if failed else 0
