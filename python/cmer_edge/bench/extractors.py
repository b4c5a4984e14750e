"""Per-utterance cost of the audio extractors: openSMILE sets, Whisper tiny.en and base encoder states
(all 4 / 6 layers, and the first 2: CTranslate2), EdgeL3 and OpenL3-6144 (PyTorch and ONNX Runtime) at several
window hops, on one utterance, with a fixed number of threads.

Example (the table in docs/l3.md):
  python -m cmer_edge.bench.extractors --threads 2 --seconds 3 \\
      --edgel3-weights ../shared/weights/edgel3/edgel3_sea_ust_audio_emb_64.h5.gz \\
      --emo-large-conf ../shared/opensmile/emo_large.conf

OpenL3 runs with random weights of the real shape (its cost does not depend on the values).
Prints a markdown table: median and p90 wall time of the whole extractor call (16 kHz input,
resampling included) over --repeats runs after one warm-up run, and the median CPU time of the
process (all threads; on a machine shared with other jobs, CPU time at --threads 1 is the most
stable estimate of the cost).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from cmer_edge.features.base import AudioExtractor
from cmer_edge.features.registry import make_audio_extractor
from cmer_edge.features.split_model import ModelAssemblyError
from cmer_edge.testing.espeak import espeak_available, speak


def _utterance(seconds: float) -> tuple[np.ndarray, str]:
    n = int(seconds * 16_000)
    if espeak_available():
        text = "I can't believe you did that, this is wonderful news, really wonderful news"
        x = speak(text, speed_wpm=150)
        x = np.pad(x, (0, max(0, n - len(x))))[:n]
        return x.astype(np.float32), "espeak-ng speech"
    return (0.1 * np.random.default_rng(0).standard_normal(n)).astype(np.float32), "white noise"


def _time(ext: AudioExtractor, audio: np.ndarray, repeats: int) -> tuple[float, float, float]:
    """(median wall ms, p90 wall ms, median process CPU ms) over `repeats` calls after a warm-up."""
    ext(audio)
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        ext(audio)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    wall.sort()
    p90 = wall[min(len(wall) - 1, int(0.9 * len(wall)))]
    return statistics.median(wall) * 1e3, p90 * 1e3, statistics.median(cpu) * 1e3


def _l3_rows(name: str, weights: str, hops: list[float], threads: int, repeats: int, audio: np.ndarray,
             tmp: Path, backends: list[str]) -> list[tuple]:
    from cmer_edge.features.l3.extractor import TorchL3Extractor

    rows = []
    for hop in hops:
        ext = TorchL3Extractor.from_name(name, weights=weights, hop_s=hop, max_windows_per_call=64)
        windows = ext.cfg.n_windows(int(len(audio) * ext.cfg.frontend.sample_rate_hz / 16_000))
        if "torch" in backends:
            rows.append((name, "torch", hop, windows, *_time(ext, audio, repeats)))
        if "onnxruntime" in backends:
            path = tmp / f"{name}.hop{hop}.onnx"
            ext.export_onnx(path, verify=False)
            ort_ext = make_audio_extractor(name, onnx=path, threads=threads, max_windows_per_call=64)
            rows.append((name, "onnxruntime", hop, windows, *_time(ort_ext, audio, repeats)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmer_edge.bench.extractors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    parser.add_argument("--seconds", type=float, default=3.0, help="utterance length")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hops", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0], help="L3 window hops (s)")
    parser.add_argument("--edgel3-weights", help="EdgeL3 SEA-64 .h5[.gz]; EdgeL3 rows are skipped without it")
    parser.add_argument("--emo-large-conf", help="emo_large.conf; default $CMER_EDGE_EMO_LARGE_CONF")
    parser.add_argument("--skip-openl3", action="store_true", help="leave out OpenL3-6144 (slow on CPU)")
    parser.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"], choices=["torch", "onnxruntime"])
    args = parser.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.seconds <= 0:
        parser.error("--threads and --repeats must be >= 1, --seconds > 0")

    import torch

    torch.set_num_threads(args.threads)
    audio, kind = _utterance(args.seconds)
    rows: list[tuple] = []
    for feature_set in ("eGeMAPSv02", "ComParE_2016", "emo_large"):
        opts = {}
        if feature_set == "emo_large":
            conf = args.emo_large_conf or os.environ.get("CMER_EDGE_EMO_LARGE_CONF")
            if not conf:
                continue
            opts["config_path"] = conf
        ext = make_audio_extractor(f"opensmile.{feature_set}", **opts)
        rows.append((ext.name, "opensmile", None, None, *_time(ext, audio, args.repeats)))
    for name in ("whisper.tiny.en", "whisper.tiny.en.l2", "whisper.base", "whisper.base.l2"):
        try:
            ext = make_audio_extractor(name, threads=args.threads)
        except (ImportError, FileNotFoundError, ModelAssemblyError) as exc:  # the `asr` / `whisper-base` extras are optional
            print(f"{name} left out: {exc}")
            continue
        rows.append((ext.name, "ctranslate2", None, None, *_time(ext, audio, args.repeats)))
    with tempfile.TemporaryDirectory() as tmp:
        if args.edgel3_weights:
            rows += _l3_rows("edgel3.sea.64", args.edgel3_weights, args.hops, args.threads, args.repeats, audio,
                             Path(tmp), args.backends)
        if not args.skip_openl3:
            rows += _l3_rows("l3.mel256.6144", "random", args.hops, args.threads, args.repeats, audio, Path(tmp),
                             args.backends)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.seconds:g} s of {kind} at 16 kHz, {args.threads} threads, {args.repeats} runs, "
          f"torch {torch.__version__}, load average {load:.1f} at the end")
    print("| extractor | backend | hop (s) | windows | wall median (ms) | wall p90 (ms) | CPU median (ms) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, backend, hop, windows, med, p90, cpu in rows:
        print(f"| {name} | {backend} | {'' if hop is None else f'{hop:g}'} | {'' if windows is None else windows} "
              f"| {med:.1f} | {p90:.1f} | {cpu:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
