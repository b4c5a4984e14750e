"""Can the clip features tell a flat synthetic reader from a neutral human voice? (docs/results.md, stop 33)

Not part of the package: a linear probe (logistic regression, z-scored on its training rows) on the
audio features `training.edge` caches for each clip (its speech span: eGeMAPS + Whisper tiny.en L4 +
L2). Trained on the spoken MELD training lines (espeak-ng, varied voices) against the neutral clips of
RAVDESS actors 01-10 and EmoDB; scored on the spoken MELD dev lines, SAVEE's neutral and emotional
clips and RAVDESS actors 11-20's neutral clips (voices and speakers it never saw). Runnable from the
repository root; each NAME=CACHE.npz is the `clips_<key>.npz` of that manifest in the edge cache:

    python docs/experiments/synthetic_probe.py ravdess=runs/edge_cache_s32/clips_86982eab118e7a05.npz \\
        savee=runs/edge_cache_s32/clips_6bfcdbae043c03ff.npz emodb=runs/edge_cache_s32/clips_0bd590e71c938e3a.npz \\
        spoken_train=runs/edge_cache_s32/clips_83a3a1d400821387.npz spoken_dev=runs/edge_cache_s32/clips_3f04659c82b16e4d.npz
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from cmer_edge.data.speech_manifest import load_manifest

MANIFESTS = {"ravdess": "../shared/data/ravdess", "savee": "../shared/data/savee", "emodb": "../shared/data/emodb",
             "spoken_train": "runs/spoken_meld_train", "spoken_dev": "runs/spoken_meld_dev_all"}


def main() -> None:
    caches = dict(arg.split("=", 1) for arg in sys.argv[1:])
    x = {name: np.load(caches[name])["x_a"] for name in MANIFESTS}
    clips = {name: load_manifest(Path(path)).clips for name, path in MANIFESTS.items()}
    for name in MANIFESTS:
        if len(clips[name]) != len(x[name]):
            raise SystemExit(f"{name}: {len(x[name])} cached rows for {len(clips[name])} clips: another cache?")
    neutral = {name: np.array([c.meld_label == 0 for c in clips[name]]) for name in ("ravdess", "savee", "emodb")}
    actor = np.array([int(c.speaker) for c in clips["ravdess"]])
    human = np.vstack([x["ravdess"][neutral["ravdess"] & (actor <= 10)], x["emodb"][neutral["emodb"]]])
    train_x = np.vstack([x["spoken_train"], human])
    train_y = np.r_[np.ones(len(x["spoken_train"])), np.zeros(len(human))]
    scaler = StandardScaler().fit(train_x)
    probe = LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced").fit(scaler.transform(train_x), train_y)
    for title, rows, synthetic in (("spoken MELD dev lines (synthetic)", x["spoken_dev"], 1),
                                   ("SAVEE neutral (human)", x["savee"][neutral["savee"]], 0),
                                   ("SAVEE emotional (human)", x["savee"][~neutral["savee"]], 0),
                                   ("RAVDESS 11-20 neutral (human)", x["ravdess"][neutral["ravdess"] & (actor > 10)], 0)):
        p = probe.predict_proba(scaler.transform(rows))[:, 1]
        print(f"{title}: {len(rows)} clips, {100 * np.mean((p > 0.5) == synthetic):.1f} % right, "
              f"median p(synthetic) {np.median(p):.3f}")


if __name__ == "__main__":
    main()
