"""Logit adjustment fitted on dev (issue 10 item 3): the rules pick tau on dev only, and the tau folded
into the written head gives exactly the adjusted predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.ci import need_module
from helpers.toy_store import make_store

from cmer_edge.training.logit_adjust import adjusted_predictions, fit, label_prior

LABELS = ("a", "b", "c")


def _skewed(n=600, seed=0):
    """Class c is rare (5 %) and its scores are shy: unadjusted, it is almost never predicted."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.6, 0.35, 0.05])
    logits = rng.normal(0, 1, (n, 3)) + 2.0 * np.eye(3)[y]
    logits[:, 2] -= 3.5
    return logits - np.log(np.exp(logits).sum(1, keepdims=True)), y


def test_rules_choose_tau_on_dev_within_the_cost():
    lp, y = _skewed()
    prior = label_prior(y, 3)
    never = fit(lp, y, prior, LABELS, max_cost=0.0, taus=(0.0,))
    assert never.tau == 0.0 and np.allclose(never.bias, 0.0)
    base = (adjusted_predictions(lp, 0.0) == 2).sum()
    smallest = fit(lp, y, prior, LABELS, max_cost=5.0, rule="min", min_class_f1=10.0)
    macro = fit(lp, y, prior, LABELS, max_cost=5.0, rule="macro")
    assert 0.0 < smallest.tau <= macro.tau
    assert (adjusted_predictions(lp, smallest.bias) == 2).sum() > base
    for adj in (smallest, macro):
        assert adj.dev_weighted_f1 >= adj.dev_weighted_f1_at_0 - 5.0
        assert np.allclose(adj.bias, -adj.tau * np.log(prior), atol=1e-6)
    with pytest.raises(ValueError, match="rule"):
        fit(lp, y, prior, LABELS, rule="best")


def test_written_bundle_predicts_the_adjusted_classes(tmp_path):
    need_module("torch")
    from cmer_edge import train
    from cmer_edge.bundle import load_bundle
    from cmer_edge.backends.torch_models import load_head_module
    from cmer_edge.features.store import FeatureStore
    from cmer_edge.training import logit_adjust
    from cmer_edge.training.dialogues import load_dialogues
    from cmer_edge.training.trainer import predict

    store = make_store(tmp_path / "store", dialogues=24)
    out = tmp_path / "runs"
    assert train.main(["--store", str(store.root), "--text", "txt", "--modalities", "text", "--out", str(out),
                       "--epochs", "3", "--hidden", "8", "--batch", "8", "--lr", "5e-3"]) == 0
    assert logit_adjust.main(["--store", str(store.root), "--runs", str(out / "seed0"), "--rule", "macro",
                              "--max-cost", "100", "--json", str(tmp_path / "la.json"),
                              "--write-dir", str(tmp_path / "adjusted")]) == 0
    result = json.loads((tmp_path / "la.json").read_text())[0]
    bundle = load_bundle(tmp_path / "adjusted" / "seed0")
    assert bundle.manifest.provenance["training"]["logit_adjustment"]["tau"] == result["tau"]
    test = load_dialogues(FeatureStore.open(store.root), "test", [], "txt")
    y = np.concatenate([d.labels for d in test])
    original = np.concatenate(predict(load_head_module(load_bundle(out / "seed0")), test, "paper", 16))
    adjusted = np.concatenate(predict(load_head_module(bundle), test, "paper", 16))
    expected = adjusted_predictions(np.log(original), np.asarray(result["bias"], np.float32))
    assert (adjusted.argmax(1) == expected).mean() >= 0.99  # the stored bias is rounded to 1e-4
    from cmer_edge.training.metrics import score

    wf1 = score(y, adjusted.argmax(1), bundle.labels).weighted_f1
    assert wf1 == pytest.approx(result["splits"]["test"]["after"]["weighted_f1"], abs=1.0)


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_bad_max_cost_is_one_line_and_exit_2(value, capsys):
    from cmer_edge.training import logit_adjust

    assert logit_adjust.main(["--store", "s", "--runs", "r", "--max-cost", value]) == 2
    err = capsys.readouterr().err
    assert "--max-cost" in err and "Traceback" not in err
