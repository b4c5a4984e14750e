"""`python -m cmer_edge.bench head` end to end on the edge profile at a small window: every CPU
implementation and precision gets a row, and the floors and ratios are consistent (a program that
prints tables, checked for shape and arithmetic, not for timings)."""

from __future__ import annotations

import json

import pytest

from helpers.ci import need_module

need_module("torch")
need_module("onnxruntime")

from cmer_edge.bench.head import main  # noqa: E402

SMALL = ["--profiles", "edge", "--window", "4", "--batch", "2", "--steps", "4", "--rounds", "1", "--push-reps", "2",
         "--forward-reps", "1", "--threads", "1", "--bandwidth-mb", "16"]


def test_head_benchmark_rows_and_floors(capsys, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # main() sets it; restored after the test
    assert main(SMALL + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {(r["impl"], r["op"], r["precision"]): r for r in report["rows"]}
    expected = {(impl, op, "fp32") for impl in ("native", "torch-eager", "torchscript", "onnxruntime")
                for op in ("push", "forward")}
    expected |= {("native", op, p) for op in ("push", "forward") for p in ("bf16", "int8")}
    assert expected <= set(rows)
    for key in expected:
        assert "error" not in rows[key], rows[key]
        assert 0 < rows[key]["p50_ms"] <= rows[key]["p95_ms"]
    eager = rows[("torch-eager", "push", "fp32")]["p50_ms"]
    native = rows[("native", "push", "fp32")]
    assert native["speedup_vs_eager"] == pytest.approx(eager / native["p50_ms"])

    floors = {f["precision"]: f for f in report["floors"]}
    assert floors["fp32"]["weight_bytes"] > floors["bf16"]["weight_bytes"] > floors["int8"]["weight_bytes"]
    for f in floors.values():
        assert f["floor_ms"] == max(f["bandwidth_floor_ms"], f["compute_floor_ms"]) > 0
        assert f["compute_floor_ms"] == pytest.approx(
            f["push_macs"] / report["multiply_add_rate"]["best_gmacs_per_s"] / 1e6)
    assert native["x_floor"] == pytest.approx(native["p50_ms"] / floors["fp32"]["floor_ms"])
    for p in ("bf16", "int8"):
        row = rows[("native", "push", p)]
        assert 0 < row["max_abs_dprob"] < 0.05 and row["argmax_agree"] >= 0.9


def test_head_benchmark_markdown_and_bad_arguments(capsys, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert main(SMALL + ["--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| edge | fp32 |" in out and "compute floor (ms)" in out and "| edge | push | native | cpu | int8 |" in out
    with pytest.raises(SystemExit):
        main(["--window", "0"])
    assert "--window: window (utterances) must be in 1..256, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--profiles", "tiny"])
    assert "unknown profiles ['tiny']" in capsys.readouterr().err
