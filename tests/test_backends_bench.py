"""The encoder benchmark runs end to end on real MiniLM + MELD text and EdgeL3 (slow: a program
that prints tables, checked for shape and consistency, not for timings)."""

from __future__ import annotations

import json

import pytest

from helpers.ci import need_module


@pytest.mark.slow
def test_encoder_benchmark_runs(shared_dir, capsys, monkeypatch):
    need_module("torch")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # main() sets it; restored after the test
    from cmer_edge.bench.encoders import main

    argv = ["--models", "minilm", "edgel3", "--texts", "3", "--rounds", "1", "--audio-s", "1.0", "--json",
            "--meld-csv", str(shared_dir / "data/meld/test_sent_emo.csv"),
            "--edgel3-weights", str(shared_dir / "weights/edgel3/edgel3_sea_ust_audio_emb_64.h5.gz")]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {(r["encoder"], r["backend"], r["precision"]): r for r in report["rows"]}
    assert set(rows) == {("minilm", "torch", "fp32"), ("minilm", "onnxruntime", "fp32"),
                         ("minilm", "onnxruntime", "int8"), ("edgel3", "torch", "fp32"),
                         ("edgel3", "onnxruntime", "fp32")}
    assert rows[("minilm", "onnxruntime", "fp32")]["min_cos_vs_torch"] > 0.99999
    assert rows[("edgel3", "onnxruntime", "fp32")]["max_rel_err_vs_torch"] < 1e-4
    assert 0.9 < rows[("minilm", "onnxruntime", "int8")]["min_cos_vs_torch"] < 1.0
    assert all(r["p50_ms"] > 0 for r in rows.values()) and not report["skipped"]
