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


@pytest.mark.slow
def test_encoder_benchmark_thread_counts_token_limit_and_reused_export(shared_dir, capsys, monkeypatch, tmp_path):
    need_module("torch")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    from cmer_edge.bench.encoders import main

    argv = ["--models", "minilm", "--texts", "4", "--rounds", "1", "--threads", "1", "2", "--max-text-tokens", "12",
            "--work", str(tmp_path), "--json", "--meld-csv", str(shared_dir / "data/meld/test_sent_emo.csv")]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert sorted({(r["threads"], r["backend"], r["precision"]) for r in rows}) == [
        (t, b, p) for t in (1, 2) for b, p in (("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("torch", "fp32"))]
    assert all(r["input"].startswith("4 MELD texts") and int(r["input"].split("(max ")[1][:-1]) <= 12 for r in rows)
    graph = tmp_path / "minilm" / "onnx" / "text_encoder.int8.onnx"
    stamp = graph.stat().st_mtime_ns
    assert main(argv) == 0  # the second run reuses the exported bundle
    assert graph.stat().st_mtime_ns == stamp
