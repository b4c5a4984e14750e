"""A toy feature store for training tests: labels are learnable from the features."""

from __future__ import annotations

import numpy as np

from cmer_edge.features.store import FeatureStore


def make_store(root, dialogues=40, audio_dim=6, text_dim=5, seed=0):
    """A store whose features carry the label (class centroid + noise), so training must learn it."""
    rng = np.random.default_rng(seed)
    store = FeatureStore.open(root, create=True, corpus="toy")
    centres_a, centres_t = rng.normal(size=(7, audio_dim)), rng.normal(size=(7, text_dim))
    for split, n in (("train", dialogues), ("dev", dialogues // 4), ("test", dialogues // 4)):
        rows = [{"dialogue_id": f"{split}{d}", "utterance_id": u, "label": int(rng.integers(0, 7)), "fold": d % 3}
                for d in range(n) for u in range(int(rng.integers(1, 8)))]
        store.set_index(split, rows)
        for name, dim, centres in (("aud", audio_dim, centres_a), ("txt", text_dim, centres_t)):
            store.declare(name, {"dim": dim, "kind": "toy"})
            writer = store.writer(split, name)
            for i in writer.pending():
                writer.put(i, centres[rows[i]["label"]] + 0.8 * rng.normal(size=dim))
            writer.flush()
    return store
