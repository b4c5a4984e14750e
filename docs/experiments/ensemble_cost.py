"""The head's cost per utterance in the live flow, a baseline bundle against a candidate (e.g. one head
against the three-head ensemble), at each native precision, in one process, rounds interleaved.

One utterance = what the recognizer does: a provisional audio-only push, then the final replacement
with both modalities (the voice pool, where the bundle has a weight, reuses the provisional push).
Inputs are random rows around the baseline's normalisation means (speed does not depend on them).

    python docs/experiments/ensemble_cost.py BASELINE CANDIDATE [--precisions fp32 int8] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cmer_edge.bundle import load_bundle
from cmer_edge.runtime.head import NativeHead


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundles", type=Path, nargs=2, help="baseline, candidate")
    p.add_argument("--precisions", nargs="+", default=["fp32", "int8"], choices=("fp32", "bf16", "int8"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--utterances", type=int, default=48)
    p.add_argument("--rounds", type=int, default=5, help="the first one warms up and is not counted")
    args = p.parse_args()
    heads = {(b, prec): NativeHead.from_bundle(b, precision=prec, num_threads=args.threads)
             for prec in args.precisions for b in args.bundles}
    means = load_bundle(args.bundles[0]).head_members()[0]
    rng, n = np.random.default_rng(0), args.utterances
    rows = {name: (means[f"{name}.mean"] + rng.standard_normal((n, means[f"{name}.mean"].size))
                   / np.maximum(means[f"{name}.inv_std"], 1e-3)).astype(np.float32) for name in ("audio", "text")}
    times: dict = {key: [] for key in heads}
    for round_ in range(args.rounds):
        for key, head in heads.items():
            session = head.session(16)
            for i in range(n):
                start = time.perf_counter()
                session.push(rows["audio"][i], None, provisional=True)
                session.replace_last(rows["audio"][i], rows["text"][i])
                if round_:
                    times[key].append(1000 * (time.perf_counter() - start))
    print(f"| bundle | heads | head precision | weights per push | p50 ms / utterance | p90 ms | p50 vs baseline |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (bundle, prec), head in heads.items():
        p50 = np.percentile(times[bundle, prec], 50)
        base = np.percentile(times[args.bundles[0], prec], 50)
        print(f"| {bundle} | {len(head.members)} | {prec} | {head.weight_bytes / 1e6:.1f} MB | {p50:.2f} | "
              f"{np.percentile(times[bundle, prec], 90):.2f} | {p50 / base:.2f}x |")


if __name__ == "__main__":
    main()
