"""The voice pool's cost per utterance through a bundle's native head session (docs/results.md, stop 33).

Not part of the package: a record of how those timings were made (random features, window 16, one
thread; pause other jobs first), runnable from the repository root with the package installed:

    OMP_NUM_THREADS=1 python docs/experiments/pool_cost.py BUNDLE

Rows: the pool off, the voice gate alone, both gates; flows: a plain bimodal push, and the
recognizer's live flow (a provisional audio-only push, then the words replace it).
"""

import sys, time
import numpy as np
from cmer_edge.bundle import load_bundle
from cmer_edge.runtime.head import NativeHead
b = load_bundle(sys.argv[1])
rng = np.random.default_rng(0)
xa = rng.standard_normal((64, b.head_config.audio_dim), dtype=np.float32)
xt = rng.standard_normal((64, b.head_config.text_dim), dtype=np.float32)
for w, u in ((0.0, 0.0), (0.7, 0.0), (0.7, 0.35)):
    s = NativeHead.from_bundle(b, num_threads=1, voice_weight=w, text_weight=u).session(16)
    for i in range(20):
        s.push(xa[i], xt[i])
    for flow in ("push", "provisional+replace"):
        times = []
        for _ in range(5):
            t = time.perf_counter()
            for i in range(64):
                if flow == "push":
                    s.push(xa[i], xt[i])
                else:
                    s.push(xa[i], None, provisional=True)
                    s.replace_last(xa[i], xt[i])
            times.append((time.perf_counter() - t) / 64 * 1000)
        print(f"voice {w} text {u} {flow}: {np.median(times):.2f} ms per utterance")
