"""`python -m cmer_edge.bench head [--json]`: the fused head, native vs PyTorch, side by side.

For each profile (the dims below), times a batch-1 live `push` (newest utterance, window of W) and
an offline `forward` (a batch of padded dialogues) for: native CPU at each weight precision,
PyTorch eager, TorchScript (trace + freeze; torch.compile with --torch-compile), ONNX Runtime, and,
when `_native.cuda_available()`, native CUDA, PyTorch eager CUDA and PyTorch with CUDA graphs.
PyTorch has no session: its eager/TorchScript/ONNX push rows rerun the whole window. `torch-cached`
(push only) is PyTorch with the native session's projection cache, the same work as the native push
(bench/head_torch_cached.py), on CPU and CUDA (and replayed as a CUDA graph): the fair baseline.
"vs best torch" compares each row with the fastest PyTorch row (eager, TorchScript/compile,
torch-cached, CUDA graphs) of the same profile, op and device.
Implementations are timed round-robin so load changes on a shared machine hit all alike.

The floor next to the push rows is the larger of two lower bounds, both measured here with the same
thread count: the bytes of weights one push reads (every weight of the head, at the row's precision)
over the machine's streaming-read bandwidth, and the push's multiply-adds over the machine's vector
multiply-add rate. Reduced-precision rows also report how far their outputs move from fp32.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
import time

from cmer_edge.bench import head_impls as impls
from cmer_edge.bench.timing import Timed, cpu_description, load_average, time_round_robin
from cmer_edge.cli_common import threads_arg, window_arg
from cmer_edge.model.config import HeadConfig

log = logging.getLogger("cmer_edge")

# Head dims per profile. edge: the embedded default bundle (audio = eGeMAPS 88 + EdgeL3 64, text =
# MiniLM last 4 layers x 384, h = 64). paper: HeadConfig() defaults (emo_large 6552 + OpenL3 6144, RoBERTa-large 4 x 1024).
PROFILES: dict[str, dict] = {
    "edge": dict(audio_dim=152, text_dim=1536, hidden=64),
    "paper": {},
}
PRECISIONS = ("fp32", "bf16", "int8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cmer_edge.bench head", description=__doc__.split("\n\n")[0],
                                epilog="example: python -m cmer_edge.bench head --profiles edge --json")
    p.add_argument("--profiles", default="edge,paper", help="comma-separated, of: " + ", ".join(PROFILES))
    p.add_argument("--window", type=window_arg, default=16, help="live window W (utterances)")
    p.add_argument("--batch", type=int, default=8, help="forward: dialogues per batch")
    p.add_argument("--steps", type=int, default=16, help="forward: padded dialogue length T")
    p.add_argument("--devices", default="cpu,cuda",
                   help="comma-separated, of: cpu, cuda (cuda rows only where _native.cuda_available())")
    p.add_argument("--precisions", default=",".join(PRECISIONS),
                   help="native weight precisions to time, comma-separated, of: " + ", ".join(PRECISIONS))
    p.add_argument("--threads", type=threads_arg, default=os.cpu_count() or 1, help="CPU threads for every implementation")
    p.add_argument("--rounds", type=int, default=5, help="round-robin rounds")
    p.add_argument("--push-reps", type=int, default=20, help="timed pushes per implementation per round")
    p.add_argument("--forward-reps", type=int, default=2, help="timed forwards per implementation per round")
    p.add_argument("--torch-compile", action="store_true",
                   help="time torch.compile instead of TorchScript (compiling takes minutes per shape here)")
    p.add_argument("--no-compile-fallback", action="store_true",
                   help="torch-cuda-graph: report a failed capture instead of falling back to torch.compile "
                        "(which takes minutes per shape)")
    p.add_argument("--bandwidth-mb", type=int, default=256, help="buffer size of the bandwidth probe")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown (docs/benchmarks.md)")
    args = p.parse_args(argv)
    args.profiles = [s for s in args.profiles.split(",") if s]
    unknown = sorted(set(args.profiles) - set(PROFILES))
    if unknown:
        p.error(f"unknown profiles {unknown}; choose from {sorted(PROFILES)}")
    for name, allowed in (("devices", ("cpu", "cuda")), ("precisions", PRECISIONS)):
        chosen = [s for s in getattr(args, name).split(",") if s]
        bad = sorted(set(chosen) - set(allowed))
        if bad or not chosen:
            p.error(f"--{name}: unknown or empty {bad or chosen}; choose from {list(allowed)}")
        setattr(args, name, chosen)
    for name in ("window", "batch", "steps", "threads", "rounds", "push_reps", "forward_reps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def _candidates(case: impls.Case, args: argparse.Namespace, cuda: bool) -> list[tuple[dict, callable]]:
    """(row metadata, builder) for every implementation and op of one profile."""
    threads = args.threads
    out = []
    on_cpu = "cpu" in args.devices
    devices = (["cpu"] if on_cpu else []) + (["cuda"] if cuda and "cuda" in args.devices else [])
    cuda = "cuda" in devices
    for device in devices:
        for precision in args.precisions:
            meta = dict(impl="native", device=device, precision=precision)

            def head(device=device, precision=precision):
                return impls.native_head(case, device, precision, threads)

            out.append((dict(meta, op="push"), lambda head=head: impls.native_push(head(), case)))
            out.append((dict(meta, op="forward"), lambda head=head: impls.native_forward(head(), case)))
            if device == "cuda":
                out.append((dict(meta, impl="native-cuda-graph", op="push"),
                            lambda head=head: impls.native_push(head(), case, cuda_graph=True)))
    script = ("torch-compile", impls.torch_compiled) if args.torch_compile else ("torchscript", impls.torchscript)
    if on_cpu:
        out.append((dict(impl="torch-cached", device="cpu", op="push"), lambda: impls.torch_cached(case, "cpu")))
    if cuda:
        out.append((dict(impl="torch-cached", device="cuda", op="push"), lambda: impls.torch_cached(case, "cuda")))
        out.append((dict(impl="torch-cached-cuda-graph", device="cuda", op="push"),
                    lambda: impls.torch_cached(case, "cuda", cuda_graph=True)))
    for op in ("push", "forward"):
        if on_cpu:
            out.append((dict(impl="torch-eager", device="cpu", op=op),
                        lambda op=op: impls.torch_eager(case, op, "cpu")))
            out.append((dict(impl=script[0], device="cpu", op=op), lambda op=op: script[1](case, op)))
            out.append((dict(impl="onnxruntime", device="cpu", op=op),
                        lambda op=op: impls.onnxruntime_session(case, op, threads)))
        if cuda:
            out.append((dict(impl="torch-eager", device="cuda", op=op),
                        lambda op=op: impls.torch_eager(case, op, "cuda")))
            out.append((dict(impl="torch-cuda-graph", device="cuda", op=op),
                        lambda op=op: impls.torch_cuda_graph(case, op, not args.no_compile_fallback)))
    for meta, _ in out:
        meta.setdefault("precision", "fp32")
    return out


def run_profile(name: str, args: argparse.Namespace, bandwidth_gbps: float, gmacs: float,
                cuda: bool) -> tuple[list, list]:
    import torch

    torch.set_num_threads(args.threads)
    cfg = HeadConfig(**PROFILES[name])
    case = impls.make_case(name, cfg, args.window, args.batch, args.steps)
    rows, timed = [], []
    for meta, build in _candidates(case, args, cuda):
        row = dict(meta, profile=name, p50_ms=None, p95_ms=None)
        try:
            start = time.perf_counter()
            fn = build()
            fn()  # the first call: lazy compilation (torch.compile) happens here
            row["setup_s"] = time.perf_counter() - start  # packing / tracing / exporting / compiling
            timed.append((row, Timed(f"{name}/{meta}", fn)))
        except Exception as exc:  # an implementation that cannot run here is reported, not fatal
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            log.warning("bench head: %s %s failed: %s", name, meta, row["error"])
        rows.append(row)
    for op, reps in (("push", args.push_reps), ("forward", args.forward_reps)):
        group = [t for r, t in timed if r["op"] == op]
        time_round_robin(group, rounds=args.rounds, per_round=reps, warmup=2)
    for row, t in timed:
        row["p50_ms"], row["p95_ms"] = t.percentile_ms(50), t.percentile_ms(95)
    floors = []
    macs = impls.push_macs(cfg, args.window)
    for precision in args.precisions if "cpu" in args.devices else ():  # floors of the CPU rows
        weight_bytes = impls.native_head(case, "cpu", precision, 1).weight_bytes
        bandwidth_ms = weight_bytes / (bandwidth_gbps * 1e9) * 1e3
        compute_ms = macs / (gmacs * 1e9) * 1e3
        floors.append(dict(profile=name, precision=precision, weight_bytes=weight_bytes, push_macs=macs,
                           bandwidth_floor_ms=bandwidth_ms, compute_floor_ms=compute_ms,
                           floor_ms=max(bandwidth_ms, compute_ms)))
        if precision != "fp32":
            cost = impls.precision_cost(case, precision, args.threads)
            for row in rows:
                if row["impl"] == "native" and row["precision"] == precision and row["device"] == "cpu":
                    row.update(cost)
    _annotate(rows, floors)
    return rows, floors


TORCH_IMPLS = ("torch-eager", "torchscript", "torch-compile", "torch-cached", "torch-cuda-graph",
               "torch-cached-cuda-graph")


def _annotate(rows: list[dict], floors: list[dict]) -> None:
    """Speed-up over PyTorch eager and over the fastest PyTorch row (same profile, device, op), and
    the ratio to the push floor."""
    eager = {(r["profile"], r["device"], r["op"]): r["p50_ms"] for r in rows if r["impl"] == "torch-eager"}
    best: dict[tuple, dict] = {}
    for r in rows:
        key = (r["profile"], r["device"], r["op"])
        if r["impl"] in TORCH_IMPLS and r["p50_ms"] and (key not in best or r["p50_ms"] < best[key]["p50_ms"]):
            best[key] = r
    floor = {(f["profile"], f["precision"]): f["floor_ms"] for f in floors}
    for r in rows:
        key = (r["profile"], r["device"], r["op"])
        base = eager.get(key)
        if r["p50_ms"] and base:
            r["speedup_vs_eager"] = base / r["p50_ms"]
        if r["p50_ms"] and key in best:
            r["speedup_vs_best_torch"] = best[key]["p50_ms"] / r["p50_ms"]
            r["best_torch"] = best[key]["impl"]
        if r["p50_ms"] and r["op"] == "push" and r["device"] == "cpu":
            r["floor_ms"] = floor[(r["profile"], r["precision"])]
            r["x_floor"] = r["p50_ms"] / r["floor_ms"]


def run(args: argparse.Namespace, command: str) -> dict:
    # libgomp's default busy-waiting makes PyTorch's multi-threaded CPU path collapse when the cores
    # are shared (measured here: 35 ms -> 0.1-2.3 s per push); PASSIVE unless the caller chose.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from cmer_edge import _native

    cuda = _native.cuda_available()
    bandwidth = _native.read_bandwidth(megabytes=args.bandwidth_mb, passes=5, num_threads=args.threads)
    mac_rate = _native.multiply_add_rate(passes=5, num_threads=args.threads)
    report = dict(command=command, machine=cpu_description(), load=load_average(), python=platform.python_version(),
                  torch=torch.__version__, omp_wait_policy=os.environ["OMP_WAIT_POLICY"], threads=args.threads,
                  window=args.window,
                  forward_batch=[args.batch, args.steps], cuda_available=cuda, bandwidth=bandwidth,
                  multiply_add_rate=mac_rate, rows=[], floors=[])
    for name in args.profiles:
        rows, floors = run_profile(name, args, bandwidth["best_gb_per_s"], mac_rate["best_gmacs_per_s"], cuda)
        report["rows"] += rows
        report["floors"] += floors
    report["load_after"] = load_average()
    return report


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _machine_rates(report: dict) -> str:
    bw, mac = report["bandwidth"], report["multiply_add_rate"]
    return (f"Read bandwidth {bw['best_gb_per_s']:.1f} GB/s (best of {bw['passes']}, {bw['megabytes']} MB), "
            f"multiply-add rate {mac['best_gmacs_per_s']:.1f} G/s (best of {mac['passes']}), "
            f"{mac['num_threads']} threads")


def _floor_cells(f: dict) -> list[str]:
    return [f"{f['weight_bytes'] / 1e6:.1f}", f"{f['bandwidth_floor_ms']:.2f}", f"{f['push_macs'] / 1e6:.1f}",
            f"{f['compute_floor_ms']:.2f}", f"{f['floor_ms']:.2f}"]


def print_table(report: dict) -> None:
    print(f"machine: {report['machine']}; {report['threads']} threads; OMP_WAIT_POLICY={report['omp_wait_policy']}; "
          f"{report['load']} (after: {report['load_after']})")
    print(f"{_machine_rates(report)}; window W={report['window']}, "
          f"forward batch {report['forward_batch'][0]}x{report['forward_batch'][1]}")
    for f in report["floors"]:
        mb, bw_ms, macs, mac_ms, floor_ms = _floor_cells(f)
        print(f"floor {f['profile']:5s} {f['precision']:4s}: {floor_ms} ms = max({mb} MB of weights -> {bw_ms} ms, "
              f"{macs} M multiply-adds -> {mac_ms} ms)")
    header = (f"{'profile':7s} {'op':7s} {'impl':23s} {'device':6s} {'prec':5s} {'p50_ms':>9s} {'p95_ms':>9s} "
              f"{'vs eager':>8s} {'vs best torch':>13s} {'x floor':>7s}  notes")
    print(header)
    print("-" * len(header))
    for r in report["rows"]:
        notes = r.get("error", "")
        if "max_abs_dprob" in r:
            notes = (f"max|dprob| {r['max_abs_dprob']:.1e}, max rel dlogit {r['max_rel_dlogit']:.1e}, "
                     f"argmax agree {r['argmax_agree']:.0%}")
        best = f"{_fmt(r.get('speedup_vs_best_torch'), '5.2f')}x ({r.get('best_torch', '-')})"
        print(f"{r['profile']:7s} {r['op']:7s} {r['impl']:23s} {r['device']:6s} {r['precision']:5s} "
              f"{_fmt(r['p50_ms'], '9.3f')} {_fmt(r['p95_ms'], '9.3f')} {_fmt(r.get('speedup_vs_eager'), '7.1f')}x "
              f"{best:>13s} {_fmt(r.get('x_floor'), '6.2f')}x  {notes}")


def print_markdown(report: dict) -> None:
    print(f"`{report['command']}` — {report['machine']}, {report['threads']} threads, torch {report['torch']} "
          f"(OMP_WAIT_POLICY={report['omp_wait_policy']}); "
          f"{report['load']} before, {report['load_after']} after. {_machine_rates(report)}.\n")
    print("| profile | precision | weights read per push (MB) | bandwidth floor (ms) "
          "| multiply-adds per native push (M) | compute floor (ms) | floor (ms) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for f in report["floors"]:
        print(f"| {f['profile']} | {f['precision']} | " + " | ".join(_floor_cells(f)) + " |")
    print("\n| profile | op | impl | device | precision | p50 ms | p95 ms | vs eager | vs best torch | x floor "
          "| setup s | output change vs fp32 |")
    print("| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in report["rows"]:
        note = r.get("error", "")
        if "max_abs_dprob" in r:
            note = f"max abs dprob {r['max_abs_dprob']:.1e}, argmax agree {r['argmax_agree']:.0%}"
        print(f"| {r['profile']} | {r['op']} | {r['impl']} | {r['device']} | {r['precision']} | "
              f"{_fmt(r['p50_ms'], '.2f')} | {_fmt(r['p95_ms'], '.2f')} | {_fmt(r.get('speedup_vs_eager'), '.1f')} | "
              f"{_fmt(r.get('speedup_vs_best_torch'), '.2f')} ({r.get('best_torch', '-')}) | "
              f"{_fmt(r.get('x_floor'), '.2f')} | {_fmt(r.get('setup_s'), '.1f')} | {note} |")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.devices == ["cuda"]:
        from cmer_edge import _native

        if not _native.cuda_available():
            print("error: --devices cuda, but this build or machine has no usable CUDA device "
                  f"(build_info cuda={_native.build_info()['cuda']})", file=sys.stderr)
            return 2
    report = run(args, "python -m cmer_edge.bench head " + shlex.join(argv))
    if args.json:
        print(json.dumps(report, indent=1))
    elif args.markdown:
        print_markdown(report)
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
