"""Feature store (resume, specs) and a short real training run through the train CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.ci import need_module

from cmer_edge.features.store import FeatureStore, StoreError


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


def test_store_resumes_and_refuses_incomplete(tmp_path):
    store = FeatureStore.open(tmp_path / "s", create=True, corpus="toy")
    store.set_index("train", [{"dialogue_id": 0, "utterance_id": i, "label": 0} for i in range(5)])
    store.declare("f", {"dim": 3})
    writer = store.writer("train", "f")
    writer.put(0, np.ones(3))
    writer.put(1, None)  # unusable input
    writer.flush()
    with pytest.raises(StoreError, match="3 of 5 rows missing"):
        store.load("train", "f")
    writer = FeatureStore.open(tmp_path / "s").writer("train", "f")
    assert writer.pending().tolist() == [2, 3, 4]
    for i in writer.pending():
        writer.put(i, np.full(3, i))
    writer.flush()
    values, ok = store.load("train", "f")
    assert ok.tolist() == [True, False, True, True, True]
    assert values[0].tolist() == [1, 1, 1] and values[4].tolist() == [4, 4, 4]
    with pytest.raises(StoreError, match="another spec"):
        store.declare("f", {"dim": 4})
    with pytest.raises(StoreError, match="got 2 values"):
        writer.put(0, np.ones(2))
    with pytest.raises(StoreError, match="corpus 'toy', not 'meld'"):
        FeatureStore.open(tmp_path / "s", corpus="meld")


@pytest.mark.parametrize("protocol", ["paper", "live"])
def test_train_cli_learns_and_saves_bundles(tmp_path, protocol):
    need_module("torch")
    from cmer_edge import train
    from cmer_edge.bundle import load_bundle

    make_store(tmp_path / "store", dialogues=24)
    out = tmp_path / "runs"
    argv = ["--store", str(tmp_path / "store"), "--audio", "aud", "--text", "txt", "--out", str(out),
            "--protocol", protocol, "--window", "3", "--seeds", "0", "1", "--epochs", "8", "--patience", "8",
            "--lr", "5e-3", "--hidden", "8", "--batch", "8"]
    assert train.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["weighted_f1"]["mean"] > 60, summary["table"]  # chance is ~15
    run = summary["runs"][0]
    bundle = load_bundle(out / run["run"])
    history = bundle.manifest.provenance["training"]["history"]
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    assert bundle.manifest.protocol == protocol and bundle.head_config.audio_dim == 6
    assert set(bundle.head_tensors()) >= {"audio.mean", "text.inv_std", "classifier.3.weight"}


def test_train_cli_cross_validates_over_folds(tmp_path):
    need_module("torch")
    from cmer_edge import train

    make_store(tmp_path / "store", dialogues=18)
    out = tmp_path / "cv"
    argv = ["--store", str(tmp_path / "store"), "--audio", "aud", "--modalities", "audio", "--out", str(out),
            "--cv-folds", "3", "--seeds", "0", "--epochs", "2", "--hidden", "8"]
    assert train.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [r["fold"] for r in summary["runs"]] == ["fold0", "fold1", "fold2"]
    assert "test" in summary and "dev" in summary


def test_edge_recipe_trains_a_bimodal_bundle_from_two_unimodal_corpora(tmp_path):
    """MELD-like text dialogues + EmoDB-like audio utterances (per-speaker normalised) -> one bundle."""
    need_module("torch")
    from cmer_edge.bundle import load_bundle
    from cmer_edge.training import edge

    rng = np.random.default_rng(0)
    meld = FeatureStore.open(tmp_path / "meld", create=True, corpus="meld")
    emodb = FeatureStore.open(tmp_path / "emodb", create=True, corpus="emodb")
    centres_t, centres_a = rng.normal(size=(7, 5)), rng.normal(size=(7, 4))
    for split in ("train", "dev", "test"):
        rows = [{"dialogue_id": f"{split}{d}", "utterance_id": u, "label": int(rng.integers(0, 7))}
                for d in range(12) for u in range(3)]
        meld.set_index(split, rows)
        meld.declare("txt", {"dim": 5, "model": "toy"})
        w = meld.writer(split, "txt")
        for i in w.pending():
            w.put(i, centres_t[rows[i]["label"]] + 0.5 * rng.normal(size=5))
        w.flush()
    rows = [{"dialogue_id": f"e{i}", "utterance_id": 0, "label": 0, "meld_label": int(rng.choice([0, 2, 3, 4, 5, 6])),
             "speaker": f"s{i % 6}", "fold": (i % 6) // 2} for i in range(90)]
    emodb.set_index("all", rows)
    emodb.declare("aud", {"dim": 4, "kind": "toy"})
    w = emodb.writer("all", "aud")
    for i in w.pending():
        w.put(i, 10 + 3 * (i % 6) + centres_a[rows[i]["meld_label"]] + 0.3 * rng.normal(size=4))  # speaker offsets
    w.flush()
    out = tmp_path / "edge"
    assert edge.main(["--meld-store", str(tmp_path / "meld"), "--text", "txt", "--emodb-store", str(tmp_path / "emodb"),
                      "--audio", "aud", "--out", str(out), "--hidden", "8", "--epochs", "6", "--window", "4"]) == 0
    bundle = load_bundle(out)
    assert bundle.head_config.modalities == "both" and bundle.manifest.audio_norm == "speaker"
    assert set(bundle.manifest.features.raw) == {"audio", "text"}
    assert bundle.file("audio_norm").is_file()
    assert {"meld_test_text", "emodb_test_audio"} <= set(bundle.manifest.metrics)
    assert bundle.manifest.provenance["recipe"]["paired_utterances"] > 0
