"""argparse front end of export/build_engine.py: a bundle's ONNX graphs -> TensorRT engines."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from cmer_edge.backends.tensorrt_engine import TensorRTUnavailable
from cmer_edge.bundle import Bundle, BundleError, load_bundle
from cmer_edge.export.calibration import head_calibration_batches, load_calibration_npz, text_calibration_batches
from cmer_edge.export.cli import _logging
from cmer_edge.export.plan import AxisRange
from cmer_edge.export.profiles import parse_axis_override, profile_shapes
from cmer_edge.export.tensorrt_build import EngineBuildConfig, EngineBuildError, build_engine

ENGINE_DIR = "engines"
ENCODERS = ("text_encoder", "audio_encoder")


def _calibration(args, bundle: Bundle, model: str, onnx_path: Path, axes: tuple[AxisRange, ...]):
    opt = {name: s["opt"] for name, s in profile_shapes(onnx_path, axes).items()}
    if args.calib_npz:
        return tuple(load_calibration_npz(args.calib_npz, opt))
    if args.calib_store and model == "head":
        batch, utterances = opt["lengths"][0], opt["present"][1]
        return tuple(head_calibration_batches(args.calib_store, args.calib_split, bundle, batch=batch,
                                              utterances=utterances, limit=args.calib_limit))
    if args.calib_texts and model == "text_encoder":
        with open(args.calib_texts, encoding="utf-8", newline="") as fh:
            texts = [row.get("Utterance") or row.get("text") or "" for row in csv.DictReader(fh)]
        batch, tokens = opt["input_ids"]
        text_spec = bundle.manifest.features.text
        pad = text_spec.pad_token_id if text_spec is not None else 1
        return tuple(text_calibration_batches(texts, bundle.file("text_tokenizer"), tokens=tokens, batch=batch,
                                              pad_id=pad if pad is not None else 1, limit=args.calib_limit))
    return ()


def build_engine_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build_engine.py", description="Build TensorRT engines from a bundle's exported ONNX graphs, on the "
        "device that will run them. Engines go to BUNDLE/engines/<model>.<precision>.trt<ver>.sm<cc>.engine.",
        epilog="examples:\n  python export/build_engine.py runs/edge_bundle\n"
               "  python export/build_engine.py runs/paper --models text_encoder --precision int8 "
               "--calib-texts ../shared/data/meld/train_sent_emo.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--models", nargs="+", default=list(ENCODERS), help="default: the encoders the bundle has")
    parser.add_argument("--precision", choices=["fp16", "fp32", "int8"], default="fp16")
    parser.add_argument("--out", help="engine directory (default BUNDLE/engines)")
    parser.add_argument("--axis", action="append", default=[], metavar="NAME=MIN,OPT,MAX",
                        help="override a dynamic axis range, e.g. tokens=1,32,128 (repeatable)")
    parser.add_argument("--workspace-mib", type=int, default=2048)
    parser.add_argument("--timing-cache", help="default: <out>/timing.trt<ver>.sm<cc>.cache")
    parser.add_argument("--calib-texts", help="int8: CSV with an Utterance (MELD) or text column")
    parser.add_argument("--calib-npz", help="int8: .npz file or directory of batches at the opt shapes")
    parser.add_argument("--calib-store", help="int8 head: the feature store the bundle was trained from")
    parser.add_argument("--calib-split", default="train", help="int8 head: feature-store split (default train)")
    parser.add_argument("--calib-limit", type=int, default=512, help="int8: at most this many texts")
    parser.add_argument("--calib-cache", help="int8: calibration cache file (read if present, written after)")
    parser.add_argument("--keep-fp16-norms", action="store_true", help="do not pin normalisation layers to fp32")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    _logging(args.verbose)
    try:
        axes = tuple(parse_axis_override(a) for a in args.axis)
        bundle = load_bundle(args.bundle)
        out = Path(args.out) if args.out else bundle.path / ENGINE_DIR
        todo = [m for m in args.models if bundle.has(f"onnx.{m}")]
        if not todo:
            raise BundleError(f"bundle {bundle.path} has no ONNX graph for {args.models} (run export_onnx.py first)")
        for model in todo:
            onnx_path = bundle.file(f"onnx.{model}")
            calib = _calibration(args, bundle, model, onnx_path, axes) if args.precision == "int8" else ()
            cfg = EngineBuildConfig(precision=args.precision, workspace_mib=args.workspace_mib, axes=axes,
                                    timing_cache=Path(args.timing_cache) if args.timing_cache else None,
                                    calibration=calib,
                                    calibration_cache=Path(args.calib_cache) if args.calib_cache else None,
                                    fp32_normalization=not args.keep_fp16_norms)
            print(f"{model:16s} {build_engine(onnx_path, out, model, cfg)}")
    except TensorRTUnavailable as exc:
        print(f"error: cannot build TensorRT engines here: {exc}", file=sys.stderr)
        return 3
    except (BundleError, EngineBuildError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
